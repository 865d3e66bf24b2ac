package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"

	"github.com/vsm-project/vsm/devnet"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/internal/harness"
)

// posterCluster is a devnet and three vsm nodes with two children each,
// all posters, with the devnet's miners and sector locations imported.
type posterCluster struct {
	apiInfo string
	devnet  *exec.Cmd
	chain   *fullnode.Client
	nodes   []*harness.Node
}

// startPosterCluster seals miners × sectors 2 KiB sectors on a devnet at
// the given epoch length and brings up the cluster.
func startPosterCluster(t testing.TB, miners, sectors int, firstDue int64, epoch time.Duration, seed string) *posterCluster {
	t.Helper()
	bin := harness.Binary(t)
	work := t.TempDir()
	var spec strings.Builder
	fmt.Fprintf(&spec, "Seed = %q\nFirstDueEpoch = %d\n", seed, firstDue)
	for i := 0; i < miners; i++ {
		fmt.Fprintf(&spec, "[[Miners]]\nID = %d\nSectorSize = \"2KiB\"\nSectors = %d\n", 1000+i, sectors)
	}
	specPath := filepath.Join(work, "spec.toml")
	writeFile(t, specPath, spec.String())
	pc := &posterCluster{}
	pc.apiInfo, pc.devnet = startDevnetProcess(t, bin, filepath.Join(work, "dn"), specPath, epoch)
	chain, err := fullnode.Dial(pc.apiInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc.chain = chain
	pc.nodes = startClusterWith(t, 3, func(i int, extraInit ...string) *harness.Node {
		n := harness.NewNode(t, fmt.Sprintf("n%d", i+1), extraInit...)
		writeFile(t, filepath.Join(n.Home, "ext-prover.cfg"), twoChildren)
		return n
	}, "--ext-prover", "--poster", "--chain-api", pc.apiInfo)
	pc.importSectors(t)
	return pc
}

// importSectors adds the devnet's miners and their sector locations, with
// CommR from the chain.
func (pc *posterCluster) importSectors(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	var miners []devnet.MinerSummary
	if err := pc.chain.Call(ctx, "Devnet.Miners", &miners); err != nil {
		t.Fatal(err)
	}
	n1 := pc.nodes[0]
	n1.MustRun("storage", "add", "sectors", "--path", miners[0].SectorDir)
	var jsonl strings.Builder
	for _, m := range miners {
		if m.SectorDir != miners[0].SectorDir {
			t.Fatalf("miners in several sector dirs: %+v", miners)
		}
		n1.MustRun("miner", "add", fmt.Sprintf("t0%d", m.ID), "--sector-size", "2KiB")
		for s := uint64(0); s < uint64(m.Sectors); s++ {
			si, err := pc.chain.StateSectorGetInfo(ctx, fullnode.IDAddress(m.ID), abi.SectorNumber(s), nil)
			if err != nil || si == nil {
				t.Fatalf("sector %d of t0%d: %v", s, m.ID, err)
			}
			commR, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&jsonl, `{"miner":"t0%d","number":%d,"sealed":"sectors","cache":"sectors","proof":%d,"commr":"%x"}`+"\n", m.ID, s, si.SealProof, commR)
		}
	}
	locs := filepath.Join(t.TempDir(), "locs.jsonl")
	writeFile(t, locs, jsonl.String())
	n1.MustRun("sector", "location", "import", "--file", locs, "--quiet")
}
