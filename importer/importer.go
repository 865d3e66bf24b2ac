// Package importer reads sector-location files (JSON lines or CSV) and
// sends them to a node in concurrent batches. The whole file is validated
// before the first batch is sent, so a bad line stops the import before
// anything is written rather than halfway through; the records are then
// read again as they are sent, so a file of any size needs memory for the
// batches in flight only.
package importer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vsm-project/vsm/fsm"
)

// ActorID is a miner given as 1000, "1000", "t01000" or "f01000".
type ActorID uint64

// ParseActorID reads the forms ActorID accepts.
func ParseActorID(s string) (ActorID, error) {
	t := strings.TrimSpace(s)
	if len(t) > 2 && (t[0] == 't' || t[0] == 'f') && t[1] == '0' {
		t = t[2:]
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("miner %q: want an actor id like t01000", s)
	}
	return ActorID(v), nil
}

// UnmarshalJSON accepts a number or a string.
func (a *ActorID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseActorID(s)
		*a = v
		return err
	}
	var v uint64
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("miner: want an actor id like t01000 or 1000")
	}
	*a = ActorID(v)
	return nil
}

// line is one JSON-lines record; docs/import.md describes the fields.
type line struct {
	Miner    *ActorID  `json:"miner"`
	Number   *uint64   `json:"number"`
	Sealed   string    `json:"sealed"`
	Cache    string    `json:"cache"`
	Upgraded bool      `json:"upgraded"`
	Proof    uint8     `json:"proof"`
	CommR    fsm.CommR `json:"commr"`
}

func (l line) location() (fsm.SectorLocation, error) {
	switch {
	case l.Miner == nil:
		return fsm.SectorLocation{}, errors.New(`"miner" is missing`)
	case l.Number == nil:
		return fsm.SectorLocation{}, errors.New(`"number" is missing`)
	case l.Sealed == "":
		return fsm.SectorLocation{}, errors.New(`"sealed" (storage instance name) is missing`)
	case l.Cache == "":
		return fsm.SectorLocation{}, errors.New(`"cache" (storage instance name) is missing`)
	case *l.Number > math.MaxInt64:
		// Filecoin's abi.MaxSectorNumber; the node refuses it too.
		return fsm.SectorLocation{}, fmt.Errorf(`"number" %d is above Filecoin's sector number limit 2^63-1`, *l.Number)
	}
	return fsm.SectorLocation{
		SectorID: fsm.SectorID{Miner: uint64(*l.Miner), Number: *l.Number},
		Sealed:   l.Sealed, Cache: l.Cache, Upgraded: l.Upgraded, SealProof: l.Proof, CommR: l.CommR,
	}, nil
}

// ReadJSONL parses one location per line; blank lines and lines starting
// with # are skipped. Errors name the line. It holds every record: files of
// any size go through a Reader instead.
func ReadJSONL(r io.Reader) ([]fsm.SectorLocation, error) {
	return readAll(NewJSONLReader(r))
}

// decodeLine reads exactly one JSON object from text. encoding/json alone
// would take the first of two objects on a line, ignore what follows the
// first value, and let a repeated key overwrite the earlier one: each of
// those silently drops or changes a record.
func decodeLine(text string) (line, error) {
	var l line
	if err := checkOneObject(text); err != nil {
		return l, err
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return l, err
	}
	return l, nil
}

// checkOneObject walks text's tokens: one object, no key twice in any
// object, nothing after it.
func checkOneObject(text string) error {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("want one JSON object per line, found %v", tok)
	}
	if err := checkObject(dec, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		off := dec.InputOffset()
		return fmt.Errorf("unexpected data after the object at column %d (%.20q): one JSON object per line, nothing after it", off+1, strings.TrimSpace(text[min(int(off), len(text)):]))
	}
	return nil
}

// checkObject consumes an object's members after its '{'.
func checkObject(dec *json.Decoder, path string) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("not JSON: %w", err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("key %q appears twice%s; which value is meant?", key, path)
		}
		seen[key] = true
		if err := checkValue(dec, fmt.Sprintf(" in %q", key)); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return fmt.Errorf("not JSON: %w", err)
	}
	return nil
}

