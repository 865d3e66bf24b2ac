package cluster

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// BenchmarkLogStoreAppend measures one raft append of a single small
// entry, the on-disk part of every acknowledged write (the leader and then
// each follower do one): the WAL as vsm opens it (the default), raft.db as
// vsm opens it, and raft.db with bbolt's defaults, in the same run.
func BenchmarkLogStoreAppend(b *testing.B) {
	for _, c := range []struct {
		name string
		open func(dir string) (raft.LogStore, func() error, error)
	}{
		{"wal", func(dir string) (raft.LogStore, func() error, error) {
			w, err := openWAL(dir, hclog.NewNullLogger())
			if err != nil {
				return nil, nil, err
			}
			return w, w.Close, nil
		}},
		{"bolt-vsm", boltOpener(boltOptions())},
		{"bolt-defaults", boltOpener(nil)},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, closeStore, err := c.open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer closeStore()
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

func boltOpener(opts *bbolt.Options) func(dir string) (raft.LogStore, func() error, error) {
	return func(dir string) (raft.LogStore, func() error, error) {
		s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, raftDBFile), BoltOptions: opts})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
}
