package cluster

import (
	"context"
	"time"
)

// Leading reports whether this node is the leader and has established
// leadership (its FSM holds everything earlier leaders committed).
func (s *Server) Leading(ctx context.Context) bool {
	if !s.node.IsLeader() {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.node.waitLeaderReady(wctx) == nil
}
