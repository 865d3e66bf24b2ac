package rpc

import (
	"fmt"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/cluster/schedule"
	"github.com/vsm-project/vsm/fsm"
)

// The typed API seam: every method the daemon serves is named here, once,
// with its permission and the Go type of its reply. The server registers
// through these names (Mux.Register refuses a name that is not listed, or
// listed with another permission), the CLI calls through them and decodes
// into these types, and the docs check walks this list, so a method cannot
// be served undocumented or called by a misspelt name. Methods registered
// outside this package (the proving and schedule methods in daemon) are
// listed here all the same.

const (
	MethodVersion                 = "VSM.Version"
	MethodStatus                  = "VSM.Status"
	MethodMinerAdd                = "VSM.MinerAdd"
	MethodMinerGet                = "VSM.MinerGet"
	MethodMinerList               = "VSM.MinerList"
	MethodMinerRemove             = "VSM.MinerRemove"
	MethodStorageAdd              = "VSM.StorageAdd"
	MethodStorageList             = "VSM.StorageList"
	MethodStorageRemove           = "VSM.StorageRemove"
	MethodSectorLocationPut       = "VSM.SectorLocationPut"
	MethodSectorLocationGet       = "VSM.SectorLocationGet"
	MethodSectorLocationList      = "VSM.SectorLocationList"
	MethodSectorLocationCount     = "VSM.SectorLocationCount"
	MethodSectorLocationDelete    = "VSM.SectorLocationDelete"
	MethodSnapshotNow             = "VSM.SnapshotNow"
	MethodClusterApply            = "VSM.ClusterApply"
	MethodClusterReadIndex        = "VSM.ClusterReadIndex"
	MethodClusterPeers            = "VSM.ClusterPeers"
	MethodClusterMembers          = "VSM.ClusterMembers"
	MethodClusterJoin             = "VSM.ClusterJoin"
	MethodClusterLeave            = "VSM.ClusterLeave"
	MethodClusterRemovePeer       = "VSM.ClusterRemovePeer"
	MethodClusterTransferLeader   = "VSM.ClusterTransferLeader"
	MethodClusterLeaderRemovePeer = "VSM.ClusterLeaderRemovePeer"
	MethodClusterLeaderTransfer   = "VSM.ClusterLeaderTransfer"
	MethodClusterDrain            = "VSM.ClusterDrain"
	MethodClusterSchedule         = "VSM.ClusterSchedule"
	MethodProvingCheck            = "VSM.ProvingCheck"
	MethodProvingCompute          = "VSM.ProvingCompute"

	// MethodVenusSectorIndexerFind is the original manager's sector-indexer
	// read (see venus.go).
	MethodVenusSectorIndexerFind = "Venus.SectorIndexerFind"
)

// MethodSpec names one method.
type MethodSpec struct {
	Name string
	Perm Perm
	// Reply is a zero value of the method's result type (nil: no result,
	// or a type kept in another package, see ProvingCompute).
	Reply any
}

// Methods is every method of the API.
var Methods = []MethodSpec{
	{Name: MethodVersion, Perm: PermRead, Reply: Version{}},
	{Name: MethodStatus, Perm: PermRead, Reply: cluster.Status{}},
	{Name: MethodMinerAdd, Perm: PermWrite, Reply: Changed{}},
	{Name: MethodMinerGet, Perm: PermRead, Reply: fsm.MinerSummary{}},
	{Name: MethodMinerList, Perm: PermRead, Reply: []fsm.MinerSummary{}},
	{Name: MethodMinerRemove, Perm: PermWrite, Reply: Changed{}},
	{Name: MethodStorageAdd, Perm: PermWrite, Reply: Changed{}},
	{Name: MethodStorageList, Perm: PermRead, Reply: []fsm.StorageInstance{}},
	{Name: MethodStorageRemove, Perm: PermWrite, Reply: Changed{}},
	{Name: MethodSectorLocationPut, Perm: PermWrite, Reply: Changed{}},
	{Name: MethodSectorLocationGet, Perm: PermRead, Reply: fsm.SectorLocation{}},
	{Name: MethodSectorLocationList, Perm: PermRead, Reply: []fsm.SectorLocation{}},
	{Name: MethodSectorLocationCount, Perm: PermRead, Reply: 0},
	{Name: MethodSectorLocationDelete, Perm: PermWrite, Reply: Changed{}},
	{Name: MethodSnapshotNow, Perm: PermAdmin, Reply: nil},
	{Name: MethodClusterApply, Perm: PermAdmin, Reply: Changed{}},
	{Name: MethodClusterReadIndex, Perm: PermAdmin, Reply: uint64(0)},
	{Name: MethodClusterPeers, Perm: PermAdmin, Reply: []cluster.Peer{}},
	{Name: MethodClusterMembers, Perm: PermAdmin, Reply: []cluster.Member{}},
	{Name: MethodClusterJoin, Perm: PermAdmin, Reply: map[string]int{}},
	{Name: MethodClusterLeave, Perm: PermAdmin, Reply: nil},
	{Name: MethodClusterRemovePeer, Perm: PermAdmin, Reply: nil},
	{Name: MethodClusterTransferLeader, Perm: PermAdmin, Reply: nil},
	{Name: MethodClusterLeaderRemovePeer, Perm: PermAdmin, Reply: nil},
	{Name: MethodClusterLeaderTransfer, Perm: PermAdmin, Reply: nil},
	{Name: MethodClusterDrain, Perm: PermAdmin, Reply: nil},
	{Name: MethodClusterSchedule, Perm: PermRead, Reply: ScheduleView{}},
	{Name: MethodProvingCheck, Perm: PermRead, Reply: []SectorCheckResult{}},
	{Name: MethodProvingCompute, Perm: PermWrite, Reply: nil},
	{Name: MethodVenusSectorIndexerFind, Perm: PermRead, Reply: SectorIndexLocation{}},
}

