package fsm

import (
	"fmt"
)

// CommandType is the first byte of every raft log entry vsm writes.
type CommandType uint8

// IgnoreIfUnknown marks a command type that older versions may skip. It
// lets a rolling upgrade add optional commands; an unknown command without
// this bit stops the node instead of letting its state diverge.
const IgnoreIfUnknown CommandType = 0x80

// Command types. Values are part of the on-disk log format: never reuse one.
const (
	TypeSetClusterID    CommandType = 1
	TypePutMiner        CommandType = 2
	TypeRemoveMiner     CommandType = 3
	TypePutStorage      CommandType = 4
	TypeRemoveStorage   CommandType = 5
	TypePutLocations    CommandType = 6
	TypeDeleteLocations CommandType = 7
	TypeSetAssignments  CommandType = 8
	TypeRecordDeadline  CommandType = 9
	// TypeSetAssignmentsFenced is SetAssignments with the raft term it was
	// decided in (see SetAssignments.Term). Entries written before it
	// existed are TypeSetAssignments and still decode, unfenced.
	TypeSetAssignmentsFenced CommandType = 10
)

// Command is one state change. Encode gives its log entry bytes.
type Command interface {
	Type() CommandType
	encodeBody(e *encoder)
}

// SetClusterID is written once, by the node that bootstraps the cluster.
type SetClusterID struct{ ID string }

// PutMiner adds a miner or replaces its settings.
type PutMiner struct{ Miner Miner }

// RemoveMiner deletes a miner. Without Purge it is refused while the miner
// still has sector locations, so a typo cannot drop a miner's whole index.
type RemoveMiner struct {
	ID    uint64
	Purge bool
}

// PutStorage adds a storage instance or changes its default path / flag.
type PutStorage struct{ Instance StorageInstance }

// RemoveStorage deletes a storage instance no location refers to.
type RemoveStorage struct{ Name string }

// PutLocations adds or replaces sector locations, all or none.
type PutLocations struct{ Locations []SectorLocation }

// DeleteLocations removes sector locations; absent ones are counted, not
// refused, so a retried delete is harmless.
type DeleteLocations struct{ IDs []SectorID }

// SetAssignments sets the owner of deadlines. An empty Node unassigns.
// Generation is ignored (the FSM assigns it); Since is stored with a new
// owner and updates an unchanged owner's Since.
//
// Term, when set, fences the command: it is the raft term of the leader
// that decided it, and FSM.Apply refuses the command unless the log entry
// carrying it has that same term (see FSM.Apply). Zero means unfenced:
// entries from before fencing existed, and tests without raft.
type SetAssignments struct {
	Assignments []Assignment
	Term        uint64
}

// RecordDeadline stores the outcome of one deadline.
type RecordDeadline struct{ Record DeadlineRecord }

func (SetClusterID) Type() CommandType    { return TypeSetClusterID }
func (PutMiner) Type() CommandType        { return TypePutMiner }
func (RemoveMiner) Type() CommandType     { return TypeRemoveMiner }
func (PutStorage) Type() CommandType      { return TypePutStorage }
func (RemoveStorage) Type() CommandType   { return TypeRemoveStorage }
func (PutLocations) Type() CommandType    { return TypePutLocations }
func (DeleteLocations) Type() CommandType { return TypeDeleteLocations }
func (c SetAssignments) Type() CommandType {
	if c.Term != 0 {
		return TypeSetAssignmentsFenced
	}
	return TypeSetAssignments
}
func (RecordDeadline) Type() CommandType { return TypeRecordDeadline }

func (c SetClusterID) encodeBody(e *encoder) { e.string(c.ID) }
func (c PutMiner) encodeBody(e *encoder)     { encodeMiner(e, c.Miner) }
func (c RemoveMiner) encodeBody(e *encoder) {
	e.uvarint(c.ID)
	e.bool(c.Purge)
}
func (c PutStorage) encodeBody(e *encoder) { encodeStorage(e, c.Instance) }
func (c RemoveStorage) encodeBody(e *encoder) {
	e.string(c.Name)
}
func (c PutLocations) encodeBody(e *encoder) {
	e.uvarint(uint64(len(c.Locations)))
	for _, l := range c.Locations {
		e.uvarint(l.Miner)
		e.uvarint(l.Number)
		e.string(l.Sealed)
		e.string(l.Cache)
		e.bool(l.Upgraded)
		e.byte(l.SealProof)
		e.bytes32(l.CommR)
	}
}
func (c DeleteLocations) encodeBody(e *encoder) {
	e.uvarint(uint64(len(c.IDs)))
	for _, id := range c.IDs {
		e.uvarint(id.Miner)
		e.uvarint(id.Number)
	}
}
func (c SetAssignments) encodeBody(e *encoder) {
	if c.Term != 0 {
		e.uvarint(c.Term)
	}
	e.uvarint(uint64(len(c.Assignments)))
	for _, a := range c.Assignments {
		e.uvarint(a.Miner)
		e.byte(a.Deadline)
		e.string(a.Node)
		e.varint(a.Since)
	}
}
func (c RecordDeadline) encodeBody(e *encoder) { encodeRecord(e, c.Record) }

