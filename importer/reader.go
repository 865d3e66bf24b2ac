package importer

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
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

// Validate reads every record of r strictly and counts them, holding none:
// the import's first pass.
func Validate(r Reader) (int, error) {
	n := 0
	err := each(r, func(fsm.SectorLocation) { n++ })
	return n, err
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
	sc   *bufio.Scanner
	line int
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
		l, err := decodeLine(text)
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
