package node_test

// Test harness: real nodes on 127.0.0.1:0, real brokers, streams read over
// raw TCP with the strict sse.Parser. Every wait polls or blocks with a
// deadline; nothing sleeps to synchronise.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/retry"
	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait of the suite. It only decides when a broken
// node fails instead of hanging; it is never a claim about speed.
const waitTimeout = 15 * time.Second

// httpClient keeps no idle connections, so no transport goroutine outlives
// a request (goleak).
var httpClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true},
	Timeout:   waitTimeout,
}

// testLogger writes warnings and errors to the test's output (shown on
// failure or with -v).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testConfig is a small, fast node configuration.
func testConfig(t testing.TB) node.Config {
	return node.Config{
		NodeID:       "test",
		Heartbeat:    100 * time.Millisecond,
		Retry:        retry.Policy{Base: 300 * time.Millisecond, Cap: time.Second, HealthyAfter: time.Minute},
		WriteTimeout: 2 * time.Second,
		Logger:       testLogger(t),
	}
}

// newMemory returns an in-memory broker closed when the test ends (after
// the nodes using it stopped: cleanups run last-in first-out).
func newMemory(t testing.TB, cfg pubsub.MemoryConfig) *pubsub.Memory {
	t.Helper()
	b, err := pubsub.NewMemory(cfg)
	if err != nil {
		t.Fatalf("NewMemory: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// checkFor polls f until it returns nil or timeout passes.
func checkFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a synchroniser
	}
}

// testNode is one running node.Server.
type testNode struct {
	srv  *node.Server
	addr string // 127.0.0.1:port
	url  string // http://127.0.0.1:port

	cancel   context.CancelFunc
	done     chan struct{}
	serveErr error // valid once done is closed
	stopOnce sync.Once
}

// startNode starts a node on a free loopback port and waits until /readyz
// answers 200. The node stops when the test ends.
func startNode(t testing.TB, cfg node.Config, b pubsub.Broker) *testNode {
	t.Helper()
	n := startNodeNoWait(t, cfg, b)
	n.waitReady(t)
	return n
}

func startNodeNoWait(t testing.TB, cfg node.Config, b pubsub.Broker) *testNode {
	t.Helper()
	srv, err := node.New(cfg, b)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{
		srv:    srv,
		addr:   ln.Addr().String(),
		url:    "http://" + ln.Addr().String(),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(n.done)
		n.serveErr = srv.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		if err := n.stop(t); err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	})
	return n
}

// stop cancels Serve's context and waits for Serve to return.
func (n *testNode) stop(t testing.TB) error {
	t.Helper()
	n.stopOnce.Do(n.cancel)
	select {
	case <-n.done:
	case <-time.After(waitTimeout):
		t.Fatalf("Serve did not return within %v of its context ending", waitTimeout)
	}
	return n.serveErr
}

func (n *testNode) waitReady(t testing.TB) {
	t.Helper()
	checkFor(t, waitTimeout, func() error {
		if st := n.get(t, "/readyz").Status; st != http.StatusOK {
			return fmt.Errorf("GET /readyz: %d", st)
		}
		return nil
	})
}

// apiResponse is a complete non-stream response.
type apiResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r apiResponse) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// errorCode checks that r is a JSON error body {"error":{"code","message"}}
// and returns its code.
func (r apiResponse) errorCode(t testing.TB) string {
	t.Helper()
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		t.Errorf("error response Content-Type %q, want application/json", r.Header.Get("Content-Type"))
	}
	var body struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Error == nil || body.Error.Code == nil || body.Error.Message == nil {
		t.Errorf("error body %q is not {\"error\":{\"code\",\"message\"}} (%v)", r.Body, err)
		return ""
	}
	if *body.Error.Code == "" || *body.Error.Message == "" {
		t.Errorf("error body %q has an empty code or message", r.Body)
	}
	return *body.Error.Code
}

