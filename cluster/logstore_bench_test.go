package cluster

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// BenchmarkLogStoreAppend measures one raft append of a single small
// entry, the on-disk part of every acknowledged write (the leader and then
// each follower do one): raft.db as vsm opens it, and with bbolt's
// defaults as the baseline in the same run.
func BenchmarkLogStoreAppend(b *testing.B) {
	for _, c := range []struct {
		name string
		opts *bbolt.Options
	}{{"vsm", boltOptions()}, {"bbolt-defaults", nil}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(b.TempDir(), raftDBFile), BoltOptions: c.opts})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, 120)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.StoreLogs([]*raft.Log{{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: data}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