func checkValue(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if d == '{' {
		return checkObject(dec, path)
	}
	for dec.More() { // '['
		if err := checkValue(dec, path); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// ReadCSV parses CSV with a header row naming the columns (any order;
// miner, number, sealed and cache are required). It holds every record:
// files of any size go through a Reader instead.
func ReadCSV(r io.Reader) ([]fsm.SectorLocation, error) {
	return readAll(NewCSVReader(r))
}

func csvLocation(rec []string, col map[string]int) (fsm.SectorLocation, error) {
	get := func(name string) string {
		if i, ok := col[name]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var l line
	m, err := ParseActorID(get("miner"))
	if err != nil {
		return fsm.SectorLocation{}, err
	}
	l.Miner = &m
	num, err := strconv.ParseUint(get("number"), 10, 64)
	if err != nil {
		return fsm.SectorLocation{}, fmt.Errorf("number %q: want a sector number", get("number"))
	}
	l.Number = &num
	l.Sealed, l.Cache = get("sealed"), get("cache")
	if v := get("upgraded"); v != "" {
		if l.Upgraded, err = strconv.ParseBool(v); err != nil {
			return fsm.SectorLocation{}, fmt.Errorf("upgraded %q: want true or false", v)
		}
	}
	if v := get("proof"); v != "" {
		p, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return fsm.SectorLocation{}, fmt.Errorf("proof %q: want a seal proof type number", v)
		}
		l.Proof = uint8(p)
	}
	if err := l.CommR.UnmarshalText([]byte(get("commr"))); err != nil {
		return fsm.SectorLocation{}, err
	}
	return l.location()
}

// Putter sends one batch; the rpc client satisfies it through a closure.
type Putter func(ctx context.Context, batch []fsm.SectorLocation) error

// Range is records From..To of the input, counted from 1, both included.
type Range struct{ From, To int }

func (r Range) String() string {
	if r.From == r.To {
		return strconv.Itoa(r.From)
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
}

// BatchError is a batch the node did not acknowledge.
type BatchError struct {
	Range
	Err error
}

// PartialError is an import that stopped: it says exactly which records
// were stored (acknowledged), which batches failed and which were never
// sent. Every batch is one raft entry, applied all or nothing.
type PartialError struct {
	Total   int
	Stored  []Range // merged where contiguous
	Failed  []BatchError
	NotSent []Range
	// Stopped is what stopped it other than a refused batch: the caller's
	// cancellation, or an input that could not be read again.
	Stopped error
}

func (e *PartialError) Error() string {
	var b strings.Builder
	stored := 0
	for _, r := range e.Stored {
		stored += r.To - r.From + 1
	}
	fmt.Fprintf(&b, "import stopped: %d of %d records stored", stored, e.Total)
	if len(e.Stored) > 0 {
		fmt.Fprintf(&b, " (%s)", records(e.Stored))
	}
	for _, f := range e.Failed {
		fmt.Fprintf(&b, "; %s failed: %v", records([]Range{f.Range}), f.Err)
	}
	if len(e.NotSent) > 0 {
		verb := "were"
		if len(e.NotSent) == 1 && e.NotSent[0].From == e.NotSent[0].To {
			verb = "was"
		}
		fmt.Fprintf(&b, "; %s %s not sent", records(e.NotSent), verb)
	}
	if e.Stopped != nil {
		fmt.Fprintf(&b, "; stopped: %v", e.Stopped)
	}
	b.WriteString(". Re-running the corrected file is safe: a put replaces a location")
	return b.String()
}

// Unwrap gives the first failure, so callers can test for its cause.
func (e *PartialError) Unwrap() error {
	if len(e.Failed) == 0 {
		return e.Stopped
	}
	return e.Failed[0].Err
}

// records reads "record 7" or "records 1-6, 10-12".
func records(rs []Range) string {
	if len(rs) == 1 && rs[0].From == rs[0].To {
		return "record " + rs[0].String()
	}
	return "records " + joinRanges(rs)
}

func joinRanges(rs []Range) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}

// mergeRanges sorts and joins adjacent ranges.
func mergeRanges(rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int { return a.From - b.From })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].To+1 == r.From {
			out[n-1].To = r.To
			continue
		}
		out = append(out, r)
	}
	return out
}

