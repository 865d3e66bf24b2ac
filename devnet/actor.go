package devnet

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/filecoin-project/go-state-types/exitcode"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/crypto"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/fullnode"
)

// The devnet's miner actor: the admission rules of builtin-actors'
// actors/miner/src/lib.rs (submit_windowed_post, declare_faults,
// declare_faults_recovered) and the deadline and partition code they call
// (deadline_state.rs record_proven_sectors, record_faults,
// declare_faults_recovered; partition_state.rs record_skipped_faults,
// recover_faults, record_faults, declare_faults_recovered; sector_map.rs
// DeadlineSectorMap), checked in the same order with the same exit codes
// and messages of the same words. What the devnet does not model (funds,
// fee debt, consensus faults, terminations, expirations, power) is left
// out rather than faked.

// Exit codes the devnet's actor answers with: go-state-types' exitcode, as
// ints for the records and the report.
const (
	ExitOK                 = int(exitcode.Ok)
	ExitSysInvalidReceiver = int(exitcode.SysErrInvalidReceiver)
	ExitIllegalArgument    = int(exitcode.ErrIllegalArgument)
	ExitNotFound           = int(exitcode.ErrNotFound)
	ExitForbidden          = int(exitcode.ErrForbidden)
	ExitIllegalState       = int(exitcode.ErrIllegalState)
	ExitSerialization      = int(exitcode.ErrSerialization)
	ExitUnhandledMessage   = int(exitcode.ErrUnhandledMessage)
)

// ExitCodeString formats an exit code as Lotus does ("ErrIllegalArgument(16)",
// go-state-types' ExitCode.String).
func ExitCodeString(code int) string { return exitcode.ExitCode(code).String() }

// ExecError is a message the miner actor refused: its exit code and the
// actor's own message.
type ExecError struct {
	ExitCode int
	Reason   string
	Receiver uint64 // the actor's ID
	Method   abi.MethodNum
}

// Backtrace is the FVM's failure text for the message, which Lotus shows
// as the "vm error" of a failed estimation and as InvocResult.Error of
// StateReplay.
func (e *ExecError) Backtrace() string {
	return fmt.Sprintf("message failed with backtrace:\n00: t0%d (method %d) -- %s (%d)\n", e.Receiver, e.Method, e.Reason, e.ExitCode)
}

// Error is Lotus's text for a message whose execution failed during gas
// estimation (api.NewErrExecutionReverted), so a caller that parses
// "exit=[Name(N)]" out of a Lotus error reads the devnet's the same way.
func (e *ExecError) Error() string {
	return fmt.Sprintf("message execution failed (exit=[%s], vm error=[%s (RetCode=%d)])", ExitCodeString(e.ExitCode), e.Backtrace(), e.ExitCode)
}

func execErr(code int, format string, args ...any) *ExecError {
	return &ExecError{ExitCode: code, Reason: fmt.Sprintf(format, args...)}
}

// msgCall is a message to a miner actor.
type msgCall struct {
	From   uint64
	Method abi.MethodNum
	Params []byte
}

// execution is a call that passed every rule: the miner's deadlines as
// they would be after it, and the proof still to verify (the last rule of
// SubmitWindowedPoSt, run outside the chain lock when it can be).
type execution struct {
	deadlines []*deadlineState
	verify    *WindowPoStVerifyInfo
	summary   string
}

// cloneDeadlines copies the deadlines so a call can change them and be
// thrown away, as an aborted actor transaction is. Bitfields are values.
func cloneDeadlines(dls []*deadlineState) []*deadlineState {
	out := make([]*deadlineState, len(dls))
	for i, dl := range dls {
		c := *dl
		c.Partitions = make([]*partitionState, len(dl.Partitions))
		for j, p := range dl.Partitions {
			pc := *p
			c.Partitions[j] = &pc
		}
		out[i] = &c
	}
	return out
}

