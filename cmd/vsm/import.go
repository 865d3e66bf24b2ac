package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vsm-project/vsm/config"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/importer"
	"github.com/vsm-project/vsm/rpc"
)

func locationImport(c *cli.Context) error {
	if c.IsSet("from-damocles-manager") {
		if c.IsSet("file") {
			return fmt.Errorf("give --file or --from-damocles-manager, not both")
		}
		return importFromManager(c)
	}
	path := c.String("file")
	if path == "" {
		return fmt.Errorf("give --file FILE (JSON lines or CSV, docs/import.md; - for standard input) or --from-damocles-manager http://HOST:PORT --miner t0ACTOR")
	}
	format := c.String("format")
	if format == "" {
		format = "jsonl"
		if strings.HasSuffix(strings.ToLower(path), ".csv") {
			format = "csv"
		}
	}
	if _, err := importer.NewReader(nil, format); err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(importMemoryLimit)
	}
	in, err := openImport(path)
	if err != nil {
		return err
	}
	defer in.close()
	// Pass 1 validates every record and holds none, so a bad line stops
	// the import before anything is written whatever the file's size.
	plan, err := in.validate(format, c.Int("batch"))
	if err != nil {
		return fmt.Errorf("%s: %w (nothing was imported)", path, err)
	}
	cl, err := client(c)
	if err != nil {
		return err
	}
	put := func(ctx context.Context, batch []fsm.SectorLocation) error {
		return cl.Call(ctx, rpc.MethodSectorLocationPut, nil, batch)
	}
	second, err := in.again(format)
	if err != nil {
		return fmt.Errorf("%s: %w (nothing was imported)", path, err)
	}
	bar := newProgress(c.App.ErrWriter, plan.Total, c.Bool("quiet"))
	start := time.Now()
	done, err := importer.SendFrom(c.Context, put, second, plan, c.Int("parallel"), bar.update)
	bar.finish()
	elapsed := time.Since(start)
	if err != nil {
		// The importer's error lists exactly which records were stored.
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(c.App.Writer, "imported %d locations in %.2fs (%.0f/s)\n", done, elapsed.Seconds(), float64(done)/max(elapsed.Seconds(), 1e-9))
	return nil
}

// importMemoryLimit is the import's soft limit on the Go runtime's memory.
// What it holds live is the batches in flight (10-20 MB at the default
// 4 x 10,000, gctrace shows); the rest is parsing and encoding garbage.
// On a busy machine the collector's default (run when the heap doubles)
// fell behind and let that garbage take the client to 86 MB resident (the
// binary's own pages add about 25 MB); the limit makes the allocating
// goroutines help collect instead. GOMEMLIMIT, when set, wins.
const importMemoryLimit = 48 << 20

// importInput is an import file read twice: once to validate, once to
// send. Standard input cannot be read twice, so the first pass copies it
// to a temporary file (removed on close) that the second pass reads.
type importInput struct {
	f     *os.File
	spool *os.File
}

func openImport(path string) (*importInput, error) {
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return &importInput{f: f}, nil
	}
	spool, err := os.CreateTemp("", "vsm-import-*")
	if err != nil {
		return nil, fmt.Errorf("standard input is read twice (validate, then send) through a temporary file: %w; set TMPDIR to a writable directory or give --file FILE", err)
	}
	return &importInput{f: os.Stdin, spool: spool}, nil
}

func (in *importInput) validate(format string, batch int) (importer.Plan, error) {
	var src io.Reader = in.f
	if in.spool != nil {
		src = io.TeeReader(in.f, in.spool)
	}
	r, err := importer.NewReader(src, format)
	if err != nil {
		return importer.Plan{}, err
	}
	plan, err := importer.Validate(r, batch)
	if err == nil && in.spool != nil {
		// Drain what follows the last record so the copy is whole.
		_, err = io.Copy(in.spool, in.f)
	}
	return plan, err
}

// again rewinds to the first record for the second pass.
func (in *importInput) again(format string) (importer.Reader, error) {
	f := in.f
	if in.spool != nil {
		f = in.spool
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind for the second pass: %w", err)
	}
	return importer.Reread(bufio.NewReaderSize(f, 1<<20), format)
}

