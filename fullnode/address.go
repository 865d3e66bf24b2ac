package fullnode

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Address is a Filecoin ID address (protocol 0), the only kind a miner
// actor, its owner, worker and control addresses have in chain state. Other
// protocols (secp256k1, actor, BLS, delegated) are rejected when parsed:
// vsm never needs to sign or resolve them, and refusing them early beats
// sending a key address where the chain wants an actor.
//
// The zero value is the undefined address, which Lotus writes as "<empty>".
type Address struct {
	id  uint64
	set bool
}

// undefAddressString is how Lotus renders address.Undef in JSON.
const undefAddressString = "<empty>"

// NewIDAddress returns the ID address t0<id>.
func NewIDAddress(id uint64) Address { return Address{id: id, set: true} }

// ParseAddress accepts "t0<id>" or "f0<id>" (testnet or mainnet prefix;
// Lotus accepts either on any network) and "<empty>" for undefined.
func ParseAddress(s string) (Address, error) {
	if s == undefAddressString || s == "" {
		return Address{}, nil
	}
	if len(s) < 3 {
		return Address{}, fmt.Errorf("address %q: too short (want t0<id> or f0<id>)", s)
	}
	if s[0] != 't' && s[0] != 'f' {
		return Address{}, fmt.Errorf("address %q: network prefix must be 't' or 'f'", s)
	}
	switch s[1] {
	case '0':
	case '1', '2', '3', '4':
		names := map[byte]string{'1': "secp256k1", '2': "actor", '3': "BLS", '4': "delegated"}
		return Address{}, fmt.Errorf("address %q is a %s (protocol %c) address; only ID addresses (t0/f0) are supported", s, names[s[1]], s[1])
	default:
		return Address{}, fmt.Errorf("address %q: unknown protocol %q", s, s[1])
	}
	digits := s[2:]
	if len(digits) > 1 && digits[0] == '0' {
		return Address{}, fmt.Errorf("address %q: id has a leading zero", s)
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return Address{}, fmt.Errorf("address %q: id is not a decimal uint64", s)
	}
	return NewIDAddress(id), nil
}

// MustParseAddress is ParseAddress for constants in code and tests.
func MustParseAddress(s string) Address {
	a, err := ParseAddress(s)
	if err != nil {
		panic(err)
	}
	return a
}

// ID returns the actor id (1000 for t01000).
func (a Address) ID() uint64 { return a.id }

// Defined reports whether a is not the undefined address.
func (a Address) Defined() bool { return a.set }

// String renders the testnet form t0<id>. Lotus parses t and f alike.
func (a Address) String() string {
	if !a.set {
		return undefAddressString
	}
	return "t0" + strconv.FormatUint(a.id, 10)
}

// Bytes is the address payload (protocol byte, then the id as uvarint), the
// form hashed into randomness entropy and written in CBOR.
func (a Address) Bytes() []byte {
	if !a.set {
		return nil
	}
	buf := make([]byte, 1, 11)
	buf[0] = 0 // protocol ID
	return appendUvarint(buf, a.id)
}

// MarshalCBOR is the address as a CBOR byte string, which is what Lotus
// passes as entropy when drawing WindowPoSt randomness.
func (a Address) MarshalCBOR() []byte {
	var e cborEncoder
	e.bytes(a.Bytes())
	return e.buf
}

// MarshalJSON writes the address as a JSON string.
func (a Address) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }

// UnmarshalJSON parses a JSON string with ParseAddress.
func (a *Address) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("address: want a JSON string: %w", err)
	}
	p, err := ParseAddress(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

// MarshalText and UnmarshalText let addresses be map keys and TOML values.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses with ParseAddress.
func (a *Address) UnmarshalText(b []byte) error {
	p, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

func appendUvarint(buf []byte, x uint64) []byte {
	for x >= 0x80 {
		buf = append(buf, byte(x)|0x80)
		x >>= 7
	}
	return append(buf, byte(x))
}

// readUvarint decodes a minimal uvarint from buf.
func readUvarint(buf []byte) (uint64, int, error) {
	var x uint64
	var s uint
	for i, b := range buf {
		if i == 10 || (i == 9 && b > 1) {
			return 0, 0, fmt.Errorf("varint overflows 64 bits")
		}
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, 0, fmt.Errorf("varint not minimally encoded")
			}
			return x | uint64(b)<<s, i + 1, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, 0, fmt.Errorf("varint truncated")
}