// runCall executes call against dls (not modified) at epoch, as the miner
// actor would in a tipset of that epoch.
func (c *chain) runCall(m *minerState, dls []*deadlineState, call msgCall, epoch ChainEpoch) (*execution, *ExecError) {
	var ex *execution
	var err *ExecError
	switch call.Method {
	case builtin.MethodsMiner.SubmitWindowedPoSt:
		ex, err = c.submitWindowedPoSt(m, dls, call, epoch)
	case builtin.MethodsMiner.DeclareFaults:
		ex, err = c.declareFaults(m, dls, call, epoch, false)
	case builtin.MethodsMiner.DeclareFaultsRecovered:
		ex, err = c.declareFaults(m, dls, call, epoch, true)
	default:
		// The devnet's actor serves only these; the real one answers an
		// unknown method number the same way (runtime dispatch).
		err = execErr(ExitUnhandledMessage, "invalid method: %d (the devnet's miner actor serves 5 SubmitWindowedPoSt, 10 DeclareFaults, 11 DeclareFaultsRecovered)", call.Method)
	}
	if err != nil {
		err.Receiver, err.Method = m.ID, call.Method
		return nil, err
	}
	return ex, nil
}

// validCaller is rt.validate_immediate_caller_is(control addresses, worker,
// owner). Devnet miners have no control addresses.
func validCaller(m *minerState, from uint64) *ExecError {
	if from == m.Worker || from == m.Owner {
		return nil
	}
	return execErr(ExitForbidden, "caller t0%d is not one of supported", from)
}

// validPoStProofType is policy.valid_post_proof_type: the V1_1 WindowPoSt
// types of the sector sizes the network enables. The devnet enables every
// size, as builtin-actors' devnet builds do.
func validPoStProofType(t abi.RegisteredPoStProof) bool {
	for _, size := range []abi.SectorSize{2 << 10, 8 << 20, 512 << 20, 32 << 30, 64 << 30} {
		if v, err := fullnode.WindowPoStProofForSize(size); err == nil && v == t {
			return true
		}
	}
	return false
}

