package prover

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// Handler serves one task of a child. It returns the output (marshalled to
// JSON) or an error, which becomes the response's err_msg.
type Handler func(ctx context.Context, task json.RawMessage) (any, error)

// ServeOptions tunes Serve.
type ServeOptions struct {
	Logger *zap.Logger
	// MaxConcurrent bounds the tasks run at once; 0 means no bound (the
	// parent already limits each child to its Concurrent setting).
	MaxConcurrent int
	// ReadyLine is the handshake printed first: ReadyLine (default) for a
	// [[WdPost]] child, WinningReadyLine for a [[WinPost]] one.
	ReadyLine string
}

// Serve is the child side of the protocol (what `vsm wdpost` runs): it
// prints the ready line on out, then reads requests from in and writes one
// response per request, in completion order. An undecodable request is
// answered with an error (with id 0 when not even the id could be read)
// rather than ignored. Serve returns nil when in reaches EOF (the parent
// closed the pipe) after the running tasks have answered, or the context's
// error when ctx ends.
func Serve(ctx context.Context, in io.Reader, out io.Writer, h Handler, opts ServeOptions) error {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ready := opts.ReadyLine
	if ready == "" {
		ready = ReadyLine
	}
	log = log.With(zap.String("processor", processorName(ready)), zap.Int("pid", os.Getpid()), zap.Int("ppid", os.Getppid()))

	w := bufio.NewWriter(out)
	var wmu sync.Mutex
	var writeErr error
	write := func(resp Response) {
		line, err := json.Marshal(resp)
		if err != nil {
			msg := fmt.Sprintf("cannot encode output: %v", err)
			line, _ = json.Marshal(Response{ID: resp.ID, ErrMsg: &msg})
		}
		wmu.Lock()
		defer wmu.Unlock()
		if writeErr != nil {
			return
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			writeErr = err
			return
		}
		writeErr = w.Flush()
	}

	if _, err := io.WriteString(w, ready+"\n"); err != nil {
		return fmt.Errorf("write ready line: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write ready line: %w", err)
	}
	log.Info("ready")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sem chan struct{}
	if opts.MaxConcurrent > 0 {
		sem = make(chan struct{}, opts.MaxConcurrent)
	}
	var wg sync.WaitGroup
	defer wg.Wait()

	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(in, 1<<20)
		for {
			line, err := readLine(r)
			if len(line) > 0 {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()

	for {
		var line []byte
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				log.Info("stdin closed, finishing running tasks")
				return nil
			}
			return fmt.Errorf("read requests: %w", err)
		case line = <-lines:
		}
		req, err := DecodeRequest(line)
		if err != nil {
			log.Error("undecodable request", zap.Error(err), zap.String("line", truncate(string(line), 200)))
			msg := "undecodable request: " + err.Error()
			write(Response{ID: req.ID, ErrMsg: &msg})
			continue
		}
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sem != nil {
				defer func() { <-sem }()
			}
			write(runHandler(ctx, h, req, log))
		}()
	}
}

// readLine reads one newline-terminated line of at most MaxLineBytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > MaxLineBytes {
			return nil, fmt.Errorf("line longer than %d bytes", MaxLineBytes)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return buf, err
		}
		return buf[:len(buf)-1], nil
	}
}

// runHandler runs one request, turning an error or a panic into err_msg so
// that one bad task does not take the other in-flight tasks down with the
// process.
func runHandler(ctx context.Context, h Handler, req Request, log *zap.Logger) (resp Response) {
	resp.ID = req.ID
	defer func() {
		if p := recover(); p != nil {
			log.Error("task panicked", zap.Uint64("id", req.ID), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			msg := fmt.Sprintf("task panicked: %v", p)
			resp = Response{ID: req.ID, ErrMsg: &msg}
		}
	}()
	out, err := h(ctx, req.Task)
	if err != nil {
		msg := err.Error()
		return Response{ID: req.ID, ErrMsg: &msg}
	}
	data, err := json.Marshal(out)
	if err != nil {
		msg := fmt.Sprintf("cannot encode output: %v", err)
		return Response{ID: req.ID, ErrMsg: &msg}
	}
	resp.Output = data
	return resp
}

// EngineName identifies the built-in engine in outputs.
const EngineName = "vsm-builtin-sha256 (not valid on mainnet)"

// PoStHandler serves WindowPoSt and WinningPoSt tasks with the built-in
// engine, telling them apart by proof_type: a StackedDrgWinning type is a
// WinningPoSt task, anything else goes to WindowPoStHandler (which rejects
// what it does not know). A VerifyPoStTask (it has a "verify" key) is
// checked with engine.Verify, so the runner can verify its own proofs
// before sending them. This is what `vsm wdpost` runs.
func PoStHandler(p engine.Prover, log *zap.Logger) Handler {
	window := WindowPoStHandler(p, log)
	winning := WinningPoStHandler(p, log)
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		if IsVerifyTask(raw) {
			task, err := DecodeVerifyTask(raw)
			if err != nil {
				return nil, err
			}
			return VerifyBuiltin(task)
		}
		var peek struct {
			ProofType string `json:"proof_type"`
		}
		if err := json.Unmarshal(raw, &peek); err == nil {
			if pp, err := sectorfile.PoStProofByName(peek.ProofType); err == nil && pp.Winning {
				return winning(ctx, raw)
			}
		}
		return window(ctx, raw)
	}
}