// MethodPerm is the listed permission of a method.
func MethodPerm(name string) (Perm, bool) {
	for _, m := range Methods {
		if m.Name == name {
			return m.Perm, true
		}
	}
	return PermNone, false
}

func checkRegistration(name string, perm Perm) {
	want, ok := MethodPerm(name)
	if !ok {
		panic(fmt.Sprintf("rpc: method %s is not listed in rpc.Methods (methods.go); list it there with its permission and reply type", name))
	}
	if want != perm {
		panic(fmt.Sprintf("rpc: method %s registered with permission %s, listed in rpc.Methods with %s", name, perm, want))
	}
}

// Changed is the reply of writes: how many items changed.
type Changed struct {
	Changed int `json:"changed"`
}

// SectorCheckResult is one sector's line in the VSM.ProvingCheck result.
type SectorCheckResult struct {
	Sector uint64 `json:"sector"`
	Good   bool   `json:"good"`
	// Reason says why a faulty sector cannot be proven, or why an
	// unchecked one was not checked.
	Reason string `json:"reason,omitempty"`
	// Unchecked: no prover child could answer for the sector (every one
	// tried failed, see Failures); it is neither known good nor faulty.
	Unchecked bool `json:"unchecked,omitempty"`
	// Child is the prover child (ext-prover.cfg block wdpost-N, counting
	// from 0) that answered for the sector.
	Child string `json:"child,omitempty"`
	// Failures are the children that failed the sector's request before
	// Child answered (or before the check gave up), in order.
	Failures []ChildFailure `json:"failures,omitempty"`
}

// ChildFailure is one prover child failing a request: Kind is "timeout"
// (no answer within its CheckTimeoutSecs; killed and restarted), "malformed
// answer" or "exited"; Detail says more (the limit, the answer's first
// bytes, the exit status and last stderr lines).
type ChildFailure struct {
	Child  string `json:"child"`
	PID    int    `json:"pid"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// ScheduleSlot is one row of VSM.ClusterSchedule: a deadline window of
// the next 24 hours and its owner in the replicated state.
type ScheduleSlot struct {
	Miner      uint64 `json:"miner"`
	Deadline   uint8  `json:"deadline"`
	Open       int64  `json:"open"`
	Close      int64  `json:"close"`
	Owner      string `json:"owner"`
	Partitions int    `json:"partitions"`
	// LastOutcome and LastMessage are the deadline's newest record, so a
	// window post the miner actor refused (exit code and the actor's
	// message) shows beside the deadline.
	LastOutcome string `json:"last_outcome,omitempty"`
	LastMessage string `json:"last_message,omitempty"`
}

// ScheduleView is VSM.ClusterSchedule's result.
type ScheduleView struct {
	Head     int64               `json:"head"`
	Slots    []ScheduleSlot      `json:"slots"`
	Nodes    []schedule.NodeLoad `json:"nodes"`
	Unplaced []schedule.Unplaced `json:"unplaced"`
	// LowerBound and PeakUtilization are the plan's (schedule.Plan):
	// the cluster's busiest moment over all usable GPUs, and the busiest
	// node's peak share.
	LowerBound      float64 `json:"lower_bound"`
	PeakUtilization float64 `json:"peak_utilization"`
	// Pending lists the moves the next scheduler round would make.
	Pending []schedule.Move `json:"pending"`
}

var _ = fsm.SectorLocation{}
var _ = cluster.Status{}
