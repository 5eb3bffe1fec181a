package node_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

// smallRcvBuf dials with a 4 KiB receive buffer, so a client that does not
// read fills the node's socket early.
func smallRcvBuf() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
}

// TestSlowConsumer: a client that stops reading while thousands of events
// flow is closed once its backlog passes MaxPending, with nothing queued
// for it beyond that; a reading subscriber of the same topic gets every
// event; and the evicted client, reconnecting after its hint with its last
// id, gets every event after it once, in order.
func TestSlowConsumer(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPending = 64 << 10
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	const topic = "firehose"

	// The slow client reads the response head, then nothing.
	slowConn, _, slowResp := rawRequestVia(t, smallRcvBuf(), n.addr, getRequest("/v1/events"+streamQuery(topic), nil))
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

	const perBatch = 16
	pad := strings.Repeat("x", 1<<10)
	var want, got []string
	published := 0 // bytes of data
	closed := func() int64 { return n.srv.Stats().Closed[node.ReasonSlowConsumer].Load() }
	for batch := 0; closed() == 0; batch++ {
		if batch == 4000 {
			t.Fatalf("slow consumer still open after %d events", len(want))
		}
		var evs []ev
		for i := range perBatch {
			d := fmt.Sprintf("%d-%d:%s", batch, i, pad)
			evs = append(evs, ev{Topic: topic, Data: d})
			want = append(want, d)
			published += len(d)
		}
		n.publish(t, evs...)
		// The fast reader keeps in step: only the slow one falls behind.
		got = append(got, data(fast.events(t, len(evs)))...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("fast subscriber got %d events, not the %d published in order", len(got), len(want))
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
	want = append(want, "after")
	if e := fast.nextEvent(t); e.Data != "after" {
		t.Fatalf("fast subscriber after the drop: %.20q", e.Data)
	}

	// What reached the slow client's socket before it was dropped is a
	// prefix of the events, then the end (no goodbye: the socket was full).
	slow := newStream(t, slowConn, slowResp, slowResp.Body)
	hint := slow.nextBlock(t)
	if hint.Retry < 0 {
		t.Fatalf("slow stream's first block %+v, want the retry hint", hint)
	}
	var early []sse.Event
	rest, _ := slow.waitEnd(t)
	received := 0
	for _, b := range rest {
		if b.Dispatch {
			early = append(early, b)
			received += len(b.Data)
		}
	}
	k := len(early)
	if !slices.Equal(data(early), want[:k]) {
		t.Fatalf("slow client got %d events, not a prefix of the published ones", k)
	}
	// Memory bound: what was published and never reached the socket is at
	// most MaxPending (the dropped queue) plus the batch that overflowed it
	// and the batches published before the reaper counted the close.
	lost, bound := published-received, cfg.MaxPending+17*perBatch*(len(pad)+16)
	if lost > bound {
		t.Errorf("%d bytes published that never reached the slow socket, want at most %d: the node queued beyond MaxPending", lost, bound)
	}
	t.Logf("%d events (%d KiB) reached the slow socket; %d KiB published never did", k, received>>10, lost>>10)
	lastID := rest[len(rest)-1].ID
	if lastID == "" {
		t.Fatal("the slow client has no id to resume from")
	}

	// It reconnects after its hint (the last it got), with its cookie.
	br := &browser{}
	br.keep(t, slowResp.Header)
	time.Sleep(time.Until(slow.endedAt().Add(time.Duration(hint.Retry) * time.Millisecond)))
	r := n.subscribeHeader(t, streamQuery(topic), br.header(lastID))
	if resumed := data(collect(t, r, len(want)-k)); !slices.Equal(resumed, want[k:]) {
		t.Fatalf("resumed with %d events, want the %d after the %dth", len(resumed), len(want)-k, k)
	}
	n.publish(t, ev{Topic: topic, Data: "later"})
	if e := r.nextEvent(t); e.Data != "later" {
		t.Fatalf("after the resume: %.20q, want later", e.Data)
	}
	if got := closed(); got != 1 {
		t.Errorf("Closed[slow_consumer] = %d, want 1", got)
	}
	for reason, v := range map[node.CloseReason]int64{node.ReasonClientGone: 0, node.ReasonWriteTimeout: 0, node.ReasonWriteError: 0} {
		if got := n.srv.Stats().Closed[reason].Load(); got != v {
			t.Errorf("Closed[%s] = %d, want %d", reason, got, v)
		}
	}
	if st := n.srv.Stats(); st.Refused[node.RefuseEarly].Load() != 0 {
		t.Error("the evicted client was judged early after waiting its hint")
	}
}

// TestWriteTimeout: a client that stops reading while the node has more
// for it than the socket takes, but less than MaxPending, is closed once a
// blocking write waits WriteTimeout: while it replays history, and while it
// flushes a live backlog. Both count as write_timeout.
func TestWriteTimeout(t *testing.T) {
	cases := []struct {
		name   string
		replay bool // the bytes are history the client resumes, not live events
	}{
		{"replay", true},
		{"backlog", false},
	}
	if testing.Short() {
		t.Skip("publishes more than the kernel's socket buffers hold")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxPending = 64 << 20
			cfg.WriteTimeout = 300 * time.Millisecond
			n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
			const topic = "stuck"
			// More than the kernel buffers of both ends hold.
			total := sysctlMax(t, "/proc/sys/net/ipv4/tcp_wmem") + 4<<20
			pad := strings.Repeat("y", 16<<10)
			publish := func() string {
				var first string
				for sent := 0; sent < total; {
					var evs []ev
					for range 48 {
						evs = append(evs, ev{Topic: topic, Data: pad})
						sent += len(pad)
					}
					ids := n.publish(t, evs...)
					if first == "" {
						first = ids[0]
					}
				}
				return first
			}
			hdr := map[string]string{}
			if c.replay {
				hdr["Last-Event-ID"] = publish()
			}
			_, _, _ = rawRequestVia(t, smallRcvBuf(), n.addr, getRequest("/v1/events"+streamQuery(topic), hdr))
			if !c.replay {
				checkFor(t, waitTimeout, func() error {
					if got := n.srv.OpenStreams(); got != 1 {
						return fmt.Errorf("%d open streams, want 1", got)
					}
					return nil
				})
				publish()
			}
			checkFor(t, waitTimeout, func() error {
				if got := n.srv.Stats().Closed[node.ReasonWriteTimeout].Load(); got != 1 {
					return fmt.Errorf("Closed = %v, want one write_timeout", closedCounts(n))
				}
				return nil
			})
			if got := n.srv.OpenStreams(); got != 0 {
				t.Errorf("%d open streams", got)
			}
			for _, r := range []node.CloseReason{node.ReasonClientGone, node.ReasonSlowConsumer, node.ReasonWriteError} {
				if got := n.srv.Stats().Closed[r].Load(); got != 0 {
					t.Errorf("Closed[%s] = %d, want 0", r, got)
				}
			}
		})
	}
}

// sysctlMax returns the last number of a sysctl file such as tcp_wmem
// ("min default max"), or 4 MiB when it cannot be read.
func sysctlMax(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return 4 << 20
	}
	f := strings.Fields(string(b))
	v, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		t.Fatalf("%s: %q", path, b)
	}
	return v
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
		if last.Retry < 0 || last.Retry > cfg.Retry.Cap.Milliseconds() || last.Dispatch {
			t.Errorf("stream %d: last block %+v, want a retry hint within [0, %v]", i, last, cfg.Retry.Cap)
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