func encodeMiner(e *encoder, m Miner) {
	e.uvarint(m.ID)
	e.uvarint(m.SectorSize)
	e.byte(m.PoStProof)
	e.uvarint(uint64(m.PartitionSize))
	e.bool(m.Enabled)
}

func decodeMiner(d *decoder) Miner {
	return Miner{
		ID:            d.uvarint(),
		SectorSize:    d.uvarint(),
		PoStProof:     d.byte(),
		PartitionSize: d.uint32(),
		Enabled:       d.bool(),
	}
}

func encodeStorage(e *encoder, s StorageInstance) {
	e.string(s.Name)
	e.string(s.Path)
	e.bool(s.ReadOnly)
}

func decodeStorage(d *decoder) StorageInstance {
	return StorageInstance{Name: d.string(), Path: d.string(), ReadOnly: d.bool()}
}

func encodeRecord(e *encoder, r DeadlineRecord) {
	e.uvarint(r.Miner)
	e.byte(r.Deadline)
	e.varint(r.PeriodStart)
	e.byte(uint8(r.Outcome))
	e.string(r.Node)
	e.uvarint(uint64(len(r.FaultySector)))
	for _, s := range r.FaultySector {
		e.uvarint(s)
	}
	e.uvarint(r.DurationMS)
	e.string(r.Message)
}

func decodeRecord(d *decoder) DeadlineRecord {
	r := DeadlineRecord{
		DeadlineKey: DeadlineKey{Miner: d.uvarint(), Deadline: d.byte()},
		PeriodStart: d.varint(),
		Outcome:     Outcome(d.byte()),
		Node:        d.string(),
	}
	if n := d.count(1); n > 0 {
		r.FaultySector = make([]uint64, n)
		for i := range r.FaultySector {
			r.FaultySector[i] = d.uvarint()
		}
	}
	r.DurationMS = d.uvarint()
	r.Message = d.string()
	return r
}

// Encode returns the log entry bytes for c: its type byte, then its body.
func Encode(c Command) []byte {
	e := encoder{buf: make([]byte, 0, 64)}
	e.byte(uint8(c.Type()))
	c.encodeBody(&e)
	return e.buf
}

// UnknownCommandError is returned for a command type this version does not
// know and that is not marked IgnoreIfUnknown.
type UnknownCommandError struct{ Type CommandType }

func (e *UnknownCommandError) Error() string {
	return fmt.Sprintf("unknown command type %d: this node is older than the cluster's log; upgrade it before it rejoins", e.Type)
}

// Decode parses a log entry. It returns (nil, nil) for an unknown type that
// carries IgnoreIfUnknown.
func Decode(b []byte) (Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("decode command: empty entry")
	}
	t := CommandType(b[0])
	d := &decoder{buf: b[1:]}
	var c Command
	switch t {
	case TypeSetClusterID:
		c = SetClusterID{ID: d.string()}
	case TypePutMiner:
		c = PutMiner{Miner: decodeMiner(d)}
	case TypeRemoveMiner:
		c = RemoveMiner{ID: d.uvarint(), Purge: d.bool()}
	case TypePutStorage:
		c = PutStorage{Instance: decodeStorage(d)}
	case TypeRemoveStorage:
		c = RemoveStorage{Name: d.string()}
	case TypePutLocations:
		c = decodePutLocations(d)
	case TypeDeleteLocations:
		c = decodeDeleteLocations(d)
	case TypeSetAssignments:
		c = decodeSetAssignments(d)
	case TypeSetAssignmentsFenced:
		term := d.uvarint()
		sa := decodeSetAssignments(d)
		sa.Term = term
		c = sa
	case TypeRecordDeadline:
		c = RecordDeadline{Record: decodeRecord(d)}
	default:
		if t&IgnoreIfUnknown != 0 {
			return nil, nil
		}
		return nil, &UnknownCommandError{Type: t}
	}
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("decode command type %d: %w", t, err)
	}
	return c, nil
}

func decodePutLocations(d *decoder) PutLocations {
	// A location takes at least 38 bytes: two ids, two names, flag, proof, commR.
	n := d.count(38)
	locs := make([]SectorLocation, n)
	for i := range locs {
		locs[i] = SectorLocation{
			SectorID:  SectorID{Miner: d.uvarint(), Number: d.uvarint()},
			Sealed:    d.string(),
			Cache:     d.string(),
			Upgraded:  d.bool(),
			SealProof: d.byte(),
			CommR:     d.bytes32(),
		}
	}
	return PutLocations{Locations: locs}
}

func decodeDeleteLocations(d *decoder) DeleteLocations {
	n := d.count(2)
	ids := make([]SectorID, n)
	for i := range ids {
		ids[i] = SectorID{Miner: d.uvarint(), Number: d.uvarint()}
	}
	return DeleteLocations{IDs: ids}
}

func decodeSetAssignments(d *decoder) SetAssignments {
	// An assignment takes at least 4 bytes: miner, deadline, node, since.
	n := d.count(4)
	as := make([]Assignment, n)
	for i := range as {
		as[i] = Assignment{DeadlineKey: DeadlineKey{Miner: d.uvarint(), Deadline: d.byte()}, Node: d.string(), Since: d.varint()}
	}
	return SetAssignments{Assignments: as}
}
