package node

import (
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT of linux/tcp.h (not in package
// syscall).
const tcpUserTimeout = 18

// setUserTimeout makes the kernel drop the connection when written bytes
// stay unacknowledged for d: a client that vanished without a FIN (power
// loss, network cut) is found by the next heartbeat write plus d.
func setUserTimeout(rc syscall.RawConn, d time.Duration) {
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d.Milliseconds()))
	})
}
