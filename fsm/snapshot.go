package fsm

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"

	"github.com/hashicorp/raft"
)

// Snapshot format: a magic header, then frames, then an end frame carrying
// a CRC-32C of everything before it. A frame is a kind byte, a uvarint
// body length and the body. Sectors go in frames of sectorsPerFrame so
// neither writing nor reading ever holds the whole state as one buffer.
var snapshotMagic = []byte("VSMSNAP\x01")

const (
	frameClusterID  = 1
	frameStorage    = 2
	frameMiner      = 3
	frameSectors    = 4
	frameAssignment = 5
	frameRecord     = 6
	frameEnd        = 0xFF

	sectorsPerFrame = 4096
	maxFrame        = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapshot struct{ st *state }

// Persist implements raft.FSMSnapshot.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := writeSnapshot(sink, s.st); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() {}

type frameWriter struct {
	w   *bufio.Writer
	crc hash.Hash32
	n   int64
	e   encoder
}

func (fw *frameWriter) write(kind byte, body func(e *encoder)) error {
	fw.e.buf = fw.e.buf[:0]
	body(&fw.e)
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = kind
	n := 1 + binary.PutUvarint(hdr[1:], uint64(len(fw.e.buf)))
	if err := fw.raw(hdr[:n]); err != nil {
		return err
	}
	return fw.raw(fw.e.buf)
}

func (fw *frameWriter) raw(b []byte) error {
	fw.crc.Write(b)
	n, err := fw.w.Write(b)
	fw.n += int64(n)
	return err
}

func writeSnapshot(w io.Writer, st *state) (int64, error) {
	fw := &frameWriter{w: bufio.NewWriterSize(w, 1<<20), crc: crc32.New(castagnoli)}
	if err := fw.raw(snapshotMagic); err != nil {
		return fw.n, err
	}
	if err := writeFrames(fw, st); err != nil {
		return fw.n, err
	}
	sum := fw.crc.Sum32()
	if err := fw.write(frameEnd, func(e *encoder) { e.buf = binary.LittleEndian.AppendUint32(e.buf, sum) }); err != nil {
		return fw.n, err
	}
	return fw.n, fw.w.Flush()
}

func writeFrames(fw *frameWriter, st *state) error {
	if err := fw.write(frameClusterID, func(e *encoder) { e.string(st.clusterID) }); err != nil {
		return err
	}
	// Storage frames keep their index (holes included) because sector
	// frames refer to instances by index.
	for idx, in := range st.storage {
		if in == nil {
			continue
		}
		err := fw.write(frameStorage, func(e *encoder) {
			e.uvarint(uint64(idx))
			encodeStorage(e, *in)
		})
		if err != nil {
			return err
		}
	}
	for _, ms := range st.miners {
		if err := writeMiner(fw, ms); err != nil {
			return err
		}
	}
	for _, a := range st.assignments {
		err := fw.write(frameAssignment, func(e *encoder) {
			e.uvarint(a.Miner)
			e.byte(a.Deadline)
			e.string(a.Node)
			e.uvarint(a.Generation)
			e.varint(a.Since)
		})
		if err != nil {
			return err
		}
	}
	for _, recs := range st.records {
		for _, r := range recs {
			if err := fw.write(frameRecord, func(e *encoder) { encodeRecord(e, r) }); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeMiner(fw *frameWriter, ms *minerState) error {
	if err := fw.write(frameMiner, func(e *encoder) { encodeMiner(e, ms.info) }); err != nil {
		return err
	}
	batch := make([]sectorEntry, 0, sectorsPerFrame)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := fw.write(frameSectors, func(e *encoder) {
			e.uvarint(ms.info.ID)
			e.uvarint(uint64(len(batch)))
			for _, s := range batch {
				n, l := s.number, s.loc
				e.uvarint(n)
				e.uvarint(uint64(l.sealed))
				e.uvarint(uint64(l.cache))
				e.byte(l.proof)
				e.bool(l.upgraded)
				e.bytes32(l.commR)
			}
		})
		batch = batch[:0]
		return err
	}
	var err error
	ms.sectors.each(func(n uint64, l loc) {
		if err != nil {
			return
		}
		batch = append(batch, sectorEntry{number: n, loc: l})
		if len(batch) == sectorsPerFrame {
			err = flush()
		}
	})
	if err != nil {
		return err
	}
	return flush()
}

type frameReader struct {
	r   *bufio.Reader
	crc hash.Hash32
	buf []byte
}

func (fr *frameReader) next() (byte, []byte, error) {
	kind, err := fr.r.ReadByte()
	if err != nil {
		return 0, nil, fmt.Errorf("frame header: %w", unexpectedEOF(err))
	}
	size, err := binary.ReadUvarint(fr.r)
	if err != nil {
		return 0, nil, fmt.Errorf("frame length: %w", unexpectedEOF(err))
	}
	if size > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds the %d limit", size, maxFrame)
	}
	if kind != frameEnd {
		var hdr [1 + binary.MaxVarintLen64]byte
		hdr[0] = kind
		fr.crc.Write(hdr[:1+binary.PutUvarint(hdr[1:], size)])
	}
	if cap(fr.buf) < int(size) {
		fr.buf = make([]byte, size)
	}
	fr.buf = fr.buf[:size]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		return 0, nil, fmt.Errorf("frame body: %w", unexpectedEOF(err))
	}
	if kind != frameEnd {
		fr.crc.Write(fr.buf)
	}
	return kind, fr.buf, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func readSnapshot(r io.Reader) (*state, error) {
	fr := &frameReader{r: bufio.NewReaderSize(r, 1<<20), crc: crc32.New(castagnoli)}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(fr.r, magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
		return nil, errors.New("not a vsm snapshot (bad magic)")
	}
	fr.crc.Write(magic)
	st := newState()
	for {
		kind, body, err := fr.next()
		if err != nil {
			return nil, err
		}
		if kind == frameEnd {
			if len(body) != 4 || binary.LittleEndian.Uint32(body) != fr.crc.Sum32() {
				return nil, errors.New("checksum mismatch: the snapshot is corrupt")
			}
			return st, st.finishRestore()
		}
		d := &decoder{buf: body}
		if err := st.readFrame(kind, d); err != nil {
			return nil, fmt.Errorf("frame kind %d: %w", kind, err)
		}
		if err := d.done(); err != nil {
			return nil, fmt.Errorf("frame kind %d: %w", kind, err)
		}
	}
}

func (st *state) readFrame(kind byte, d *decoder) error {
	switch kind {
	case frameClusterID:
		st.clusterID = d.string()
	case frameStorage:
		idx := d.uvarint()
		in := decodeStorage(d)
		if idx > 1<<24 {
			return fmt.Errorf("storage index %d out of range", idx)
		}
		for uint64(len(st.storage)) <= idx {
			st.storage = append(st.storage, nil)
			st.storageRefs = append(st.storageRefs, 0)
		}
		st.storage[idx] = &in
		st.storageByName[in.Name] = uint32(idx)
	case frameMiner:
		m := decodeMiner(d)
		st.miners[m.ID] = &minerState{info: m, sectors: newSectorTable()}
	case frameSectors:
		return st.readSectors(d)
	case frameAssignment:
		a := Assignment{DeadlineKey: DeadlineKey{Miner: d.uvarint(), Deadline: d.byte()}, Node: d.string(), Generation: d.uvarint(), Since: d.varint()}
		st.assignments[a.DeadlineKey] = a
	case frameRecord:
		r := decodeRecord(d)
		st.records[r.DeadlineKey] = append(st.records[r.DeadlineKey], r)
	default:
		return fmt.Errorf("unknown frame kind")
	}
	return nil
}

func (st *state) readSectors(d *decoder) error {
	ms, ok := st.miners[d.uvarint()]
	if !ok {
		return errors.New("sectors before their miner")
	}
	n := d.count(36)
	for i := 0; i < n && d.err == nil; i++ {
		num := d.uvarint()
		l := loc{sealed: d.uint32(), cache: d.uint32(), proof: d.byte(), upgraded: d.bool(), commR: d.bytes32()}
		if int(l.sealed) >= len(st.storage) || int(l.cache) >= len(st.storage) {
			return fmt.Errorf("sector %d refers to an unknown storage index", num)
		}
		if _, dup := ms.sectors.put(num, l); dup {
			return fmt.Errorf("sector %d appears twice", num)
		}
		st.storageRefs[l.sealed]++
		st.storageRefs[l.cache]++
	}
	return d.err
}

// finishRestore rejects a snapshot whose sectors refer to a removed
// instance and puts deadline history back in period order.
func (st *state) finishRestore() error {
	for idx, refs := range st.storageRefs {
		if refs > 0 && st.storage[idx] == nil {
			return fmt.Errorf("%d sector files refer to missing storage index %d", refs, idx)
		}
	}
	for k, recs := range st.records {
		slices.SortFunc(recs, func(a, b DeadlineRecord) int { return cmp.Compare(a.PeriodStart, b.PeriodStart) })
		st.records[k] = recs
	}
	return nil
}

// SnapshotInfo describes a verified snapshot stream.
type SnapshotInfo struct {
	ClusterID string `json:"cluster_id"`
	Stats
}

// VerifySnapshot reads a whole snapshot stream, checks its framing and
// checksum, and says what it holds, without touching any live state. A
// backup is verified this way before it is restored through raft.
func VerifySnapshot(r io.Reader) (SnapshotInfo, error) {
	st, err := readSnapshot(r)
	if err != nil {
		return SnapshotInfo{}, err
	}
	f := &FSM{st: st}
	return SnapshotInfo{ClusterID: st.clusterID, Stats: f.Stats()}, nil
}
