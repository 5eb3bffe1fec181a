package node_test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/pubsub"
)

// tcpUserTimeout is TCP_USER_TIMEOUT of linux/tcp.h.
const tcpUserTimeout = 18

// TestDeadPeer: a client that vanishes without a FIN or RST (power loss,
// cable cut) holds its stream only until the heartbeat's unacknowledged
// bytes pass DeadPeerTimeout. The client's packets are dropped by a socket
// filter on its own socket (no iptables needed, nothing global to undo):
// it acknowledges nothing, exactly like a host that is gone. Without
// TCP_USER_TIMEOUT the kernel would retransmit for about 15 minutes.
func TestDeadPeer(t *testing.T) {
	cfg := testConfig(t)
	cfg.Heartbeat = 100 * time.Millisecond
	cfg.DeadPeerTimeout = 500 * time.Millisecond
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	const topic = "dead"
	alive := n.subscribe(t, streamQuery(topic), "")
	alive.live(t)
	dead := n.subscribe(t, streamQuery(topic), "")
	dead.live(t)

	// The node's end of the stream (hijacked, in this process) carries
	// the option.
	fd := serverFD(t, dead.conn)
	if got, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, tcpUserTimeout); err != nil || got != int(cfg.DeadPeerTimeout.Milliseconds()) {
		t.Fatalf("node socket TCP_USER_TIMEOUT = %d (%v), want %d", got, err, cfg.DeadPeerTimeout.Milliseconds())
	}

	dropAll(t, dead.conn)
	t.Cleanup(dead.abort) // a reset: the filter would drop the FIN's answer
	start := time.Now()
	checkFor(t, waitTimeout, func() error {
		if got := n.srv.Stats().Closed[node.ReasonClientGone].Load(); got != 1 {
			return fmt.Errorf("vanished client still held after %v (Closed[client_gone] = %d)", time.Since(start).Round(time.Millisecond), got)
		}
		return nil
	})
	t.Logf("vanished client dropped after %v (heartbeat %v, dead peer timeout %v)", time.Since(start).Round(time.Millisecond), cfg.Heartbeat, cfg.DeadPeerTimeout)
	if got := n.srv.OpenStreams(); got != 1 {
		t.Errorf("%d open streams, want the live one", got)
	}
	n.publish(t, ev{Topic: topic, Data: "still here"})
	if e := alive.nextEvent(t); e.Data != "still here" {
		t.Errorf("live client got %q", e.Data)
	}
	checkCounts(t, "Closed", closedCounts(n), map[string]int64{"client_gone": 1})
}

// dropAll attaches a classic BPF socket filter that drops every packet
// arriving at c's socket. The kernel runs it before TCP sees the segment,
// so c sends no ACK, window update or RST any more.
func dropAll(t testing.TB, c net.Conn) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var aerr error
	if err := rc.Control(func(fd uintptr) {
		// BPF_RET|BPF_K 0: keep 0 bytes of the packet, that is drop it.
		aerr = syscall.AttachLsf(int(fd), []syscall.SockFilter{{Code: syscall.BPF_RET | syscall.BPF_K, K: 0}})
	}); err != nil || aerr != nil {
		t.Fatalf("attach socket filter: %v %v", err, aerr)
	}
}

// serverFD finds the node's end of the client connection c among the
// process's descriptors (the node runs in the test process): the socket
// whose local address is c's remote one and whose peer is c.
func serverFD(t testing.TB, c net.Conn) int {
	t.Helper()
	local, remote := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil || !sameAddr(sa, remote) {
			continue
		}
		if pa, err := syscall.Getpeername(fd); err == nil && sameAddr(pa, local) {
			return fd
		}
	}
	t.Fatalf("no socket %s <- %s in this process", remote, local)
	return -1
}

func sameAddr(sa syscall.Sockaddr, a *net.TCPAddr) bool {
	in, ok := sa.(*syscall.SockaddrInet4)
	return ok && in.Port == a.Port && net.IP(in.Addr[:]).Equal(a.IP)
}