// WinningPoStHandler serves WinningPoSt tasks with the built-in engine:
// 66 challenged leaves of the one challenged sector, with their paths.
func WinningPoStHandler(p engine.Prover, log *zap.Logger) Handler {
	if log == nil {
		log = zap.NewNop()
	}
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		task, err := decodeWindowPoStTask(raw)
		if err != nil {
			return nil, fmt.Errorf("winning post: %w", err)
		}
		pp, err := sectorfile.PoStProofByName(task.ProofType)
		if err != nil {
			return nil, err
		}
		if !pp.Winning {
			return nil, fmt.Errorf("proof_type %q is not a WinningPoSt type (StackedDrgWinning...V1)", task.ProofType)
		}
		if len(task.Replicas) != sectorfile.WinningPoStSectorCount {
			return nil, fmt.Errorf("winning post of miner t0%d: %d replicas, want exactly the %d challenged sector(s)", task.MinerID, len(task.Replicas), sectorfile.WinningPoStSectorCount)
		}
		sectors := make([]engine.Sector, len(task.Replicas))
		for i, r := range task.Replicas {
			sectors[i] = engine.Sector{ID: r.SectorID, CommR: r.CommR, SealedPath: r.SealedFile, CacheDir: r.CacheDir}
		}
		start := time.Now()
		res, err := p.Prove(ctx, task.MinerID, task.ProofType, task.Seed, sectors)
		if err != nil {
			return nil, fmt.Errorf("winning post of miner t0%d: %w", task.MinerID, err)
		}
		if len(res.Faults) > 0 {
			f := res.Faults[0]
			log.Warn("challenged sector unreadable", zap.Uint64("miner", task.MinerID), zap.Uint64("sector", f.SectorID), zap.String("reason", f.Reason))
			return nil, fmt.Errorf("winning post of miner t0%d: challenged sector %d cannot be proven: %s", task.MinerID, f.SectorID, f.Reason)
		}
		log.Info("winning post proven", zap.Uint64("miner", task.MinerID), zap.Uint64("sector", task.Replicas[0].SectorID), zap.Duration("took", time.Since(start)))
		return WinningPoStOutput{Proofs: [][]byte{res.Proof}, Engine: EngineName, ChallengedReads: res.Reads, VanillaSeconds: time.Since(start).Seconds()}, nil
	}
}

// WindowPoStHandler serves WindowPoSt tasks with the built-in engine: one
// proof over every replica of the task (the union of the partitions of one
// SubmitWindowedPoSt message), as damocles' window_post processor answers.
// Faulty replicas are left out and listed in faults; the one proof covers
// the others ({"proofs":[one],"faults":[...]}), so the runner sends it with
// the faults skipped instead of proving again.
func WindowPoStHandler(p engine.Prover, log *zap.Logger) Handler {
	if log == nil {
		log = zap.NewNop()
	}
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		task, err := decodeWindowPoStTask(raw)
		if err != nil {
			return nil, err
		}
		sectors := make([]engine.Sector, len(task.Replicas))
		for i, r := range task.Replicas {
			sectors[i] = engine.Sector{ID: r.SectorID, CommR: r.CommR, SealedPath: r.SealedFile, CacheDir: r.CacheDir}
		}
		start := time.Now()
		res, err := p.Prove(ctx, task.MinerID, task.ProofType, task.Seed, sectors)
		if err != nil {
			return nil, fmt.Errorf("window post of miner t0%d over %d sectors: %w", task.MinerID, len(sectors), err)
		}
		out := WindowPoStOutput{
			Proofs:          [][]byte{},
			Faults:          []uint64{},
			Engine:          EngineName,
			ChallengedReads: res.Reads,
			VanillaSeconds:  time.Since(start).Seconds(),
		}
		if res.Proof != nil {
			out.Proofs = append(out.Proofs, res.Proof)
		}
		if len(res.Faults) > 0 {
			out.FaultReasons = make(map[string]string, len(res.Faults))
			for _, f := range res.Faults {
				out.Faults = append(out.Faults, f.SectorID)
				out.FaultReasons[strconv.FormatUint(f.SectorID, 10)] = f.Reason
				log.Warn("faulty sector", zap.Uint64("miner", task.MinerID), zap.Uint64("sector", f.SectorID), zap.String("reason", f.Reason))
			}
		}
		log.Info("window post proven", zap.Uint64("miner", task.MinerID), zap.Int("sectors", len(sectors)),
			zap.Int("faults", len(res.Faults)), zap.Duration("took", time.Since(start)))
		return out, nil
	}
}
