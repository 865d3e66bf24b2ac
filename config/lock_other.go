//go:build !unix

package config

// Lock is a no-op where flock is not available; bolt's own lock on
// raft.db still keeps two daemons apart there (by blocking).
func (h Home) Lock() (release func(), err error) { return func() {}, nil }
