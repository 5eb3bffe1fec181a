package node

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestSetUserTimeout sets TCP_USER_TIMEOUT on a real connection and reads
// it back from the kernel.
func TestSetUserTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Millisecond, 1500 * time.Millisecond, 30 * time.Second, 10 * time.Minute} {
		t.Run(d.String(), func(t *testing.T) {
			setUserTimeout(rc, d)
			var got int
			var gerr error
			if err := rc.Control(func(fd uintptr) {
				got, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout)
			}); err != nil || gerr != nil {
				t.Fatal(err, gerr)
			}
			if want := int(d.Milliseconds()); got != want {
				t.Errorf("TCP_USER_TIMEOUT %d ms, want %d", got, want)
			}
		})
	}
}