func (in *importInput) close() {
	if in.spool != nil {
		in.spool.Close()
		os.Remove(in.spool.Name())
		return
	}
	in.f.Close()
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

// importFromManager migrates a miner's locations without an export step:
// sector numbers, proof types and CommR from the chain, persist stores from
// the original manager's sector indexer. Nothing is written unless every
// persist store the manager names exists in vsm.
func importFromManager(c *cli.Context) error {
	url := c.String("from-damocles-manager")
	if c.String("miner") == "" {
		return fmt.Errorf("--from-damocles-manager needs --miner: the miner whose sectors to import")
	}
	miner, err := parseActor(c.String("miner"))
	if err != nil {
		return err
	}
	chain, err := dialChain(c)
	if err != nil {
		return err
	}
	cl, err := client(c)
	if err != nil {
		return err
	}
	if err := call(c, rpc.MethodMinerGet, nil, miner); err != nil {
		return fmt.Errorf("t0%d in vsm: %w", miner, err)
	}
	quiet := c.Bool("quiet")
	fmt.Fprintf(c.App.ErrWriter, "listing the sectors of t0%d on the chain\n", miner)
	var bar *progress
	sectors, err := importer.ChainSectors(c.Context, chain, miner, c.Int("parallel")*4, func(done, total int) {
		if bar == nil {
			bar = newProgress(c.App.ErrWriter, total, quiet)
		}
		bar.update(done)
	})
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "asking the manager at %s where each of %d sectors is\n", url, len(sectors))
	bar = newProgress(c.App.ErrWriter, len(sectors), quiet)
	res, err := importer.FromManager(c.Context, miner, sectors, importer.ManagerFinder(url, c.String("manager-token")), c.Int("parallel")*4, bar.update)
	bar.finish()
	if err != nil {
		return fmt.Errorf("%w (nothing was imported)", err)
	}
	var have []fsm.StorageInstance
	if err := call(c, rpc.MethodStorageList, &have); err != nil {
		return err
	}
	if missing := importer.MissingStores(res.Stores, have); len(missing) > 0 {
		return fmt.Errorf("the manager keeps these sectors in persist stores vsm does not know: %s; add each with 'vsm storage add NAME --path PATH' (PATH as this node mounts it), then run this again (nothing was imported)", strings.Join(missing, ", "))
	}
	put := func(ctx context.Context, batch []fsm.SectorLocation) error {
		return cl.Call(ctx, rpc.MethodSectorLocationPut, nil, batch)
	}
	bar = newProgress(c.App.ErrWriter, len(res.Locations), quiet)
	start := time.Now()
	done, err := importer.Send(c.Context, put, res.Locations, c.Int("batch"), c.Int("parallel"), bar.update)
	bar.finish()
	if err != nil {
		return fmt.Errorf("import from %s: %w", url, err)
	}
	fmt.Fprintf(c.App.Writer, "imported %d locations of t0%d from the manager at %s in %.2fs\n", done, miner, url, time.Since(start).Seconds())
	if len(res.Missing) > 0 {
		return fmt.Errorf("%d sectors of t0%d are on the chain but not in the manager's sector indexer: %s; put them with 'vsm sector location put' once you know where they are", len(res.Missing), miner, importer.NumberList(res.Missing, 20))
	}
	return nil
}

// dialChain reaches the full node of --chain-api, else of Chain.API in this
// home's config.toml.
func dialChain(c *cli.Context) (*fullnode.Client, error) {
	api := c.String("chain-api")
	if api == "" {
		h, err := home(c)
		if err != nil {
			return nil, err
		}
		if cfg, err := config.Load(h.ConfigPath()); err == nil {
			api = cfg.Chain.API
		}
	}
	if api == "" {
		return nil, fmt.Errorf("no chain configured: give --chain-api TOKEN:/ip4/HOST/tcp/PORT/http (or FULLNODE_API_INFO), or set Chain.API in this home's config.toml")
	}
	chain, err := fullnode.Dial(api, nil, fullnode.WithCallTimeout(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("chain api: %w", err)
	}
	return chain, nil
}
