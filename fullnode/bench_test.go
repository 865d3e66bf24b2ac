package fullnode_test

import (
	"context"
	"testing"

	"github.com/vsm-project/vsm/fullnode"
)

// BenchmarkStateMinerPartitions measures one client call through real HTTP
// to the devnet (JSON encode, loopback, decode of Lotus-shaped bitfields).
func BenchmarkStateMinerPartitions(b *testing.B) {
	dn, srv := startDevnet(b)
	c := fullnode.NewClient(fullnode.APIInfo{Token: dn.Token(), URL: srv.URL + "/rpc/v1"}, nil)
	ctx := context.Background()
	maddr := fullnode.IDAddress(1000)
	for b.Loop() {
		if _, err := c.StateMinerPartitions(ctx, maddr, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
}
