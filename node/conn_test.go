package node_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/pubsub"
)

// TestSlowConsumer: a client that never reads is closed once its backlog
// passes MaxPending, while a reading subscriber of the same topic gets
// every event.
func TestSlowConsumer(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPending = 64 << 10
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	const topic = "firehose"

	// The slow client asks for a small receive buffer so the node's socket
	// fills early, sends its request and never reads again.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	slow, err := d.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slow.Close() })
	if _, err := io.WriteString(slow, getRequest("/v1/events"+streamQuery(topic), nil)); err != nil {
		t.Fatal(err)
	}
	fast := n.subscribe(t, streamQuery(topic), "")
	fast.live(t)
	// Both streams are registered once the node counts them and the fast
	// one is live; the slow one's head went out before its registration.
	checkFor(t, waitTimeout, func() error {
		if got := n.srv.OpenStreams(); got != 2 {
			return fmt.Errorf("%d open streams, want 2", got)
		}
		return nil
	})

	pad := strings.Repeat("x", 16<<10)
	var want, got []string
	closed := func() int64 { return n.srv.Stats().Closed[node.ReasonSlowConsumer].Load() }
	for batch := 0; closed() == 0; batch++ {
		if batch == 1000 {
			t.Fatalf("slow consumer still open after %d events", len(want))
		}
		var evs []ev
		for i := range 8 {
			d := fmt.Sprintf("%d-%d:%s", batch, i, pad)
			evs = append(evs, ev{Topic: topic, Data: d})
			want = append(want, d)
		}
		n.publish(t, evs...)
		// The fast reader keeps in step: only the slow one falls behind.
		got = append(got, data(fast.events(t, len(evs)))...)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("fast subscriber: event %d is %.20q, want %.20q", i, got[i], want[i])
		}
	}
	t.Logf("slow consumer closed after %d events of %d KiB", len(want), len(pad)>>10)
	// The node dropped the slow stream, not the fast one.
	checkFor(t, waitTimeout, func() error {
		if got := n.srv.OpenStreams(); got != 1 {
			return fmt.Errorf("%d open streams, want 1", got)
		}
		return nil
	})
	n.publish(t, ev{Topic: topic, Data: "after"})
	if e := fast.nextEvent(t); e.Data != "after" {
		t.Fatalf("fast subscriber after the drop: %.20q", e.Data)
	}
}

