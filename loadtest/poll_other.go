//go:build !linux

package loadtest

import (
	"context"
	"errors"
	"net"
)

// poller is Linux-only (epoll); elsewhere each stream is read by its own
// goroutine (stream.readConn).
type poller struct{}

func newPoller(int) (*poller, error) {
	return nil, errors.New("loadtest: no poller on this system")
}

func (*poller) run(context.Context, *Pool) {}

func (*poller) read(ctx context.Context, s *stream, nc net.Conn) Reason {
	return s.readConn(ctx, nc)
}