// Send puts locs in batches with up to parallel requests in flight and
// calls progress with the count acknowledged so far. After a failure it
// sends no new batch but lets those in flight finish, so the outcome of
// every batch is known (cancelling them would leave applied batches
// looking failed); it then returns the count stored and a *PartialError.
func Send(ctx context.Context, put Putter, locs []fsm.SectorLocation, batch, parallel int, progress func(done int)) (int, error) {
	next := func(start int) ([]fsm.SectorLocation, error) {
		return locs[start:min(start+batch, len(locs))], nil
	}
	return send(ctx, put, next, len(locs), batch, parallel, progress)
}

// SendFrom is Send for records read from r as they are sent, in the
// batches plan (Validate's first pass over the same input) checksummed:
// memory holds the batches in flight, never the whole input. A batch that
// cannot be read again, or reads differently, stops the import before it is
// sent, with the same account of what was stored as a refused batch.
func SendFrom(ctx context.Context, put Putter, r Reader, plan Plan, parallel int, progress func(done int)) (int, error) {
	next := func(start int) ([]fsm.SectorLocation, error) {
		out := make([]fsm.SectorLocation, 0, min(plan.Batch, plan.Total-start))
		for len(out) < cap(out) {
			l, err := r.Next()
			if err == io.EOF {
				return nil, fmt.Errorf("the input ended at record %d, but the first pass counted %d: did it change during the import?", start+len(out), plan.Total)
			}
			if err != nil {
				return nil, fmt.Errorf("reading the input again: %w (did it change during the import?)", err)
			}
			out = append(out, l)
		}
		return out, plan.check(start, out)
	}
	return send(ctx, put, next, plan.Total, plan.Batch, parallel, progress)
}

type job struct {
	start int
	locs  []fsm.SectorLocation
}

// send feeds the batches next makes, in order, to parallel workers.
func send(ctx context.Context, put Putter, next func(start int) ([]fsm.SectorLocation, error), total, batch, parallel int, progress func(done int)) (int, error) {
	if batch <= 0 || parallel <= 0 {
		return 0, errors.New("batch and parallel must be positive")
	}
	jobs := make(chan job)
	stop := make(chan struct{})
	var (
		done     atomic.Int64
		mu       sync.Mutex
		stored   []Range
		failed   []BatchError
		sent     = map[int]bool{}
		stopOnce sync.Once
		wg       sync.WaitGroup
	)
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				select {
				case <-stop: // handed over just as another batch failed
					continue
				default:
				}
				r := Range{From: j.start + 1, To: j.start + len(j.locs)}
				mu.Lock()
				sent[j.start] = true
				mu.Unlock()
				err := put(ctx, j.locs)
				mu.Lock()
				if err != nil {
					failed = append(failed, BatchError{Range: r, Err: err})
				} else {
					stored = append(stored, r)
				}
				mu.Unlock()
				if err != nil {
					stopOnce.Do(func() { close(stop) })
					continue
				}
				acked := int(done.Add(int64(len(j.locs))))
				if progress != nil {
					progress(acked)
				}
			}
		}()
	}
	readErr := feed(ctx, jobs, stop, next, total, batch)
	close(jobs)
	wg.Wait()
	if len(failed) == 0 && ctx.Err() == nil && readErr == nil {
		return int(done.Load()), nil
	}
	e := &PartialError{Total: total, Stored: mergeRanges(stored), Stopped: cmp.Or(readErr, ctx.Err())}
	slices.SortFunc(failed, func(a, b BatchError) int { return a.From - b.From })
	e.Failed = failed
	var notSent []Range
	for start := 0; start < total; start += batch {
		if !sent[start] {
			notSent = append(notSent, Range{From: start + 1, To: min(start+batch, total)})
		}
	}
	e.NotSent = mergeRanges(notSent)
	return int(done.Load()), e
}

// feed hands batches to the workers until the input ends, one fails, ctx
// ends or the input cannot be read (returned).
func feed(ctx context.Context, jobs chan<- job, stop <-chan struct{}, next func(int) ([]fsm.SectorLocation, error), total, batch int) error {
	for start := 0; start < total; start += batch {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		locs, err := next(start)
		if err != nil {
			return err
		}
		select {
		case jobs <- job{start: start, locs: locs}:
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}