// do sends one request and reads the whole answer. A transport error fails
// the test.
func (n *testNode) do(t testing.TB, method, path string, header http.Header, body []byte) apiResponse {
	t.Helper()
	r, err := n.tryDo(method, path, header, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (n *testNode) tryDo(method, path string, header http.Header, body []byte) (apiResponse, error) {
	req, err := http.NewRequest(method, n.url+path, bytes.NewReader(body))
	if err != nil {
		return apiResponse{}, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return apiResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResponse{}, err
	}
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

func (n *testNode) get(t testing.TB, path string) apiResponse {
	t.Helper()
	return n.do(t, http.MethodGet, path, nil, nil)
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// post publishes a raw body with Content-Type application/json plus hdr.
func (n *testNode) post(t testing.TB, body string, hdr http.Header) apiResponse {
	t.Helper()
	h := jsonHeader.Clone()
	for k, v := range hdr {
		h[k] = v
	}
	return n.do(t, http.MethodPost, "/v1/publish", h, []byte(body))
}

// ev is one event of a publish request.
type ev struct {
	Topic          string `json:"topic"`
	Event          string `json:"event,omitempty"`
	Data           any    `json:"data"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// publish publishes evs as one array and returns their ids.
func (n *testNode) publish(t testing.TB, evs ...ev) []string {
	t.Helper()
	body, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	r := n.post(t, string(body), nil)
	return publishIDs(t, r, len(evs))
}

// publishIDs checks a 200 publish answer with n ids and returns them.
func publishIDs(t testing.TB, r apiResponse, n int) []string {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("publish: %s, want 200", r)
	}
	var out struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("publish answer %q: %v", r.Body, err)
	}
	if len(out.IDs) != n {
		t.Fatalf("publish answered %d ids, want %d: %s", len(out.IDs), n, r.Body)
	}
	return out.IDs
}

// publishN publishes n events with data "<prefix><i>" on topic, in batches,
// and returns their ids.
func (n *testNode) publishN(t testing.TB, topic, prefix string, count int) []string {
	t.Helper()
	var ids []string
	for start := 0; start < count; start += 500 {
		var evs []ev
		for i := start; i < min(count, start+500); i++ {
			evs = append(evs, ev{Topic: topic, Data: fmt.Sprintf("%s%d", prefix, i)})
		}
		ids = append(ids, n.publish(t, evs...)...)
	}
	return ids
}

// stream is one SSE response read by a goroutine with sse.Parser. The
// blocks it parsed queue up until the test takes them.
type stream struct {
	conn net.Conn
	resp *http.Response

	notify chan struct{} // cap 1: a block or the end arrived
	done   chan struct{} // closed when the reader goroutine ends

	mu     sync.Mutex
	blocks []sse.Event
	err    error     // why the stream ended (io.EOF: clean end); valid after done
	ended  time.Time // when the reader saw the end; valid after done
	tail   []byte    // the last bytes of the body (comments are only counted by the parser)

	next int // index of the next block the test takes; test goroutine only
}

// streamQuery builds "?topic=a&topic=b".
func streamQuery(topics ...string) string {
	q := make(url.Values)
	for _, tp := range topics {
		q.Add("topic", tp)
	}
	return "?" + q.Encode()
}

// rawRequest sends a request written by hand and reads the response head.
// The caller owns conn.
func rawRequest(t testing.TB, addr, request string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	return rawRequestVia(t, &net.Dialer{}, addr, request)
}

// rawRequestVia is rawRequest over a connection made by d (a source
// address, socket options).
func rawRequestVia(t testing.TB, d *net.Dialer, addr, request string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatalf("write request: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response head: %v", err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, resp
}

// getRequest is the request text of GET target over HTTP/1.1 with hdr.
func getRequest(target string, hdr map[string]string) string {
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n")
	for k, v := range hdr {
		b.WriteString(k + ": " + v + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// openRaw opens GET /v1/events+query and returns the response, reading the
// body of a non-200 answer.
func (n *testNode) openRaw(t testing.TB, query string, hdr map[string]string) (*http.Response, apiResponse, net.Conn) {
	t.Helper()
	conn, _, resp := rawRequest(t, n.addr, getRequest("/v1/events"+query, hdr))
	if resp.StatusCode == http.StatusOK {
		return resp, apiResponse{Status: resp.StatusCode, Header: resp.Header}, conn
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading error body: %v", err)
	}
	return resp, apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, conn
}

// subscribe opens a stream and checks it answers 200 text/event-stream.
// lastID, when not empty, is sent as Last-Event-ID.
func (n *testNode) subscribe(t testing.TB, query, lastID string) *stream {
	t.Helper()
	hdr := map[string]string{}
	if lastID != "" {
		hdr["Last-Event-ID"] = lastID
	}
	return n.subscribeHeader(t, query, hdr)
}

func (n *testNode) subscribeHeader(t testing.TB, query string, hdr map[string]string) *stream {
	t.Helper()
	resp, r, conn := n.openRaw(t, query, hdr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events%s: %s, want 200", query, r)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream Content-Type %q, want text/event-stream", ct)
	}
	return newStream(t, conn, resp, resp.Body)
}

// newStream starts reading body; the stream is closed when the test ends.
func newStream(t testing.TB, conn net.Conn, resp *http.Response, body io.Reader) *stream {
	s := &stream{conn: conn, resp: resp, notify: make(chan struct{}, 1), done: make(chan struct{})}
	go s.read(io.TeeReader(body, tailWriter{s}))
	t.Cleanup(s.close)
	return s
}

func (s *stream) read(body io.Reader) {
	defer close(s.done)
	p := sse.NewParser(body)
	for {
		b, err := p.Next()
		s.mu.Lock()
		if err != nil {
			s.err = err
			s.ended = time.Now()
		} else {
			s.blocks = append(s.blocks, b)
		}
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// tailKeep is how many of the last body bytes a stream keeps.
const tailKeep = 256

// tailWriter keeps the last tailKeep bytes read from a stream's body.
type tailWriter struct{ s *stream }

func (w tailWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.tail = append(w.s.tail, p...)
	if len(w.s.tail) > tailKeep {
		w.s.tail = append(w.s.tail[:0], w.s.tail[len(w.s.tail)-tailKeep:]...)
	}
	return len(p), nil
}

// bodyTail returns the last bytes of the body read so far (at most
// tailKeep): what a block's comment said, which the parser only counts.
func (s *stream) bodyTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.tail)
}

// endedAt returns when the stream ended, once it has.
func (s *stream) endedAt() time.Time {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// close drops the connection and waits for the reader.
func (s *stream) close() {
	_ = s.conn.Close()
	<-s.done
}

// abort drops the connection with a reset (SO_LINGER 0), as a client that
// vanishes does, and waits for the reader.
func (s *stream) abort() {
	if tc, ok := s.conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	s.close()
}

// take returns the next block, or ok false when the stream ended first. It
// fails the test if neither happens within timeout.
func (s *stream) take(t testing.TB, timeout time.Duration) (sse.Event, bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.next < len(s.blocks) {
			b := s.blocks[s.next]
			s.next++
			s.mu.Unlock()
			return b, true
		}
		ended := s.err != nil
		s.mu.Unlock()
		if ended {
			return sse.Event{}, false
		}
		select {
		case <-s.notify:
		case <-deadline.C:
			t.Fatalf("no block on the stream within %v", timeout)
		}
	}
}

// nextBlock returns the next block of any kind.
func (s *stream) nextBlock(t testing.TB) sse.Event {
	t.Helper()
	b, ok := s.take(t, waitTimeout)
	if !ok {
		t.Fatalf("stream ended (%v) while a block was expected", s.endErr())
	}
	return b
}

// nextEvent returns the next dispatched event, skipping heartbeats and
// id-only blocks.
func (s *stream) nextEvent(t testing.TB) sse.Event {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		b, ok := s.take(t, time.Until(deadline))
		if !ok {
			t.Fatalf("stream ended (%v) while an event was expected", s.endErr())
		}
		if b.Dispatch {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event within %v, only heartbeats", waitTimeout)
		}
	}
}

// events returns the next n dispatched events.
func (s *stream) events(t testing.TB, n int) []sse.Event {
	t.Helper()
	out := make([]sse.Event, 0, n)
	for len(out) < n {
		out = append(out, s.nextEvent(t))
	}
	return out
}

// head reads the stream's start: the retry block, the events written before
// the stream went live (resets, history), and the id-only block that marks
// the switch to live delivery. It returns the start events and the id-only
// block.
func (s *stream) head(t testing.TB) (retry sse.Event, start []sse.Event, live sse.Event) {
	t.Helper()
	retry = s.nextBlock(t)
	if retry.Retry < 0 || retry.Dispatch {
		t.Fatalf("first block %+v, want a retry hint only", retry)
	}
	for {
		b := s.nextBlock(t)
		if b.Dispatch {
			start = append(start, b)
			continue
		}
		if !b.HasID || b.ID == "" || b.Comments != 0 {
			t.Fatalf("block %+v before the stream went live, want an event or the id-only block", b)
		}
		return retry, start, b
	}
}

// live reads the head and checks that nothing was sent before going live.
func (s *stream) live(t testing.TB) sse.Event {
	t.Helper()
	_, start, live := s.head(t)
	if len(start) > 0 {
		t.Fatalf("stream started with %d events (first %+v), want none", len(start), start[0])
	}
	return live
}

// waitEnd waits for the stream to end and returns the blocks not taken yet
// and the reader's final error (io.EOF for a clean end of body).
func (s *stream) waitEnd(t testing.TB) ([]sse.Event, error) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(waitTimeout):
		t.Fatalf("stream did not end within %v", waitTimeout)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rest := s.blocks[s.next:]
	s.next = len(s.blocks)
	return rest, s.err
}

func (s *stream) endErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// lastID is the last event ID the parser holds after the blocks taken.
func (s *stream) lastID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == 0 {
		return ""
	}
	return s.blocks[s.next-1].ID
}

// data returns the Data of evs.
func data(evs []sse.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Data
	}
	return out
}

// seq returns "<prefix><from>" .. "<prefix><to-1>".
func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// topicsIn returns n distinct topics "<prefix>-<i>" that fall in partition
// p of parts.
func topicsIn(p, parts, n int, prefix string) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		tp := fmt.Sprintf("%s-%d", prefix, i)
		if pubsub.PartitionOf(tp, parts) == p {
			out = append(out, tp)
		}
	}
	return out
}

// cursorOf parses a stream id (a cursor) or fails.
func cursorOf(t testing.TB, id string, parts int) pubsub.Cursor {
	t.Helper()
	c, err := pubsub.ParseCursor(id, parts)
	if err != nil {
		t.Fatalf("id %q is not a cursor: %v", id, err)
	}
	return c
}

// orderChecker checks, over the blocks of one stream, that the cursor never
// moves backwards in any partition and that each event of a partition is
// after the cursor every earlier block left there: an id a client could
// resume from never skips an event the stream still sends.
type orderChecker struct {
	parts int
	pos   map[int]pubsub.ID
}

func newOrderChecker(parts int) *orderChecker {
	return &orderChecker{parts: parts, pos: make(map[int]pubsub.ID)}
}

// check takes the blocks in stream order; evPart is the partition of a
// dispatched event's topic (-1 for blocks that are not events of ours).
func (o *orderChecker) check(b sse.Event, evPart int) error {
	if b.ID == "" {
		return nil
	}
	c, err := pubsub.ParseCursor(b.ID, o.parts)
	if err != nil {
		return fmt.Errorf("id %q: %w", b.ID, err)
	}
	for _, id := range c {
		prev, ok := o.pos[id.Partition]
		if ok && prev.Epoch == id.Epoch {
			if id.Pos.Less(prev.Pos) {
				return fmt.Errorf("cursor moved back in partition %d: %v after %v", id.Partition, id, prev)
			}
			if b.Dispatch && b.Type != "reset" && id.Partition == evPart && !prev.Pos.Less(id.Pos) {
				return fmt.Errorf("event %q at %v is not after the cursor %v an earlier block gave", b.Data, id, prev)
			}
		}
		o.pos[id.Partition] = id
	}
	return nil
}

// statsSnapshot is the replay counters at one instant.
type statsSnapshot struct{ hits, misses, reads, resets int64 }

func snapshot(n *testNode) statsSnapshot {
	st := n.srv.Stats()
	return statsSnapshot{st.CacheHits.Load(), st.CacheMisses.Load(), st.BrokerReads.Load(), st.Resets.Load()}
}

// evsOf returns k events on topic with data "<prefix><i>".
func evsOf(topic, prefix string, k int) []ev {
	evs := make([]ev, k)
	for i := range evs {
		evs[i] = ev{Topic: topic, Data: fmt.Sprintf("%s%d", prefix, i)}
	}
	return evs
}

// eventsByTopic splits events whose data is "<topic>/<n>" by topic.
func eventsByTopic(evs []sse.Event) map[string][]string {
	m := make(map[string][]string)
	for _, e := range evs {
		tp, _, _ := strings.Cut(e.Data, "/")
		m[tp] = append(m[tp], e.Data)
	}
	return m
}

// checkPerTopic compares events whose data is "<topic>/<...>" per topic.
func checkPerTopic(t testing.TB, what string, got []sse.Event, want map[string][]string) {
	t.Helper()
	by := eventsByTopic(got)
	for tp, w := range want {
		if !slices.Equal(by[tp], w) {
			t.Errorf("%s: topic %s got %q, want %q", what, tp, by[tp], w)
		}
	}
	for tp := range by {
		if _, ok := want[tp]; !ok {
			t.Errorf("%s: events of unexpected topic %s", what, tp)
		}
	}
}

// collect reads a resumed stream's head, checking there is no reset, and
// then live events until it holds k events in all (a node may replay some
// and deliver the rest live, depending on how far its fan-out got).
func collect(t testing.TB, s *stream, k int) []sse.Event {
	t.Helper()
	_, start, _ := s.head(t)
	for _, e := range start {
		if e.Type == "reset" {
			t.Fatalf("resume got a reset: %+v", e)
		}
	}
	for len(start) < k {
		start = append(start, s.nextEvent(t))
	}
	if len(start) > k {
		t.Fatalf("resume replayed %d events, want %d: %q", len(start), k, data(start))
	}
	return start
}
