package importer

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strings"

	"github.com/vsm-project/vsm/fsm"
)

// Reader yields a file's records one at a time, so reading a file of any
// size needs memory for one line. Next returns io.EOF itself after the
// last record; any other error names the line and ends the stream. Callers
// compare with ==, not errors.Is: a line cut short is an error that wraps
// io.EOF ("not JSON: EOF") and must not pass for the end of the file.
type Reader interface {
	Next() (fsm.SectorLocation, error)
}

// NewReader reads format "jsonl" (or "json") or "csv".
func NewReader(r io.Reader, format string) (Reader, error) {
	switch format {
	case "jsonl", "json":
		return NewJSONLReader(r), nil
	case "csv":
		return NewCSVReader(r), nil
	}
	return nil, fmt.Errorf("format %q: want jsonl or csv", format)
}

// Reread reads an input for the second pass. JSON lines skip the strict
// per-line checks, a third of the parsing time: SendFrom compares every
// batch with the first pass's checksum before sending it, so a record
// that reads differently now is never sent.
func Reread(r io.Reader, format string) (Reader, error) {
	rd, err := NewReader(r, format)
	if j, ok := rd.(*jsonlReader); ok {
		j.lenient = true
	}
	return rd, err
}

// Plan is what the first pass learned of an input: how many records it
// holds and a checksum of each batch of them, so the second pass can send
// exactly what was validated. It costs 8 bytes a batch, whatever the size
// of the input.
type Plan struct {
	Total int
	Batch int
	seed  maphash.Seed
	sums  []uint64
}

// Validate reads every record of r strictly, holding none: the import's
// first pass. batch is the size of the batches the second pass will send.
func Validate(r Reader, batch int) (Plan, error) {
	if batch <= 0 {
		return Plan{}, errors.New("batch must be positive")
	}
	p := Plan{Batch: batch, seed: maphash.MakeSeed()}
	var h maphash.Hash
	h.SetSeed(p.seed)
	err := each(r, func(l fsm.SectorLocation) {
		maphash.WriteComparable(&h, l)
		p.Total++
		if p.Total%batch == 0 {
			p.sums = append(p.sums, h.Sum64())
			h.Reset()
		}
	})
	if p.Total%batch != 0 {
		p.sums = append(p.sums, h.Sum64())
	}
	return p, err
}

// check compares the batch starting at record start with the first pass.
func (p *Plan) check(start int, locs []fsm.SectorLocation) error {
	var h maphash.Hash
	h.SetSeed(p.seed)
	for _, l := range locs {
		maphash.WriteComparable(&h, l)
	}
	if h.Sum64() != p.sums[start/p.Batch] {
		return fmt.Errorf("records %d-%d differ from what the first pass validated: did the input change during the import?", start+1, start+len(locs))
	}
	return nil
}

func readAll(r Reader) ([]fsm.SectorLocation, error) {
	var out []fsm.SectorLocation
	if err := each(r, func(l fsm.SectorLocation) { out = append(out, l) }); err != nil {
		return nil, err
	}
	return out, nil
}

// each calls fn for every record until the end of r or its first error.
func each(r Reader, fn func(fsm.SectorLocation)) error {
	for {
		l, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fn(l)
	}
}

type jsonlReader struct {
	sc      *bufio.Scanner
	line    int
	lenient bool
}

// NewJSONLReader reads one JSON object per line (docs/import.md); blank
// lines and lines starting with # are skipped.
func NewJSONLReader(r io.Reader) Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &jsonlReader{sc: sc}
}

func (j *jsonlReader) Next() (fsm.SectorLocation, error) {
	for j.sc.Scan() {
		j.line++
		text := strings.TrimSpace(j.sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		l, err := j.decode(text)
		if err != nil {
			return fsm.SectorLocation{}, fmt.Errorf("line %d: %w", j.line, err)
		}
		loc, err := l.location()
		if err != nil {
			return fsm.SectorLocation{}, fmt.Errorf("line %d: %w", j.line, err)
		}
		return loc, nil
	}
	if err := j.sc.Err(); err != nil {
		return fsm.SectorLocation{}, fmt.Errorf("read after line %d: %w", j.line, err)
	}
	return fsm.SectorLocation{}, io.EOF
}

func (j *jsonlReader) decode(text string) (line, error) {
	if !j.lenient {
		return decodeLine(text)
	}
	var l line
	err := json.Unmarshal([]byte(text), &l)
	return l, err
}

var csvColumns = []string{"miner", "number", "sealed", "cache", "upgraded", "proof", "commr"}

type csvReader struct {
	cr  *csv.Reader
	col map[string]int // nil until the header is read
}

// NewCSVReader reads CSV with a header row naming the columns (any order;
// miner, number, sealed and cache are required).
func NewCSVReader(r io.Reader) Reader {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	return &csvReader{cr: cr}
}

func (c *csvReader) Next() (fsm.SectorLocation, error) {
	if c.col == nil {
		col, err := c.header()
		if err != nil {
			return fsm.SectorLocation{}, err
		}
		c.col = col
	}
	rec, err := c.cr.Read()
	if errors.Is(err, io.EOF) {
		return fsm.SectorLocation{}, io.EOF
	}
	if err != nil {
		return fsm.SectorLocation{}, fmt.Errorf("CSV: %w", err)
	}
	row, _ := c.cr.FieldPos(0)
	loc, err := csvLocation(rec, c.col)
	if err != nil {
		return fsm.SectorLocation{}, fmt.Errorf("line %d: %w", row, err)
	}
	return loc, nil
}

func (c *csvReader) header() (map[string]int, error) {
	header, err := c.cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read CSV header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if !slices.Contains(csvColumns, name) {
			return nil, fmt.Errorf("CSV header: unknown column %q; columns are %s", h, strings.Join(csvColumns, ","))
		}
		if _, dup := col[name]; dup {
			return nil, fmt.Errorf("CSV header: column %q appears twice; which one is meant?", name)
		}
		col[name] = i
	}
	for _, req := range csvColumns[:4] {
		if _, ok := col[req]; !ok {
			return nil, fmt.Errorf("CSV header: column %q is required", req)
		}
	}
	return col, nil
}