// submitWindowedPoSt follows lib.rs submit_windowed_post and
// deadline_state.rs record_proven_sectors.
func (c *chain) submitWindowedPoSt(m *minerState, dls []*deadlineState, call msgCall, epoch ChainEpoch) (*execution, *ExecError) {
	var p miner.SubmitWindowedPoStParams
	if err := decodeParams(&p, call.Params, func(check func(bitfield.BitField)) {
		for _, part := range p.Partitions {
			check(part.Skipped)
		}
	}); err != nil {
		return nil, err
	}
	// Checks on the parameters alone come first, before the caller is known.
	if len(p.Proofs) != 1 {
		return nil, execErr(ExitIllegalArgument, "expected exactly one proof, got %d", len(p.Proofs))
	}
	if !validPoStProofType(p.Proofs[0].PoStProof) {
		return nil, execErr(ExitIllegalArgument, "proof type %d not allowed", p.Proofs[0].PoStProof)
	}
	if p.Deadline >= c.policy.PeriodDeadlines {
		return nil, execErr(ExitIllegalArgument, "invalid deadline %d of %d", p.Deadline, c.policy.PeriodDeadlines)
	}
	if len(p.ChainCommitRand) > fullnode.RandomnessLength {
		return nil, execErr(ExitIllegalArgument, "expected at most %d bytes of randomness, got %d", fullnode.RandomnessLength, len(p.ChainCommitRand))
	}

	perPartition, err := c.verifier.MaxWindowPoStProofSize(m.PoStProof)
	if err != nil {
		return nil, execErr(ExitIllegalState, "failed to determine max window post proof size: %v", err)
	}
	if e := validCaller(m, call.From); e != nil {
		return nil, e
	}
	if p.Proofs[0].PoStProof != m.PoStProof {
		return nil, execErr(ExitIllegalArgument, "expected proof of type %d, got %d", m.PoStProof, p.Proofs[0].PoStProof)
	}
	if maxSize := perPartition * len(p.Partitions); len(p.Proofs[0].ProofBytes) > maxSize {
		return nil, execErr(ExitIllegalArgument, "expected proof to be smaller than %d bytes", maxSize)
	}
	if limit := fullnode.PoStPartitionLimit(m.PartitionSize); uint64(len(p.Partitions)) > limit {
		return nil, execErr(ExitIllegalArgument, "too many partitions %d, limit %d", len(p.Partitions), limit)
	}

	di := c.deadlineAt(m, epoch)
	// Cannot fail while deadlines are derived from the proving-period
	// offset, as the actor derives them; kept so the rules read in order.
	if !di.IsOpen() {
		return nil, execErr(ExitIllegalState, "proving period %d not yet open at %d", di.PeriodStart, epoch)
	}
	if p.Deadline != di.Index {
		return nil, execErr(ExitIllegalArgument, "invalid deadline %d at epoch %d, expected %d", p.Deadline, epoch, di.Index)
	}
	// Deadlines before FirstDueEpoch are not judged when they close, but
	// their proofs are taken like any other: a real chain has no such
	// epoch, and refusing them made provers report failures no chain would
	// cause.
	if p.ChainCommitEpoch < di.Challenge {
		return nil, execErr(ExitIllegalArgument, "expected chain commit epoch %d to be after %d", p.ChainCommitEpoch, di.Challenge)
	}
	if p.ChainCommitEpoch >= epoch {
		return nil, execErr(ExitIllegalArgument, "chain commit epoch %d must be less than the current epoch %d", p.ChainCommitEpoch, epoch)
	}
	want, rerr := c.randomnessLocked("ticket", crypto.DomainSeparationTag_PoStChainCommit, p.ChainCommitEpoch, nil, epoch)
	if rerr != nil {
		return nil, execErr(ExitIllegalState, "getting chain commit randomness: %v", rerr)
	}
	if string(want) != string(p.ChainCommitRand) {
		return nil, execErr(ExitIllegalArgument, "post commit randomness mismatched")
	}

	// record_proven_sectors, on a scratch copy of the deadlines.
	wrap := func(e *ExecError) *ExecError {
		e.Reason = fmt.Sprintf("failed to process post submission for deadline %d: %s", p.Deadline, e.Reason)
		return e
	}
	indexes := make([]uint64, len(p.Partitions))
	for i, part := range p.Partitions {
		indexes[i] = part.Index
	}
	var b bits
	illegalState := func() *ExecError {
		return wrap(execErr(ExitIllegalState, "bitfield operation failed: %v", b.err))
	}
	posted := bitfield.NewFromSet(indexes)
	if b.count(posted) != uint64(len(p.Partitions)) {
		if b.err != nil {
			return nil, illegalState()
		}
		return nil, wrap(execErr(ExitIllegalArgument, "duplicate partitions proven"))
	}
	next := cloneDeadlines(dls)
	dl := next[p.Deadline]
	if already := b.inter(dl.PostSubmissions, posted); !b.empty(already) {
		return nil, wrap(execErr(ExitIllegalArgument, "partition already proven: %v", bitString(already)))
	}
	var all, ignored []bitfield.BitField
	for _, part := range p.Partitions {
		if part.Index >= uint64(len(dl.Partitions)) {
			return nil, wrap(execErr(ExitNotFound, "no such partition %d", part.Index))
		}
		ps := dl.Partitions[part.Index]
		if !b.subset(part.Skipped, ps.All) {
			if b.err != nil {
				return nil, illegalState()
			}
			return nil, wrap(execErr(ExitIllegalArgument, "failed to add skipped faults to partition %d: skipped faults contains sectors outside partition", part.Index))
		}
		// Skipped sectors become faults (a skipped recovery is retracted);
		// then every remaining declared recovery is taken as recovered,
		// the proof being trusted to cover it.
		ps.Recovering = b.sub(ps.Recovering, part.Skipped)
		ps.Faulty = b.sub(b.union(ps.Faulty, part.Skipped), ps.Recovering)
		ps.Recovering = bitfield.New()
		all = append(all, ps.All)
		ignored = append(ignored, ps.Faulty)
	}
	dl.PostSubmissions = b.union(dl.PostSubmissions, posted)
	proven := b.sub(b.union(all...), b.union(ignored...))
	provenCount := b.count(proven)
	provenSectors := b.all(proven)
	if b.err != nil {
		return nil, illegalState()
	}
	if provenCount == 0 {
		return nil, execErr(ExitIllegalArgument, "cannot prove partitions with no active sectors")
	}
	dl.Messages++

	seed, rerr := c.windowRandomnessLocked(m, di, epoch)
	if rerr != nil {
		return nil, execErr(ExitIllegalState, "getting window post challenge randomness: %v", rerr)
	}
	// The actor loads the proven sectors with a good stand-in for every
	// ignored one, and the proofs library keys them by sector number, so
	// what the proof must cover is the proven set in ascending order.
	chk := &WindowPoStVerifyInfo{Miner: m.ID, ProofType: m.PoStProof, Randomness: seed, Proof: p.Proofs[0].ProofBytes}
	for _, n := range provenSectors {
		chk.Sectors = append(chk.Sectors, SectorCommitment{Number: n, CommR: m.commR[n]})
	}
	return &execution{
		deadlines: next,
		verify:    chk,
		summary:   fmt.Sprintf("window post for deadline %d, partitions %v, %d sectors proven", p.Deadline, bitString(posted), provenCount),
	}, nil
}

