package prover

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// conn is one running child process and its two pipes.
type conn struct {
	s    *Supervisor
	c    *child
	log  *zap.Logger
	cmd  *exec.Cmd
	pid  int
	tail *tail

	stdin   io.WriteCloser
	writeCh chan []byte
	closing chan struct{} // closed to ask the request loop to close stdin
	closeMu sync.Once
	stderr  chan struct{} // closed when the stderr forwarder has finished
	done    chan struct{} // closed when the process is gone and calls failed

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*call
	reason  string // why the process was killed, if we killed it
	death   string // why the process is gone, set before done closes
	junk    string // the last stdout line that was not a response
	junkN   int    // how many such lines
}

type call struct {
	id        uint64
	resp      chan callResult
	abandoned time.Time // when the caller gave up; zero while it waits
}

type callResult struct {
	resp Response
	err  error
}

// ChildError is a child's err_msg answer to a request.
type ChildError struct {
	Child string
	PID   int
	ID    uint64
	Msg   string
}

func (e *ChildError) Error() string {
	return fmt.Sprintf("child %s (pid %d) failed request %d: %s", e.Child, e.PID, e.ID, e.Msg)
}

// startConn spawns the child of c and waits for its ready line.
func (s *Supervisor) startConn(ctx context.Context, c *child) (*conn, error) {
	cmd := exec.Command(c.bin, c.cfg.Args...)
	cmd.Env = os.Environ()
	for _, k := range slices.Sorted(maps.Keys(c.cfg.Envs)) {
		cmd.Env = append(cmd.Env, k+"="+c.cfg.Envs[k])
	}
	setProcAttrs(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("child %s: %w", c.name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("child %s: %w", c.name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("child %s: %w", c.name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("child %s: start %s: %w", c.name, c.bin, err)
	}
	cn := &conn{
		s: s, c: c, cmd: cmd, pid: cmd.Process.Pid, tail: &tail{},
		stdin: stdin, writeCh: make(chan []byte), closing: make(chan struct{}),
		stderr: make(chan struct{}), done: make(chan struct{}), pending: map[uint64]*call{},
	}
	ready := readyLine(c.kind)
	cn.log = s.log.With(zap.String("processor", processorName(ready)), zap.String("child", c.name),
		zap.Int("pid", cn.pid), zap.Int("ppid", os.Getpid()))
	go cn.forwardStderr(stderr)

	out := bufio.NewReaderSize(stdout, 1<<20)
	first := make(chan []byte, 1)
	firstErr := make(chan error, 1)
	go func() {
		line, err := readLine(out)
		if err != nil && len(line) == 0 {
			firstErr <- err
			return
		}
		first <- line
	}()
	timeout := time.Duration(c.cfg.ReadyTimeoutSecs) * time.Second
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	fail := func(format string, args ...any) (*conn, error) {
		_ = killGroup(cn.pid)
		<-cn.stderr
		werr := cmd.Wait()
		return nil, fmt.Errorf("child %s (%s, pid %d): %s (%v; %s)", c.name, c.bin, cn.pid, fmt.Sprintf(format, args...), werr, cn.tail)
	}
	select {
	case line := <-first:
		if got := strings.TrimRight(string(line), "\r"); got != ready {
			return fail("first line was %q, want the ready line %q; is Bin a vc-processors %s prover and Args right?", truncate(got, 100), ready, processorName(ready))
		}
	case err := <-firstErr:
		return fail("exited or closed stdout before printing the ready line: %v", err)
	case <-timer.C:
		return fail("did not print the ready line %q within ReadyTimeoutSecs=%d", ready, c.cfg.ReadyTimeoutSecs)
	case <-ctx.Done():
		return fail("start interrupted: %v", ctx.Err())
	}
	cn.log.Info("ready", zap.String("bin", c.bin), zap.Int("concurrent", c.cfg.Concurrent), zap.Int("weight", c.cfg.Weight))
	go cn.requestLoop()
	go cn.responseLoop(out)
	go cn.watchdog()
	return cn, nil
}

// forwardStderr copies the child's log lines into zap, tagged with its pid.
// Lines are capped at 8 KiB so a child dumping binary data cannot bloat the
// log.
func (cn *conn) forwardStderr(r io.Reader) {
	defer close(cn.stderr)
	br := bufio.NewReaderSize(r, 8<<10)
	for {
		chunk, err := br.ReadSlice('\n')
		line := strings.TrimRight(string(chunk), "\r\n")
		if err == bufio.ErrBufferFull {
			line += " [truncated]"
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
		}
		if line != "" {
			cn.tail.add(line)
			cn.log.Info("child stderr", zap.String("line", line))
		}
		if err != nil {
			return
		}
	}
}

// requestLoop is the only writer of the child's stdin.
func (cn *conn) requestLoop() {
	cn.log.Info("request loop start")
	for {
		select {
		case line := <-cn.writeCh:
			if _, err := cn.stdin.Write(line); err != nil {
				cn.kill("write request to stdin: " + err.Error())
				return
			}
		case <-cn.closing:
			_ = cn.stdin.Close()
			return
		case <-cn.done:
			return
		}
	}
}

// responseLoop reads the child's stdout until it closes, then reaps the
// process and fails what is still pending.
func (cn *conn) responseLoop(r *bufio.Reader) {
	cn.log.Info("response loop start")
	for {
		line, err := readLine(r)
		if len(line) > 0 {
			cn.handleLine(line)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				cn.kill("read stdout: " + err.Error())
			}
			break
		}
	}
	cn.finish()
}

func (cn *conn) handleLine(line []byte) {
	resp, err := DecodeResponse(line)
	cn.mu.Lock()
	cl, ok := cn.pending[resp.ID]
	if err != nil && (!ok || resp.ID == 0) {
		cn.junk = truncate(string(line), 80)
		cn.junkN++
		cn.mu.Unlock()
		cn.protocolError("child printed a line on stdout that is not a protocol response", zap.Error(err),
			zap.String("line", truncate(string(line), 200)))
		return
	}
	if !ok {
		cn.mu.Unlock()
		cn.protocolError("child answered an unknown request id", zap.Uint64("id", resp.ID))
		return
	}
	delete(cn.pending, resp.ID)
	abandoned := !cl.abandoned.IsZero()
	cn.mu.Unlock()
	if abandoned {
		cn.log.Info("late answer to an abandoned request discarded", zap.Uint64("id", resp.ID),
			zap.Duration("late_by", time.Since(cl.abandoned)))
		cn.s.release(cn.c, cn)
		return
	}
	if err != nil {
		cn.protocolError("child answered with a malformed response", zap.Uint64("id", resp.ID), zap.Error(err))
		err = &ChildFailure{Child: cn.c.name, PID: cn.pid, Kind: FailMalformed,
			Detail: fmt.Sprintf("response to request %d: %v; the line began %q", resp.ID, err, truncate(string(line), 80))}
	}
	cl.resp <- callResult{resp: resp, err: err}
}

func (cn *conn) protocolError(msg string, fields ...zap.Field) {
	cn.s.mu.Lock()
	cn.c.protoErr++
	cn.s.mu.Unlock()
	cn.log.Warn(msg, fields...)
}

// watchdog kills a child that keeps a request the parent gave up on for
// longer than HangGrace: such a child is stuck (or far too slow) and holds a
// slot, and possibly a GPU, for nothing.
func (cn *conn) watchdog() {
	grace := cn.s.opts.HangGrace
	t := time.NewTicker(max(grace/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
		}
		cn.mu.Lock()
		var stuck *call
		for _, cl := range cn.pending {
			if !cl.abandoned.IsZero() && time.Since(cl.abandoned) > grace {
				stuck = cl
				break
			}
		}
		cn.mu.Unlock()
		if stuck != nil {
			cn.kill(fmt.Sprintf("hung: request %d was given up %s ago and is still unanswered (HangGrace %s)",
				stuck.id, time.Since(stuck.abandoned).Round(time.Millisecond), grace))
			return
		}
	}
}

// kill ends the process group; the response loop then sees EOF and calls
// finish. The first reason wins.
func (cn *conn) kill(reason string) {
	cn.mu.Lock()
	if cn.reason == "" {
		cn.reason = reason
	}
	cn.mu.Unlock()
	cn.log.Warn("killing child", zap.String("reason", reason))
	cn.s.markKilled(cn, reason)
	if err := killGroup(cn.pid); err != nil {
		cn.log.Debug("kill", zap.Error(err))
	}
}

func (cn *conn) closeStdin() {
	cn.closeMu.Do(func() { close(cn.closing) })
}

// finish reaps the process and fails every pending call with ErrChildLost.
func (cn *conn) finish() {
	select {
	case <-cn.stderr:
	case <-time.After(2 * time.Second):
		// A grandchild may hold stderr open; the process itself is gone.
	}
	werr := cn.cmd.Wait()
	cn.mu.Lock()
	death := cn.reason
	if death == "" {
		if werr != nil {
			death = "exited unexpectedly: " + werr.Error()
		} else {
			death = "exited"
		}
	}
	death += " (" + cn.tail.String() + ")"
	cn.death = death
	pending := cn.pending
	cn.pending = map[uint64]*call{}
	cn.mu.Unlock()
	for id, cl := range pending {
		if !cl.abandoned.IsZero() {
			continue
		}
		cl.resp <- callResult{err: &ChildFailure{Child: cn.c.name, PID: cn.pid, Kind: FailExited,
			Detail: fmt.Sprintf("%s while request %d was in flight", death, id)}}
	}
	if len(pending) > 0 {
		cn.log.Warn("child gone with requests in flight", zap.Int("requests", len(pending)), zap.String("reason", death))
	}
	close(cn.done)
}

func (cn *conn) deathReason() string {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.death
}

// limit is a request's own time bound on a child, from its block.
type limit struct {
	d   time.Duration
	why string // the ext-prover.cfg key and what d was computed from
}

// roundTrip sends one request and waits for its answer, at most lim. A
// child that overruns lim is hung: it is killed (and so restarted) and the
// request fails with a FailTimeout ChildFailure. lateRelease reports that
// the request is still held by the child: the slot stays taken until the
// child answers or dies.
func (cn *conn) roundTrip(ctx context.Context, task json.RawMessage, lim limit) (out json.RawMessage, lateRelease bool, err error) {
	cn.mu.Lock()
	if cn.death != "" {
		cn.mu.Unlock()
		return nil, false, &ChildFailure{Child: cn.c.name, PID: cn.pid, Kind: FailExited, Detail: cn.death}
	}
	cn.nextID++
	cl := &call{id: cn.nextID, resp: make(chan callResult, 1)}
	cn.pending[cl.id] = cl
	cn.mu.Unlock()

	line, err := json.Marshal(Request{ID: cl.id, Task: task})
	if err != nil {
		cn.forget(cl.id)
		return nil, false, fmt.Errorf("encode request: %w", err)
	}
	select {
	case cn.writeCh <- append(line, '\n'):
	case <-ctx.Done():
		cn.forget(cl.id)
		return nil, false, fmt.Errorf("request to child %s not sent: %w", cn.c.name, ctx.Err())
	case <-cn.done:
		cn.forget(cl.id)
		return nil, false, &ChildFailure{Child: cn.c.name, PID: cn.pid, Kind: FailExited, Detail: cn.deathReason() + " before the request was sent"}
	}
	sent := time.Now()
	timer := time.NewTimer(lim.d)
	defer timer.Stop()
	select {
	case r := <-cl.resp:
		return cn.result(cl.id, r)
	case <-timer.C:
		if f := cn.timedOut(cl, lim); f != nil {
			return nil, true, f
		}
		return cn.result(cl.id, <-cl.resp) // answered just in time
	case <-ctx.Done():
		cn.mu.Lock()
		if _, still := cn.pending[cl.id]; still {
			cl.abandoned = time.Now()
			cn.mu.Unlock()
			return nil, true, fmt.Errorf("request %d to child %s (pid %d) given up after %s: %w (the child keeps the slot until it answers, or is restarted after %s)",
				cl.id, cn.c.name, cn.pid, time.Since(sent).Round(time.Millisecond), ctx.Err(), cn.s.opts.HangGrace)
		}
		cn.mu.Unlock()
		return cn.result(cl.id, <-cl.resp) // answered while we were giving up
	}
}

// timedOut abandons a request that overran its limit and kills the child,
// which holds the request and maybe a GPU for nothing; the supervisor
// restarts it. It returns nil if the answer arrived meanwhile.
func (cn *conn) timedOut(cl *call, lim limit) *ChildFailure {
	cn.mu.Lock()
	if _, still := cn.pending[cl.id]; !still {
		cn.mu.Unlock()
		return nil
	}
	cl.abandoned = time.Now()
	detail := fmt.Sprintf("no answer to request %d after %s (%s); killed, it is restarted", cl.id, lim.d, lim.why)
	if cn.junkN > 0 {
		detail += fmt.Sprintf("; meanwhile it printed %d stdout line(s) that are not responses, the last began %q", cn.junkN, cn.junk)
	}
	cn.mu.Unlock()
	cn.kill("hung: " + detail)
	return &ChildFailure{Child: cn.c.name, PID: cn.pid, Kind: FailTimeout, Detail: detail}
}

func (cn *conn) result(id uint64, r callResult) (json.RawMessage, bool, error) {
	if r.err != nil {
		return nil, false, r.err
	}
	if r.resp.ErrMsg != nil {
		return nil, false, &ChildError{Child: cn.c.name, PID: cn.pid, ID: id, Msg: *r.resp.ErrMsg}
	}
	return r.resp.Output, false, nil
}

func (cn *conn) forget(id uint64) {
	cn.mu.Lock()
	delete(cn.pending, id)
	cn.mu.Unlock()
}