// TestManyConnectionsDropped opens 300 streams and drops them all, half
// with a reset and half with a FIN: the node notices through its heartbeat
// sweep, holds no stream afterwards and leaks no goroutine.
func TestManyConnectionsDropped(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	cfg := testConfig(t)
	cfg.Heartbeat = 50 * time.Millisecond
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	baseline := runtime.NumGoroutine()

	const conns = 300
	streams := make([]*stream, conns)
	for i := range streams {
		streams[i] = n.subscribe(t, streamQuery(fmt.Sprintf("many-%d", i%7), "many-all"), "")
		streams[i].live(t)
	}
	if got := n.srv.OpenStreams(); got != conns {
		t.Fatalf("%d open streams, want %d", got, conns)
	}
	// Streams cost the node no goroutine of their own: only our readers.
	if got := runtime.NumGoroutine(); got > baseline+conns+20 {
		t.Errorf("%d goroutines with %d idle streams (baseline %d, %d of them our readers)", got, conns, baseline, conns)
	}
	n.publish(t, ev{Topic: "many-all", Data: "hello"})
	for _, s := range streams {
		if e := s.nextEvent(t); e.Data != "hello" {
			t.Fatalf("event %+v", e)
		}
	}
	for i, s := range streams {
		if i%2 == 0 {
			s.abort()
		} else {
			s.close()
		}
	}
	checkFor(t, waitTimeout, func() error {
		if got := n.srv.OpenStreams(); got != 0 {
			return fmt.Errorf("%d open streams after every client left", got)
		}
		return nil
	})
	checkFor(t, waitTimeout, func() error {
		if got := n.srv.Stats().Closed[node.ReasonClientGone].Load(); got != conns {
			return fmt.Errorf("Closed[client_gone] = %d, want %d", got, conns)
		}
		return nil
	})
	checkFor(t, waitTimeout, func() error {
		if got := runtime.NumGoroutine(); got > baseline {
			return fmt.Errorf("%d goroutines, baseline %d", got, baseline)
		}
		return nil
	})
	// Publishing to the topics of the gone streams touches nothing.
	n.publish(t, ev{Topic: "many-all", Data: "nobody"})
	if err := n.stop(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	goleak.VerifyNone(t, leaks)
}

// TestShutdown: cancelling Serve's context turns /readyz 503, lets an
// in-flight publish finish, ends every stream with a retry hint and a clean
// end of body, and Serve returns nil.
func TestShutdown(t *testing.T) {
	cfg := testConfig(t)
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	streams := []*stream{
		n.subscribe(t, streamQuery("sd-a"), ""),
		n.subscribe(t, streamQuery("sd-a", "sd-b", "sd-c"), ""),
		n.subscribe(t, streamQuery("sd-b"), ""),
	}
	for _, s := range streams {
		s.live(t)
	}
	n.publish(t, ev{Topic: "sd-a", Data: "1"}, ev{Topic: "sd-b", Data: "2"})
	streams[0].nextEvent(t)
	// HTTP/1.0 stream: close-delimited.
	conn10, _, resp10 := rawRequest(t, n.addr, "GET /v1/events?topic=sd-a HTTP/1.0\r\n\r\n")
	s10 := newStream(t, conn10, resp10, resp10.Body)
	s10.live(t)
	streams = append(streams, s10)

	// A publish whose body is still on its way when shutdown starts: the
	// 100 Continue proves its handler runs.
	body := `{"topic":"sd-a","data":"late"}`
	pc, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_ = pc.SetDeadline(time.Now().Add(waitTimeout))
	fmt.Fprintf(pc, "POST /v1/publish HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
	br := bufio.NewReader(pc)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	n.cancel()
	readyz := func() int {
		rec := httptest.NewRecorder()
		n.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}
	checkFor(t, waitTimeout, func() error {
		if code := readyz(); code != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz during shutdown: %d", code)
		}
		return nil
	})
	select {
	case <-n.done:
		t.Fatal("Serve returned while a publish was in flight")
	default:
	}
	// The in-flight publish completes.
	io.WriteString(pc, body)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight publish: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	publishIDs(t, apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, 1)

	if err := n.stop(t); err != nil {
		t.Fatalf("Serve returned %v, want nil", err)
	}
	for i, s := range streams {
		rest, err := s.waitEnd(t)
		if err != io.EOF {
			t.Errorf("stream %d ended with %v, want a clean end of body (io.EOF)", i, err)
		}
		if len(rest) == 0 {
			t.Errorf("stream %d: no goodbye block", i)
			continue
		}
		last := rest[len(rest)-1]
		if last.Retry < cfg.RetryMin.Milliseconds() || last.Retry > cfg.RetryMax.Milliseconds() || last.Dispatch {
			t.Errorf("stream %d: last block %+v, want a retry hint within [%v, %v]", i, last, cfg.RetryMin, cfg.RetryMax)
		}
	}
	if got := n.srv.Stats().Closed[node.ReasonShutdown].Load(); got != int64(len(streams)) {
		t.Errorf("Closed[shutdown] = %d, want %d", got, len(streams))
	}
	if got := n.srv.OpenStreams(); got != 0 {
		t.Errorf("%d streams open after Serve returned", got)
	}
	if code := readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after shutdown: %d", code)
	}
}

// TestServeTwice: a Server serves once.
func TestServeTwice(t *testing.T) {
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := n.srv.Serve(t.Context(), ln); err == nil {
		t.Fatal("second Serve returned nil")
	}
}
