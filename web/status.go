// Package web renders the node's status page at /: server-side HTML with
// no build step, so an operator can open it from any browser that reaches
// the API address.
package web

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
)

//go:embed status.html
var files embed.FS

var page = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"pct":   func(v, total int64) float64 { return 100 * float64(v) / float64(max(total, 1)) },
	"color": minerColor,
	"span":  func(s Slot) int64 { return max(s.Close-s.Open, 1) },
	"age":   func(ms int64) time.Duration { return (time.Duration(ms) * time.Millisecond).Round(time.Second) },
	"secs":  Seconds,
}).ParseFS(files, "status.html"))

// Slot is one deadline window in the next 24 hours and its owner.
type Slot struct {
	Miner      uint64
	Deadline   uint8
	Open       int64
	Close      int64
	Owner      string
	Partitions int
	// LastOutcome and LastMessage are the deadline's newest record (a
	// refusal by the miner actor carries its exit code and message).
	LastOutcome string
	LastMessage string
}

// Source is what the page shows, read from the local node.
type Source interface {
	Status() cluster.Status
	Members() []cluster.Member
	FSM() *fsm.FSM
}

// Unplaced is a deadline the scheduler could not give a fitting owner.
type Unplaced struct {
	Deadline string // f01000/7
	Reason   string
	Owner    string
	Detail   string
}

// Schedule is the chain head, the next 24 h of deadlines, the deadlines
// without a fitting owner, and the balance: the lower bound (the cluster's
// busiest moment over all usable GPUs) and the busiest node's peak share.
type Schedule struct {
	Head       int64
	Slots      []Slot
	Unplaced   []Unplaced
	LowerBound float64
	PeakShare  float64
}

// ScheduleFunc returns the schedule, or an error when the node has no chain.
type ScheduleFunc func(ctx context.Context) (Schedule, error)

// Handler serves the status page.
type Handler struct {
	src      Source
	schedule ScheduleFunc
	log      *zap.Logger
}

// NewHandler builds the page handler; schedule may be nil.
func NewHandler(src Source, schedule ScheduleFunc, log *zap.Logger) *Handler {
	return &Handler{src: src, schedule: schedule, log: log}
}

// Horizon is the timeline's width in epochs (24 h).
const Horizon = 2880

type lane struct {
	Node     string
	State    string
	Draining bool
	Slots    []Slot
	Load     int
}

type view struct {
	Status    cluster.Status
	Members   []cluster.Member
	Head      int64
	Unplaced  []Unplaced
	Balance   string // lower bound and peak share, "" without a plan
	Horizon   int64
	Lanes     []lane
	NoChain   string
	Outcomes  []fsm.DeadlineRecord
	Miners    []fsm.MinerSummary
	Generated time.Time
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	v := view{Status: h.src.Status(), Members: h.src.Members(), Horizon: Horizon, Miners: h.src.FSM().Miners(), Generated: time.Now()}
	h.addTimeline(r.Context(), &v)
	v.Outcomes = recentOutcomes(h.src.FSM(), v.Miners, 30)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, v); err != nil {
		h.log.Warn("render status page", zap.Error(err))
	}
}

func (h *Handler) addTimeline(ctx context.Context, v *view) {
	if h.schedule == nil {
		v.NoChain = "this node has no chain configured (Chain.API), so it shows no deadlines"
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sc, err := h.schedule(ctx)
	if err != nil {
		v.NoChain = err.Error()
		return
	}
	head, slots := sc.Head, sc.Slots
	v.Head, v.Unplaced = head, sc.Unplaced
	if sc.LowerBound > 0 {
		// Three significant digits, as cluster schedule prints them: on a
		// devnet a partition takes a millisecond and %.1f showed 0.0%.
		v.Balance = fmt.Sprintf("busiest node %.3g%% of its GPUs at its peak; lower bound %.3g%% (the cluster's busiest moment over all usable GPUs)", 100*sc.PeakShare, 100*sc.LowerBound)
	}
	lanes := map[string]*lane{}
	for _, m := range v.Members {
		lanes[m.ID] = &lane{Node: m.ID, State: m.State, Draining: m.Draining}
	}
	for _, s := range slots {
		owner := s.Owner
		if owner == "" {
			owner = "(unassigned)"
		}
		l, ok := lanes[owner]
		if !ok {
			l = &lane{Node: owner, State: "-"}
			lanes[owner] = l
		}
		s.Open, s.Close = max(s.Open-head, 0), min(s.Close-head, Horizon)
		if s.Open >= Horizon || s.Close <= s.Open {
			// Beyond the 24 h shown (a window opening later than the horizon
			// was drawn past the right edge of the page).
			continue
		}
		l.Slots = append(l.Slots, s)
		l.Load += s.Partitions
	}
	for _, l := range lanes {
		v.Lanes = append(v.Lanes, *l)
	}
	slices.SortFunc(v.Lanes, func(a, b lane) int { return cmp.Compare(a.Node, b.Node) })
}

// recentOutcomes are the newest deadline records across miners.
func recentOutcomes(f *fsm.FSM, miners []fsm.MinerSummary, limit int) []fsm.DeadlineRecord {
	var out []fsm.DeadlineRecord
	for _, m := range miners {
		for d := uint8(0); d < fsm.WdPoStDeadlines; d++ {
			out = append(out, f.Records(fsm.DeadlineKey{Miner: m.ID, Deadline: d})...)
		}
	}
	slices.SortFunc(out, func(a, b fsm.DeadlineRecord) int {
		return cmp.Or(cmp.Compare(b.PeriodStart+int64(b.Deadline)*60, a.PeriodStart+int64(a.Deadline)*60), cmp.Compare(a.Miner, b.Miner))
	})
	return out[:min(len(out), limit)]
}

// minerColor gives each miner a stable hue on the timeline.
func minerColor(miner uint64) template.CSS {
	return template.CSS(fmt.Sprintf("hsl(%d, 60%%, 55%%)", (miner*67)%360))
}

// Seconds shows a measured time per partition: whole milliseconds under a
// second (the built-in engine proves a 2 KiB partition in about 1 ms, which
// "%.1f" showed as 0.0), a tenth of a second above; "-" when not measured.
func Seconds(s float64) string {
	switch {
	case s <= 0:
		return "-"
	case s < 1:
		return fmt.Sprintf("%.0f ms", max(s*1000, 1))
	default:
		return fmt.Sprintf("%.1f s", s)
	}
}
