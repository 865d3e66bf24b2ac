package daemon

import (
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/rpc"
)

// registerProving adds the proving methods (VSM.ProvingCheck, ...) that
// need this node's children and local storage paths.
func registerProving(mux *rpc.Mux, f *fsm.FSM, sup *prover.Supervisor, storagePaths map[string]string) {
}
