package fullnode

import (
	"bytes"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
)

// CID is a content identifier as Filecoin uses them: version 1, written in
// base32 (multibase prefix 'b'). It covers exactly what vsm reads from the
// chain: tipset block CIDs, message CIDs and sealed-sector CIDs (CommR), so
// a small reader replaces go-cid and its dependency tree. CIDv0 ("Qm...")
// and other multibases never appear in the Filecoin API and are rejected.
//
// The zero value is the undefined CID, JSON null.
type CID struct {
	raw string // binary CIDv1: varint version, varint codec, multihash
}

// Multicodec and multihash codes used by Filecoin.
const (
	CodecDagCBOR             = 0x71
	CodecFilCommitmentSealed = 0xf102 // sealed sector (CommR)

	MhSHA2_256              = 0x12
	MhBlake2b256            = 0xb220
	MhPoseidonBLS12381A1FC1 = 0xb401 // CommR's hash function
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewCID builds a CIDv1 from a codec, a multihash code and a digest.
func NewCID(codec, mhCode uint64, digest []byte) CID {
	buf := appendUvarint(nil, 1)
	buf = appendUvarint(buf, codec)
	buf = appendUvarint(buf, mhCode)
	buf = appendUvarint(buf, uint64(len(digest)))
	buf = append(buf, digest...)
	return CID{raw: string(buf)}
}

// ParseCID parses the base32 string form ("bafy...", "bagboea...").
func ParseCID(s string) (CID, error) {
	if s == "" {
		return CID{}, fmt.Errorf("cid: empty string")
	}
	if strings.HasPrefix(s, "Qm") {
		return CID{}, fmt.Errorf("cid %q: CIDv0 is not used by Filecoin; want a base32 CIDv1 (prefix 'b')", s)
	}
	if s[0] != 'b' {
		return CID{}, fmt.Errorf("cid %q: multibase %q not supported; want base32 (prefix 'b')", s, s[0])
	}
	raw, err := b32.DecodeString(strings.ToUpper(s[1:]))
	if err != nil {
		return CID{}, fmt.Errorf("cid %q: bad base32: %w", s, err)
	}
	c, err := CIDFromBytes(raw)
	if err != nil {
		return CID{}, fmt.Errorf("cid %q: %w", s, err)
	}
	return c, nil
}

// CIDFromBytes checks and wraps a binary CIDv1.
func CIDFromBytes(raw []byte) (CID, error) {
	c := CID{raw: string(raw)}
	if _, _, _, _, err := c.Parts(); err != nil {
		return CID{}, err
	}
	return c, nil
}

// Parts splits the CID into version, codec, multihash code and digest.
func (c CID) Parts() (version, codec, mhCode uint64, digest []byte, err error) {
	b := []byte(c.raw)
	var n int
	read := func(what string) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, n, err = readUvarint(b)
		if err != nil {
			err = fmt.Errorf("%s: %w", what, err)
			return 0
		}
		b = b[n:]
		return v
	}
	version = read("version")
	codec = read("codec")
	mhCode = read("multihash code")
	l := read("digest length")
	if err != nil {
		return 0, 0, 0, nil, err
	}
	if version != 1 {
		return 0, 0, 0, nil, fmt.Errorf("version %d, want 1", version)
	}
	if uint64(len(b)) != l {
		return 0, 0, 0, nil, fmt.Errorf("digest length %d, but %d bytes follow", l, len(b))
	}
	return version, codec, mhCode, b, nil
}

// Defined reports whether c is not the zero CID.
func (c CID) Defined() bool { return c.raw != "" }

// Bytes is the binary form.
func (c CID) Bytes() []byte { return []byte(c.raw) }

// Equal compares two CIDs.
func (c CID) Equal(o CID) bool { return c.raw == o.raw }

// String is the base32 form, or "<undef>" for the zero CID.
func (c CID) String() string {
	if !c.Defined() {
		return "<undef>"
	}
	return "b" + strings.ToLower(b32.EncodeToString([]byte(c.raw)))
}

// MarshalJSON writes the IPLD link form {"/": "bafy..."}, or null.
func (c CID) MarshalJSON() ([]byte, error) {
	if !c.Defined() {
		return []byte("null"), nil
	}
	return json.Marshal(map[string]string{"/": c.String()})
}

// UnmarshalJSON reads {"/": "..."} or null.
func (c *CID) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*c = CID{}
		return nil
	}
	var link struct {
		Slash *string `json:"/"`
	}
	if err := json.Unmarshal(b, &link); err != nil || link.Slash == nil {
		return fmt.Errorf(`cid: want {"/": "<cid>"} or null, got %.60s`, b)
	}
	p, err := ParseCID(*link.Slash)
	if err != nil {
		return err
	}
	*c = p
	return nil
}

// SealedCIDFromCommR wraps a replica commitment as the chain stores it.
func SealedCIDFromCommR(commR [32]byte) CID {
	return NewCID(CodecFilCommitmentSealed, MhPoseidonBLS12381A1FC1, commR[:])
}

// CommRFromSealedCID extracts the 32-byte replica commitment the prover
// needs from a sector's SealedCID.
func CommRFromSealedCID(c CID) ([32]byte, error) {
	var out [32]byte
	_, codec, mh, digest, err := c.Parts()
	if err != nil {
		return out, fmt.Errorf("sealed cid %s: %w", c, err)
	}
	if codec != CodecFilCommitmentSealed || mh != MhPoseidonBLS12381A1FC1 {
		return out, fmt.Errorf("sealed cid %s: codec 0x%x / multihash 0x%x is not a sealed-sector commitment (want 0x%x / 0x%x)",
			c, codec, mh, CodecFilCommitmentSealed, MhPoseidonBLS12381A1FC1)
	}
	if len(digest) != 32 {
		return out, fmt.Errorf("sealed cid %s: digest is %d bytes, want 32", c, len(digest))
	}
	copy(out[:], digest)
	return out, nil
}
