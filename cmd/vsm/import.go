package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/importer"
)

func locationImport(c *cli.Context) error {
	path := c.String("file")
	var in io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	format := c.String("format")
	if format == "" {
		format = "jsonl"
		if strings.HasSuffix(strings.ToLower(path), ".csv") {
			format = "csv"
		}
	}
	var locs []fsm.SectorLocation
	var err error
	switch format {
	case "jsonl", "json":
		locs, err = importer.ReadJSONL(in)
	case "csv":
		locs, err = importer.ReadCSV(in)
	default:
		return fmt.Errorf("--format %q: want jsonl or csv", format)
	}
	if err != nil {
		return fmt.Errorf("%s: %w (nothing was imported)", path, err)
	}
	cl, err := client(c)
	if err != nil {
		return err
	}
	put := func(ctx context.Context, batch []fsm.SectorLocation) error {
		return cl.Call(ctx, "VSM.SectorLocationPut", nil, batch)
	}
	bar := newProgress(c.App.ErrWriter, len(locs), c.Bool("quiet"))
	start := time.Now()
	done, err := importer.Send(c.Context, put, locs, c.Int("batch"), c.Int("parallel"), bar.update)
	bar.finish()
	elapsed := time.Since(start)
	if err != nil {
		// The importer's error lists exactly which records were stored.
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(c.App.Writer, "imported %d locations in %.2fs (%.0f/s)\n", done, elapsed.Seconds(), float64(done)/max(elapsed.Seconds(), 1e-9))
	return nil
}

// progress draws a one-line bar on stderr at most every 100ms.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	total int
	quiet bool
	start time.Time
	last  time.Time
	done  int
}

func newProgress(w io.Writer, total int, quiet bool) *progress {
	return &progress{w: w, total: total, quiet: quiet, start: time.Now()}
}

func (p *progress) update(done int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = max(p.done, done)
	if p.quiet || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progress) draw() {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	fill := int(frac * width)
	rate := float64(p.done) / max(time.Since(p.start).Seconds(), 1e-9)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %3.0f%% %.0f/s", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), p.done, p.total, frac*100, rate)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}
