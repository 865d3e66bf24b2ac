//go:build !linux

package netns

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"testing"
)

// errUnsupported is why nothing here works off Linux: network namespaces
// are a Linux feature.
var errUnsupported = errors.New("netns: network namespaces need Linux")

// Net is unavailable off Linux; see the Linux build for documentation.
type Net struct{}

// Host is unavailable off Linux.
type Host struct{}

// Available always reports why namespaced networks are unsupported here.
func Available() error { return errUnsupported }

// New always fails off Linux.
func New(t testing.TB, n int) (*Net, error) { return nil, errUnsupported }

func (nw *Net) Len() int                                { return 0 }
func (nw *Net) Host(i int) Host                         { panic(errUnsupported) }
func (nw *Net) Hosts() []Host                           { return nil }
func (nw *Net) Partition(hosts ...int) error            { return errUnsupported }
func (nw *Net) Heal(hosts ...int) error                 { return errUnsupported }
func (nw *Net) HealAll() error                          { return errUnsupported }
func (nw *Net) PartitionGroups(g [][]int) error         { return errUnsupported }
func (h Host) Index() int                               { return 0 }
func (h Host) Addr() string                             { return "" }
func (h Host) Namespace() string                        { return "" }
func (h Host) Listen(n, a string) (net.Listener, error) { return nil, errUnsupported }

func (nw *Net) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errUnsupported
}

func (h Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errUnsupported
}

func (h Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	panic(errUnsupported)
}
