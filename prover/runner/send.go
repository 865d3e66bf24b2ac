package runner

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fullnode"
)

// maxRefusals is how many of a deadline's messages the actor may refuse
// before the runner stops trying and records the refusal as the outcome.
const maxRefusals = 3

// receiptTimeout bounds one wait for a receipt: far more than the
// confidence takes on any chain, so a wait that long means the message
// is stuck.
const receiptTimeout = 30 * time.Minute

// refusedError is a message that landed with a non-zero exit code, or a
// push the node refused because the message failed at gas estimation.
type refusedError struct {
	what string // the message, e.g. "window post bafy... for partitions [0 1]"
	why  string // exit code by name and the actor's message
	// estimation: refused at gas estimation; nothing landed, and the
	// state it ran against changes only with the next tipset.
	estimation bool
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("refused by the miner actor: %s: %s", e.what, e.why)
}

// exitRE finds the exit code in Lotus's error for a message whose
// execution failed during gas estimation (api.ErrExecutionReverted):
// "message execution failed (exit=[ErrIllegalArgument(16)], ...)", or a
// bare number.
var exitRE = regexp.MustCompile(`exit=\[(?:[A-Za-z0-9_]*\()?(-?\d+)\)?\]`)

// estimationRefusal tells whether err, from MpoolPushMessage, is the
// actor refusing the message at gas estimation, and with which exit code
// (non-zero). Other push errors (the node unreachable, a full mpool) are
// not refusals.
func estimationRefusal(err error) (exitcode.ExitCode, bool) {
	if err == nil {
		return 0, false
	}
	m := exitRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	n, perr := strconv.ParseInt(m[1], 10, 64)
	if perr != nil || n == 0 {
		return 0, false
	}
	return exitcode.ExitCode(n), true
}

// spec is the send spec of every message the runner pushes: the fee bound,
// the fee-cap policy and gas overestimation from the config, and the
// message's own MsgUuid.
func (r *Runner) spec(uuid string) *fullnode.MessageSendSpec {
	return &fullnode.MessageSendSpec{MaxFee: r.cfg.MaxFee, MsgUuid: uuid, MaximizeFeeCap: r.cfg.MaximizeFeeCap, GasOverEstimation: r.cfg.GasOverEstimation}
}

// receiptContext is for waiting on a receipt: it outlives the job's
// context (a proof sent in the last epochs of a window gets its receipt
// after the window closed, or after the deadline moved to another node,
// and the outcome still needs it) but ends when the runner stops.
func (r *Runner) receiptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	r.mu.Lock()
	stop := r.stop
	r.mu.Unlock()
	if stop == nil { // Compute before Run: the caller's context rules
		return context.WithTimeout(ctx, receiptTimeout)
	}
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), receiptTimeout)
	unhook := context.AfterFunc(stop, cancel)
	return c, func() { unhook(); cancel() }
}

// waitReceipt follows a message to its receipt with the configured
// confidence, as Lotus does after every PoSt and declaration. why is ""
// for exit code 0, else the exit code and the actor's message; either way
// the receipt is counted in the metrics.
func (r *Runner) waitReceipt(ctx context.Context, method string, cid cid.Cid) (ml *fullnode.MsgLookup, why string, err error) {
	ctx, cancel := r.receiptContext(ctx)
	defer cancel()
	ml, err = r.cfg.Chain.StateWaitMsg(ctx, cid, r.cfg.MessageConfidence, fullnode.LookbackNoLimit, true)
	if err != nil {
		r.metrics.receipt(method, -1)
		return nil, "", fmt.Errorf("waiting for %s %s: %w", method, cid, err)
	}
	r.metrics.receipt(method, int64(ml.Receipt.ExitCode))
	if ml.Receipt.ExitCode != 0 {
		why = r.cfg.Chain.ReceiptError(ctx, ml)
		if why == "" {
			why = "exit " + ml.Receipt.ExitCode.String()
		}
		r.log.Debug("receipt", zap.String("method", method), zap.Stringer("message", cid), zap.Int64("exit_code", int64(ml.Receipt.ExitCode)))
	}
	return ml, why, nil
}
