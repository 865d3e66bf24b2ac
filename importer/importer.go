// Package importer reads sector-location files (JSON lines or CSV) and
// sends them to a node in concurrent batches. The whole file is parsed
// before the first batch is sent, so a bad line stops the import before
// anything is written rather than halfway through.
package importer

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	}
	return fsm.SectorLocation{
		SectorID: fsm.SectorID{Miner: uint64(*l.Miner), Number: *l.Number},
		Sealed:   l.Sealed, Cache: l.Cache, Upgraded: l.Upgraded, SealProof: l.Proof, CommR: l.CommR,
	}, nil
}

// ReadJSONL parses one location per line; blank lines and lines starting
// with # are skipped. Errors name the line.
func ReadJSONL(r io.Reader) ([]fsm.SectorLocation, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []fsm.SectorLocation
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var l line
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		loc, err := l.location()
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, loc)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return out, nil
}

var csvColumns = []string{"miner", "number", "sealed", "cache", "upgraded", "proof", "commr"}

// ReadCSV parses CSV with a header row naming the columns (any order;
// miner, number, sealed and cache are required).
func ReadCSV(r io.Reader) ([]fsm.SectorLocation, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read CSV header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if !slices.Contains(csvColumns, name) {
			return nil, fmt.Errorf("CSV header: unknown column %q; columns are %s", h, strings.Join(csvColumns, ","))
		}
		col[name] = i
	}
	for _, req := range csvColumns[:4] {
		if _, ok := col[req]; !ok {
			return nil, fmt.Errorf("CSV header: column %q is required", req)
		}
	}
	var out []fsm.SectorLocation
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("CSV: %w", err)
		}
		row, _ := cr.FieldPos(0)
		loc, err := csvLocation(rec, col)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", row, err)
		}
		out = append(out, loc)
	}
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

// Send puts locs in batches with up to parallel requests in flight and
// calls progress with the count acknowledged so far. On failure it stops
// sending and returns how many were acknowledged and the first error,
// naming the failed batch's position in the input.
func Send(ctx context.Context, put Putter, locs []fsm.SectorLocation, batch, parallel int, progress func(done int)) (int, error) {
	if batch <= 0 || parallel <= 0 {
		return 0, errors.New("batch and parallel must be positive")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	starts := make(chan int)
	var (
		done     atomic.Int64
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range starts {
				end := min(start+batch, len(locs))
				if err := put(ctx, locs[start:end]); err != nil {
					once.Do(func() {
						firstErr = fmt.Errorf("records %d-%d: %w", start+1, end, err)
						cancel()
					})
					return
				}
				acked := int(done.Add(int64(end - start)))
				if progress != nil {
					progress(acked)
				}
			}
		}()
	}
feed:
	for start := 0; start < len(locs); start += batch {
		select {
		case starts <- start:
		case <-ctx.Done():
			break feed
		}
	}
	close(starts)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return int(done.Load()), firstErr
}