// declareFaults follows lib.rs declare_faults / declare_faults_recovered,
// sector_map.rs DeadlineSectorMap and the deadline and partition
// record_faults / declare_faults_recovered.
func (c *chain) declareFaults(m *minerState, dls []*deadlineState, call msgCall, epoch ChainEpoch, recovered bool) (*execution, *ExecError) {
	// DeclareFaultsParams and DeclareFaultsRecoveredParams have the same
	// shape; the recoveries are read as fault declarations.
	var p miner.DeclareFaultsParams
	if recovered {
		var rp miner.DeclareFaultsRecoveredParams
		if err := decodeParams(&rp, call.Params, func(check func(bitfield.BitField)) {
			for _, r := range rp.Recoveries {
				check(r.Sectors)
			}
		}); err != nil {
			return nil, err
		}
		for _, r := range rp.Recoveries {
			p.Faults = append(p.Faults, miner.FaultDeclaration(r))
		}
	} else if err := decodeParams(&p, call.Params, func(check func(bitfield.BitField)) {
		for _, f := range p.Faults {
			check(f.Sectors)
		}
	}); err != nil {
		return nil, err
	}
	var b bits
	illegalState := func() *ExecError {
		return execErr(ExitIllegalState, "bitfield operation failed: %v", b.err)
	}
	// DeadlineSectorMap: entries for one (deadline, partition) merge.
	type key struct{ dl, part uint64 }
	merged := map[key]bitfield.BitField{}
	for _, f := range p.Faults {
		if f.Deadline >= c.policy.PeriodDeadlines {
			return nil, execErr(ExitIllegalArgument, "failed to process deadline %d, partition %d: invalid deadline %d", f.Deadline, f.Partition, f.Deadline)
		}
		k := key{f.Deadline, f.Partition}
		if prev, ok := merged[k]; ok {
			merged[k] = b.union(prev, f.Sectors)
		} else {
			merged[k] = f.Sectors
		}
	}
	var sectors uint64
	for _, bf := range merged {
		sectors += b.count(bf)
	}
	if b.err != nil {
		return nil, illegalState()
	}
	if n := uint64(len(merged)); n > miner.AddressedPartitionsMax {
		return nil, execErr(ExitIllegalArgument, "cannot process requested parameters: too many partitions %d, max %d", n, miner.AddressedPartitionsMax)
	}
	if sectors > miner.AddressedSectorsMax {
		return nil, execErr(ExitIllegalArgument, "cannot process requested parameters: too many sectors %d, max %d", sectors, miner.AddressedSectorsMax)
	}
	if e := validCaller(m, call.From); e != nil {
		return nil, e
	}

	keys := make([]key, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	// The actor walks deadlines, then partitions, in ascending order, so
	// the first error it meets is the lowest one's.
	slices.SortFunc(keys, func(a, b key) int {
		if a.dl != b.dl {
			return cmpU64(a.dl, b.dl)
		}
		return cmpU64(a.part, b.part)
	})
	kind, verb := "fault", "declare faults"
	if recovered {
		kind, verb = "recovery", "declare recoveries"
	}
	periodStart := c.deadlineAt(m, epoch).PeriodStart
	next := cloneDeadlines(dls)
	for i, k := range keys {
		if i == 0 || keys[i-1].dl != k.dl {
			// declaration_deadline_info + validate_fr_declaration_deadline:
			// the next occurrence of the deadline that has not closed, up
			// to its fault cutoff.
			target := c.policy.NewInfo(periodStart, k.dl, epoch).NextNotElapsed()
			if target.FaultCutoffPassed() {
				return nil, execErr(ExitIllegalArgument, "failed %s declaration at deadline %d: late fault or recovery declaration", kind, k.dl)
			}
		}
		dl := next[k.dl]
		if k.part >= uint64(len(dl.Partitions)) {
			return nil, execErr(ExitNotFound, "failed to %s for deadline %d: no such partition %d", verb, k.dl, k.part)
		}
		ps := dl.Partitions[k.part]
		set := merged[k]
		if !b.subset(set, ps.All) {
			if b.err != nil {
				return nil, illegalState()
			}
			inner := "failed to add recoveries"
			if !recovered {
				inner = fmt.Sprintf("failed to declare faults in partition %d", k.part)
			}
			return nil, execErr(ExitIllegalArgument, "failed to %s for deadline %d: %s: failed fault declaration: not all sectors are assigned to the partition", verb, k.dl, inner)
		}
		if recovered {
			// Sectors that are not faulty, or already recovering, are
			// ignored, not refused.
			ps.Recovering = b.union(ps.Recovering, b.inter(set, ps.Faulty))
		} else {
			// A declared fault retracts a declared recovery.
			ps.Faulty = b.union(ps.Faulty, set)
			ps.Recovering = b.sub(ps.Recovering, set)
		}
	}
	if b.err != nil {
		return nil, illegalState()
	}
	return &execution{
		deadlines: next,
		summary:   fmt.Sprintf("%s declaration: %d partitions, %d sectors", kind, len(merged), sectors),
	}, nil
}

// decodeParams decodes a message's params with their cbor-gen decoder, as
// strictly as builtin-actors' deserializer: no trailing bytes, and every
// bitfield (listed by bitfields) a valid RLE+ encoding (go-bitfield checks
// that lazily, the Rust actors when decoding).
func decodeParams(p cbg.CBORUnmarshaler, raw []byte, bitfields func(check func(bitfield.BitField))) *ExecError {
	r := bytes.NewReader(raw)
	err := p.UnmarshalCBOR(r)
	if err == nil && r.Len() > 0 {
		err = fmt.Errorf("%d trailing bytes", r.Len())
	}
	if err == nil {
		bitfields(func(bf bitfield.BitField) {
			if err == nil {
				_, err = bf.Count()
			}
		})
	}
	if err != nil {
		return execErr(ExitSerialization, "failed to deserialize method parameters: %v", err)
	}
	return nil
}

// verifyKey identifies a proof check, so a proof verified when its message
// was estimated is not verified again when the same check comes up at
// execution.
func verifyKey(v *WindowPoStVerifyInfo) [32]byte {
	h := sha256.New()
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v.Miner)
	h.Write(buf[:])
	binary.BigEndian.PutUint64(buf[:], uint64(v.ProofType))
	h.Write(buf[:])
	h.Write(v.Randomness[:])
	for _, s := range v.Sectors {
		binary.BigEndian.PutUint64(buf[:], s.Number)
		h.Write(buf[:])
		h.Write(s.CommR[:])
	}
	h.Write(v.Proof)
	return [32]byte(h.Sum(nil))
}
