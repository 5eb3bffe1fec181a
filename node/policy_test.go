package node_test

// Client policies, end to end on real nodes: retry hints and their
// enforcement (the retry cookie, across nodes too), the healthy reset,
// drains, capacity, admission and per-address limits, and the Stats that
// count every refusal and close.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/retry"
	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// testCookieKey signs the retry cookies of nodes given a key.
var testCookieKey = []byte("policy-test-cookie-key-32-bytes!")

// policyConfig is testConfig with a known cookie key and hints long enough
// to come back early on purpose.
func policyConfig(t testing.TB) node.Config {
	cfg := testConfig(t)
	cfg.CookieKey = testCookieKey
	cfg.Retry = retry.Policy{Base: time.Second, Cap: 2 * time.Second, HealthyAfter: 2 * time.Second, EarlyLimit: 2}
	return cfg
}

func testCodec(t testing.TB) *retry.Codec {
	t.Helper()
	c, err := retry.NewCodec(testCookieKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// browser keeps the retry cookie as a browser's EventSource does: it sends
// back the last sse_retry value it was given, whichever node gave it.
type browser struct {
	cookie string // "" when it has none
}

// keep takes the sse_retry cookie of an answer's head. A cookie that
// deletes itself (Max-Age <= 0) would switch enforcement off for real
// browsers, so it fails the test.
func (b *browser) keep(t testing.TB, h http.Header) {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name != retry.CookieName {
			continue
		}
		if c.MaxAge < 0 {
			t.Errorf("Set-Cookie %q: a browser deletes this cookie at once", h.Values("Set-Cookie"))
			b.cookie = ""
			continue
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
			t.Errorf("Set-Cookie %q: want HttpOnly and SameSite=Lax", h.Values("Set-Cookie"))
		}
		b.cookie = c.Value
	}
}

// header is the request header of a (re)connect: the cookie, and
// Last-Event-ID when lastID is not empty.
func (b *browser) header(lastID string) map[string]string {
	hdr := map[string]string{}
	if lastID != "" {
		hdr["Last-Event-ID"] = lastID
	}
	if b.cookie != "" {
		hdr["Cookie"] = retry.CookieName + "=" + b.cookie
	}
	return hdr
}

// state decodes the browser's cookie with codec.
func (b *browser) state(t testing.TB, codec *retry.Codec) retry.State {
	t.Helper()
	st, ok := codec.Decode(b.cookie)
	if !ok {
		t.Fatalf("retry cookie %q does not decode", b.cookie)
	}
	return st
}

// answer is a node's answer to one connection attempt: a served stream, or
// a complete response (a refusal's short 200, an error).
type answer struct {
	resp   *http.Response
	body   []byte  // the whole body, when no stream was served
	stream *stream // the stream, when one was served
}

func (a answer) String() string {
	if a.stream != nil {
		return "a stream"
	}
	return fmt.Sprintf("%d %q", a.resp.StatusCode, a.body)
}

// connect sends GET /v1/events+query. Streams are chunked; refusals and
// errors are complete responses.
func (n *testNode) connect(t testing.TB, query string, hdr map[string]string) answer {
	t.Helper()
	return n.connectVia(t, &net.Dialer{}, query, hdr)
}

func (n *testNode) connectVia(t testing.TB, d *net.Dialer, query string, hdr map[string]string) answer {
	t.Helper()
	conn, _, resp := rawRequestVia(t, d, n.addr, getRequest("/v1/events"+query, hdr))
	if resp.StatusCode == http.StatusOK && slices.Contains(resp.TransferEncoding, "chunked") {
		return answer{resp: resp, stream: newStream(t, conn, resp, resp.Body)}
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a complete answer: %v", err)
	}
	return answer{resp: resp, body: b}
}

// served checks that a is a stream and returns it.
func (a answer) served(t testing.TB) *stream {
	t.Helper()
	if a.stream == nil {
		t.Fatalf("answer %s, want a stream", a)
	}
	return a.stream
}

// shortAnswer is the whole body of a refusal.
var shortAnswer = regexp.MustCompile(`^retry: ([0-9]+)\n: ([a-z_]+)\n\n$`)

// refused checks that a is the short answer of refusal want (200
// text/event-stream, a retry hint, a comment naming the refusal, no event,
// the end) and returns the hint.
func (a answer) refused(t testing.TB, want node.Refusal) time.Duration {
	t.Helper()
	if a.stream != nil {
		a.stream.close()
		t.Fatalf("a stream was served, want a short %q answer", want)
	}
	if a.resp.StatusCode != http.StatusOK || a.resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("answer %s (Content-Type %q), want 200 text/event-stream", a, a.resp.Header.Get("Content-Type"))
	}
	m := shortAnswer.FindSubmatch(a.body)
	if m == nil || string(m[2]) != want.String() {
		t.Fatalf("body %q, want \"retry: <ms>\\n: %s\\n\\n\"", a.body, want)
	}
	ms, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// What a browser makes of it: a new reconnection delay, no event.
	p := sse.NewParser(bytes.NewReader(a.body))
	if b, err := p.Next(); err != nil || b.Dispatch || b.Retry != ms {
		t.Fatalf("parsed %+v, %v: want one block with retry %d and no event", b, err, ms)
	}
	if b, err := p.Next(); err != io.EOF {
		t.Fatalf("after the hint: %+v, %v, want the end", b, err)
	}
	return time.Duration(ms) * time.Millisecond
}

// rejected checks that a is a 429 JSON error with code and a Retry-After
// of whole seconds, and returns the Retry-After.
func (a answer) rejected(t testing.TB, code string) time.Duration {
	t.Helper()
	if a.stream != nil {
		a.stream.close()
		t.Fatalf("a stream was served, want 429 %s", code)
	}
	r := apiResponse{Status: a.resp.StatusCode, Header: a.resp.Header, Body: a.body}
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("answer %s, want 429 %s", r, code)
	}
	if got := r.errorCode(t); got != code {
		t.Errorf("429 code %q, want %q", got, code)
	}
	s, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || s < 1 {
		t.Fatalf("Retry-After %q, want a whole number of seconds >= 1", r.Header.Get("Retry-After"))
	}
	return time.Duration(s) * time.Second
}

// waitCookies waits until n signs retry cookies: it loads the key after
// it starts (from Redis when it has none of its own), and serves streams
// without a cookie until then.
func waitCookies(t testing.TB, n *testNode) {
	t.Helper()
	checkFor(t, waitTimeout, func() error {
		a := n.connect(t, streamQuery("cookie-probe"), nil)
		s := a.served(t)
		s.close()
		if a.resp.Header.Get("Set-Cookie") == "" {
			return fmt.Errorf("node %s sets no retry cookie yet", a.resp.Header.Get("X-SSE-Node"))
		}
		return nil
	})
}

// admitWithHint opens new streams (without Last-Event-ID) until the node
// draws a first hint of at least atLeast, and returns that stream's browser,
// hint and live id, the stream closed. Full jitter draws from [0, Base]: a
// short draw leaves no time to come back early on purpose.
func admitWithHint(t testing.TB, n *testNode, query string, atLeast time.Duration, base time.Duration) (*browser, time.Duration, string) {
	t.Helper()
	for range 100 {
		br := &browser{}
		a := n.connect(t, query, br.header(""))
		s := a.served(t)
		br.keep(t, a.resp.Header)
		first, _, live := s.head(t)
		s.close()
		hint := time.Duration(first.Retry) * time.Millisecond
		if hint > base {
			t.Fatalf("first hint %v above the base %v", hint, base)
		}
		if hint >= atLeast {
			return br, hint, live.ID
		}
	}
	t.Fatalf("no first hint of at least %v in 100 draws from [0, %v]", atLeast, base)
	return nil, 0, ""
}

// refusedCounts returns Stats.Refused by refusal name.
func refusedCounts(n *testNode) map[string]int64 {
	m := make(map[string]int64)
	for i, name := range node.RefusalNames() {
		if v := n.srv.Stats().Refused[i].Load(); v != 0 {
			m[name] = v
		}
	}
	return m
}

// closedCounts returns Stats.Closed by reason name.
func closedCounts(n *testNode) map[string]int64 {
	m := make(map[string]int64)
	for i, name := range node.CloseReasonNames() {
		if v := n.srv.Stats().Closed[i].Load(); v != 0 {
			m[name] = v
		}
	}
	return m
}

// checkCounts compares counters by name (absent names are 0).
func checkCounts(t testing.TB, what string, got, want map[string]int64) {
	t.Helper()
	for k, v := range want {
		if v == 0 {
			delete(want, k)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) { // fmt sorts map keys
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}

// TestRetryEnforced follows one client through the policy: its first
// stream gets a cookie and a hint; reconnects sooner than the hint (by
// header or query cursor) get the short 200 with the remaining wait, then
// 429 past EarlyLimit; a reconnect after the hint is served one attempt
// further. A new client (no Last-Event-ID) is never judged.
func TestRetryEnforced(t *testing.T) {
	cfg := policyConfig(t)
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	codec := testCodec(t)
	query := streamQuery("enforced")
	waitCookies(t, n)

	before := time.Now()
	br, hint, lastID := admitWithHint(t, n, query, 600*time.Millisecond, cfg.Retry.Base)
	st := br.state(t, codec)
	if st.Attempt != 0 || st.Early != 0 || st.Hint != hint || st.Issued.Before(before.Truncate(time.Millisecond)) || st.Issued.After(time.Now()) {
		t.Fatalf("first cookie %+v, want attempt 0, hint %v, issued since %v", st, hint, before)
	}
	// The stream dropped at once (admitWithHint closed it): the client
	// should wait hint before coming back.

	// A page opening a new EventSource is a new client, whatever its
	// cookie says.
	fresh := *br
	a := n.connect(t, query, fresh.header(""))
	a.served(t).live(t)
	fresh.keep(t, a.resp.Header)
	if got := fresh.state(t, codec); got.Attempt != 0 || got.Early != 0 {
		t.Errorf("new client's cookie %+v, want attempt 0, no early return", got)
	}

	// Early reconnects: the remaining wait, and the count in the cookie.
	left := hint
	for i := 1; i <= cfg.Retry.EarlyLimit; i++ {
		q, hdr := query, br.header(lastID)
		if i%2 == 0 { // the cursor as a query parameter counts the same
			q, hdr = query+"&last_event_id="+url.QueryEscape(lastID), br.header("")
		}
		a := n.connect(t, q, hdr)
		got := a.refused(t, node.RefuseEarly)
		if got <= 0 || got > left {
			t.Errorf("early return %d: hint %v, want within (0, %v]", i, got, left)
		}
		left = got
		br.keep(t, a.resp.Header)
		if c := br.state(t, codec); c.Early != i || c.Attempt != st.Attempt || !c.Issued.Equal(st.Issued) || c.Hint != st.Hint {
			t.Errorf("cookie after early return %d: %+v, want %+v with %d early", i, c, st, i)
		}
	}
	a = n.connect(t, query, br.header(lastID))
	if after := a.rejected(t, "retry_hint_ignored"); after < left {
		t.Errorf("Retry-After %v is shorter than the remaining wait %v", after, left)
	}
	br.keep(t, a.resp.Header)
	if c := br.state(t, codec); c.Early != cfg.Retry.EarlyLimit+1 {
		t.Errorf("cookie after the 429: %+v, want %d early", c, cfg.Retry.EarlyLimit+1)
	}

	// The client waits its hint out (what a client following hints does,
	// not a synchroniser) and is served, one attempt further.
	time.Sleep(time.Until(st.Issued.Add(st.Hint + time.Millisecond)))
	a = n.connect(t, query, br.header(lastID))
	r := a.served(t)
	first, start, live := r.head(t)
	br.keep(t, a.resp.Header)
	next := br.state(t, codec)
	if next.Attempt != 1 || next.Early != 0 || next.Hint.Milliseconds() != first.Retry || next.Hint > cfg.Retry.Ceiling(1) {
		t.Errorf("cookie after the hint: %+v (head hint %dms), want attempt 1 and the head's hint within [0, %v]", next, first.Retry, cfg.Retry.Ceiling(1))
	}
	if len(start) != 0 || live.ID != lastID {
		t.Errorf("resumed with %d events at %q, want none at %q", len(start), live.ID, lastID)
	}
	checkCounts(t, "Refused", refusedCounts(n), map[string]int64{
		"early": int64(cfg.Retry.EarlyLimit), "too_many": 1,
	})
}

// TestRetryCookieAcrossNodes: nodes sharing a Redis sign with the same
// key, so a cookie node A issued makes node B refuse an early reconnect,
// and the other way round; a cookie signed with another key is ignored.
func TestRetryCookieAcrossNodes(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	prefix := uniquePrefix()
	cfg := policyConfig(t)
	cfg.CookieKey = nil // the cluster's key, from Redis
	nodes := make([]*testNode, 2)
	for i, id := range []string{"a", "b"} {
		c := cfg
		c.NodeID = id
		nodes[i] = startNode(t, c, newRedisBroker(t, srv, prefix, nil))
		waitCookies(t, nodes[i])
	}
	a, b := nodes[0], nodes[1]
	query := streamQuery("across")

	br, hint, lastID := admitWithHint(t, a, query, 600*time.Millisecond, cfg.Retry.Base)
	ans := b.connect(t, query, br.header(lastID))
	left := ans.refused(t, node.RefuseEarly)
	if left <= 0 || left > hint {
		t.Errorf("node b's remaining wait %v, want within (0, %v]", left, hint)
	}
	br.keep(t, ans.resp.Header)
	ans = a.connect(t, query, br.header(lastID))
	if got := ans.refused(t, node.RefuseEarly); got <= 0 || got > left {
		t.Errorf("node a's remaining wait %v after node b's %v", got, left)
	}

	// Control: the same early reconnect with a cookie signed by another
	// cluster is a client without a cookie.
	other, err := retry.NewCodec([]byte("another-cluster-cookie-key-32byt"))
	if err != nil {
		t.Fatal(err)
	}
	forged := &browser{cookie: other.Encode(retry.State{Attempt: 3, Issued: time.Now(), Hint: time.Hour})}
	b.connect(t, query, forged.header(lastID)).served(t).live(t)

	checkCounts(t, "node a Refused", refusedCounts(a), map[string]int64{"early": 1})
	checkCounts(t, "node b Refused", refusedCounts(b), map[string]int64{"early": 1})
}

// TestRetryCookieKeyAfterRedisLoss: a Redis that restarts without its data
// gets a new cookie key from the first node that asks (here one started
// after the restart); a node that was running follows it, so cookies are
// again valid across both nodes.
func TestRetryCookieKeyAfterRedisLoss(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	prefix := uniquePrefix()
	cfg := policyConfig(t)
	cfg.CookieKey = nil
	cfg.CookieKeyRefresh = 200 * time.Millisecond
	cfg.NodeID = "a"
	a := startNode(t, cfg, newRedisBroker(t, srv, prefix, nil))
	waitCookies(t, a)

	srv.Kill()
	srv.Restart()
	cfg.NodeID = "c"
	c := startNode(t, cfg, newRedisBroker(t, srv, prefix, nil))
	waitCookies(t, c)

	query := streamQuery("key-loss")
	across := func(from, to *testNode, names string) error {
		br, _, lastID := admitWithHint(t, from, query, 600*time.Millisecond, cfg.Retry.Base)
		ans := to.connect(t, query, br.header(lastID))
		if ans.stream != nil {
			ans.stream.close()
			return fmt.Errorf("%s: an early reconnect with the first node's cookie was served: the nodes sign with different keys", names)
		}
		ans.refused(t, node.RefuseEarly)
		return nil
	}
	checkFor(t, waitTimeout, func() error { return across(c, a, "c to a") })
	if err := across(a, c, "a to c"); err != nil {
		t.Error(err)
	}
}

// TestHealthyReset: a stream that lives past HealthyAfter gets a fresh
// base hint, once, and its next reconnect starts the backoff over.
func TestHealthyReset(t *testing.T) {
	cfg := testConfig(t)
	cfg.CookieKey = testCookieKey
	cfg.Heartbeat = 50 * time.Millisecond
	cfg.Retry = retry.Policy{Base: 100 * time.Millisecond, Cap: 300 * time.Millisecond, HealthyAfter: 300 * time.Millisecond}
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	codec := testCodec(t)
	query := streamQuery("healthy")
	waitCookies(t, n)
	s := n.subscribe(t, query, "")
	lastID := s.live(t).ID
	s.close()

	// A client in backoff: two failed attempts, its (short) hint waited.
	br := &browser{cookie: codec.Encode(retry.State{Attempt: 2, Issued: time.Now().Add(-time.Millisecond), Hint: time.Millisecond})}
	start := time.Now()
	a := n.connect(t, query, br.header(lastID))
	s = a.served(t)
	br.keep(t, a.resp.Header)
	first, _, _ := s.head(t)
	if st := br.state(t, codec); st.Attempt != 3 || first.Retry != st.Hint.Milliseconds() || st.Hint > cfg.Retry.Ceiling(3) {
		t.Fatalf("cookie %+v, head hint %dms: want attempt 3 and a hint within [0, %v]", st, first.Retry, cfg.Retry.Ceiling(3))
	}

	reset := sse.Event{Retry: -1}
	for reset.Retry < 0 {
		if reset = s.nextBlock(t); reset.Dispatch {
			t.Fatalf("event %+v on a topic nobody publishes to", reset)
		}
	}
	if lived := time.Since(start); lived < cfg.Retry.HealthyAfter {
		t.Errorf("fresh hint after %v, before HealthyAfter %v", lived, cfg.Retry.HealthyAfter)
	}
	if reset.Retry > cfg.Retry.Base.Milliseconds() {
		t.Errorf("fresh hint %dms, want within [0, %v]", reset.Retry, cfg.Retry.Base)
	}
	for range 4 { // the following heartbeats carry no hint: the reset is sent once
		if b := s.nextBlock(t); b.Retry >= 0 || b.Dispatch {
			t.Fatalf("block %+v after the healthy reset, want a heartbeat", b)
		}
	}
	s.close()

	a = n.connect(t, query, br.header(s.lastID()))
	r := a.served(t)
	first, _, _ = r.head(t)
	br.keep(t, a.resp.Header)
	if st := br.state(t, codec); st.Attempt != 0 || st.Hint > cfg.Retry.Base {
		t.Errorf("cookie after a healthy stream %+v (head hint %dms), want attempt 0 and a hint within [0, %v]", st, first.Retry, cfg.Retry.Base)
	}
	checkCounts(t, "Refused", refusedCounts(n), nil)
}

// TestDrain drains a node holding 240 streams: it turns not ready and
// refuses new streams at once, ends every stream with a goodbye (retry
// hint, ": drain") spread over the window, counts them, and closes the
// Drain channel.
func TestDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a drain window")
	}
	const streams = 240
	const window = 2 * time.Second
	cfg := testConfig(t)
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	ss := make([]*stream, streams)
	for i := range ss {
		ss[i] = n.subscribe(t, streamQuery(fmt.Sprintf("drain-%d", i%4)), "")
		ss[i].live(t)
	}

	start := time.Now()
	done := n.srv.Drain(window)
	if r := n.get(t, "/readyz"); r.Status != http.StatusServiceUnavailable || r.errorCode(t) != "not_ready" {
		t.Errorf("/readyz once draining: %s, want 503 not_ready", r)
	}
	ended := 0
	for _, s := range ss {
		select {
		case <-s.done:
			ended++
		default:
		}
	}
	if ended >= streams/2 {
		t.Errorf("%d of %d streams closed before /readyz turned 503", ended, streams)
	}
	if hint := n.connect(t, streamQuery("drain-0"), nil).refused(t, node.RefuseDraining); hint > cfg.Retry.Ceiling(1) {
		t.Errorf("draining refusal hint %v, want within [0, %v]", hint, cfg.Retry.Ceiling(1))
	}
	n.publish(t, ev{Topic: "drain-1", Data: "publishing goes on"})

	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("Drain channel still open %v after a %v drain", waitTimeout, window)
	}
	offsets := make([]time.Duration, 0, streams)
	for i, s := range ss {
		rest, err := s.waitEnd(t)
		if err != io.EOF || len(rest) == 0 {
			t.Fatalf("stream %d ended with %v after %d blocks, want a goodbye and a clean end", i, err, len(rest))
		}
		last := rest[len(rest)-1]
		if last.Dispatch || last.Retry < 0 || last.Retry > cfg.Retry.Cap.Milliseconds() || last.Comments != 1 {
			t.Errorf("stream %d: last block %+v, want a retry hint within [0, %v] and a comment", i, last, cfg.Retry.Cap)
		}
		if want := fmt.Sprintf("retry: %d\n: drain\n\n", last.Retry); !strings.HasSuffix(s.bodyTail(), want) {
			t.Errorf("stream %d ends with %q, want %q", i, s.bodyTail(), want)
		}
		offsets = append(offsets, s.endedAt().Sub(start))
	}

	// Spread over the window: a distribution check, not a timing one.
	slices.Sort(offsets)
	if offsets[0] >= window/2 || offsets[len(offsets)-1] < window/2 {
		t.Errorf("closes from %v to %v, want some before and some after half the %v window", offsets[0], offsets[len(offsets)-1], window)
	}
	const bucket = 200 * time.Millisecond
	counts := make([]int, window/bucket)
	for _, o := range offsets {
		counts[min(int(o/bucket), len(counts)-1)]++
	}
	mean := streams / len(counts)
	for i, c := range counts {
		if c > 4*mean {
			t.Errorf("%d closes within %v-%v, more than 4x the mean %d: %v", c, time.Duration(i)*bucket, time.Duration(i+1)*bucket, mean, counts)
		}
	}
	t.Logf("closes per %v: %v", bucket, counts)

	checkFor(t, waitTimeout, func() error {
		if got := n.srv.Stats().Closed[node.ReasonDrain].Load(); got != streams {
			return fmt.Errorf("Closed[drain] = %d, want %d", got, streams)
		}
		return nil
	})
	if got := n.srv.OpenStreams(); got != 0 {
		t.Errorf("%d streams open after the drain", got)
	}
	checkCounts(t, "Closed", closedCounts(n), map[string]int64{"drain": streams})
	checkCounts(t, "Refused", refusedCounts(n), map[string]int64{"draining": 1})
	if st := n.srv.DrainStatus(); !st.Draining || !st.Done || st.Streams != streams || st.Closed != streams || st.Window != window {
		t.Errorf("DrainStatus %+v, want done, %d of %d closed over %v", st, streams, streams, window)
	}
	select {
	case <-n.srv.Drain(time.Hour): // a second call starts nothing and returns the closed channel
	default:
		t.Error("a second Drain returned an open channel")
	}
}

// TestDrainResumeElsewhere drains node A of a two-node Redis cluster while
// events are published: every client follows its goodbye hint, reconnects
// to node B with its cookie and Last-Event-ID, is served (never judged
// early), and gets every event exactly once, in order.
func TestDrainResumeElsewhere(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a drain window")
	}
	const streams = 90
	const rounds = 20
	const window = 2 * time.Second
	rs := pubsubtest.StartRedis(t)
	prefix := uniquePrefix()
	topics := []string{"dre-0", "dre-1", "dre-2"}
	cfg := testConfig(t)
	nodes := make([]*testNode, 2)
	for i, id := range []string{"a", "b"} {
		c := cfg
		c.NodeID = id
		nodes[i] = startNode(t, c, newRedisBroker(t, rs, prefix, nil))
		waitCookies(t, nodes[i])
	}
	a, b := nodes[0], nodes[1]
	// The cookie probes must be gone before the drain, which would count
	// them otherwise.
	probes := a.srv.Stats().ConnsOpened.Load()
	checkFor(t, waitTimeout, func() error {
		if got := a.srv.Stats().Closed[node.ReasonClientGone].Load(); got != probes {
			return fmt.Errorf("node a: %d of %d cookie probes closed", got, probes)
		}
		return nil
	})

	// Each client's wait for its hint runs in its own goroutine, started
	// below; it ends once its stream ended and its hint passed. The
	// cleanup is registered before the streams', so it runs after they
	// were closed.
	var waiters sync.WaitGroup
	t.Cleanup(waiters.Wait)
	ss := make([]*stream, streams)
	brs := make([]*browser, streams)
	for i := range ss {
		brs[i] = &browser{}
		ans := a.connect(t, streamQuery(topics[i%len(topics)]), nil)
		ss[i] = ans.served(t)
		brs[i].keep(t, ans.resp.Header)
		ss[i].live(t)
	}
	due := make(chan int, streams) // clients whose hint passed, in that order
	for i, s := range ss {
		waiters.Go(func() {
			<-s.done
			s.mu.Lock()
			wait := time.Duration(max(s.blocks[len(s.blocks)-1].Retry, 0)) * time.Millisecond
			ended := s.ended
			s.mu.Unlock()
			time.Sleep(time.Until(ended.Add(wait))) // the client honours its hint
			due <- i
		})
	}

	drained := a.srv.Drain(window)
	// Publish one event per topic every window/rounds (alternately through
	// A, still serving publishes, and B) while reconnecting the clients
	// whose hint passed.
	tick := time.NewTicker(window / rounds)
	defer tick.Stop()
	ticks := tick.C
	published := 0
	onA := make([][]string, streams)
	resumed := make([]*stream, streams)
	deadline := time.After(waitTimeout + window)
	for back := 0; back < streams || published < rounds; {
		select {
		case <-ticks:
			var evs []ev
			for _, tp := range topics {
				evs = append(evs, ev{Topic: tp, Data: fmt.Sprintf("%s/%d", tp, published)})
			}
			nodes[published%2].publish(t, evs...)
			if published++; published == rounds {
				ticks = nil
			}
		case i := <-due:
			back++
			s := ss[i]
			rest, err := s.waitEnd(t)
			last := rest[len(rest)-1]
			if err != io.EOF || last.Retry < 0 || !strings.HasSuffix(s.bodyTail(), ": drain\n\n") {
				t.Fatalf("client %d: stream ended with %v, last block %+v: want a drain goodbye and a clean end", i, err, last)
			}
			for _, e := range rest {
				if e.Dispatch {
					onA[i] = append(onA[i], e.Data)
				}
			}
			ans := b.connect(t, streamQuery(topics[i%len(topics)]), brs[i].header(last.ID))
			if ans.stream == nil {
				t.Fatalf("client %d followed its %dms goodbye hint and node b answered %s", i, last.Retry, ans)
			}
			brs[i].keep(t, ans.resp.Header)
			resumed[i] = ans.stream
		case <-deadline:
			t.Fatalf("after %v: %d events published, clients not all back", waitTimeout+window, published)
		}
	}
	select {
	case <-drained:
	case <-time.After(waitTimeout):
		t.Fatal("Drain channel still open")
	}

	for i, r := range resumed {
		tp := topics[i%len(topics)]
		got := append(slices.Clip(onA[i]), data(collect(t, r, rounds-len(onA[i])))...)
		if want := seq(tp+"/", 0, rounds); !slices.Equal(got, want) {
			t.Fatalf("client %d: got %q (%d on node a), want %q", i, got, len(onA[i]), want)
		}
	}
	// Nothing more than that: the next event is the marker.
	var evs []ev
	for _, tp := range topics {
		evs = append(evs, ev{Topic: tp, Data: tp + "/end"})
	}
	b.publish(t, evs...)
	for i, r := range resumed {
		if e := r.nextEvent(t); e.Data != topics[i%len(topics)]+"/end" {
			t.Fatalf("client %d: after the sequence got %q, want the marker", i, e.Data)
		}
	}
	checkFor(t, waitTimeout, func() error {
		if got := a.srv.Stats().Closed[node.ReasonDrain].Load(); got != streams {
			return fmt.Errorf("node a Closed[drain] = %d, want %d", got, streams)
		}
		return nil
	})
	checkCounts(t, "node a Closed", closedCounts(a), map[string]int64{"drain": streams, "client_gone": probes})
	checkCounts(t, "node b Refused", refusedCounts(b), nil)
	if got := b.srv.Stats().Resets.Load(); got != 0 {
		t.Errorf("node b sent %d resets", got)
	}
}

// outcome is what a connection attempt should get.
type outcome struct {
	refusal string // "" for a stream; else the Refusal name
	code    string // the 429 error code; "" for a short 200
}

var serve = outcome{}

func short(r node.Refusal) outcome            { return outcome{refusal: r.String()} }
func reject(r node.Refusal, c string) outcome { return outcome{refusal: r.String(), code: c} }

// TestAdmissionLimits: the node's own limits (MaxStreams, AdmitRate) answer
// with the short 200; per-address limits answer 429 and count the address
// a trusted proxy names in X-Forwarded-For.
func TestAdmissionLimits(t *testing.T) {
	type step struct {
		from string // source address; "" is 127.0.0.1
		xff  string // X-Forwarded-For, when set
		want outcome
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cases := []struct {
		name  string
		mod   func(*node.Config)
		steps []step
	}{
		{"capacity", func(c *node.Config) { c.MaxStreams = 3 }, []step{
			{want: serve}, {want: serve}, {want: serve}, {want: short(node.RefuseCapacity)}, {from: "127.0.0.2", want: short(node.RefuseCapacity)},
		}},
		{"admission rate", func(c *node.Config) { c.AdmitRate, c.AdmitBurst = 0.001, 2 }, []step{
			{want: serve}, {from: "127.0.0.2", want: serve}, {want: short(node.RefuseAdmission)}, {from: "127.0.0.3", want: short(node.RefuseAdmission)},
		}},
		{"streams per address", func(c *node.Config) { c.MaxStreamsPerAddr = 2 }, []step{
			{want: serve}, {want: serve}, {want: reject(node.RefuseAddrStreams, "too_many_streams")},
			{from: "127.0.0.2", want: serve},
		}},
		{"connect rate per address", func(c *node.Config) { c.ConnectRatePerAddr = 0.01 }, []step{
			{want: serve}, {want: reject(node.RefuseAddrRate, "connect_rate_exceeded")},
			{from: "127.0.0.2", want: serve}, {from: "127.0.0.2", want: reject(node.RefuseAddrRate, "connect_rate_exceeded")},
		}},
		{"trusted proxy", func(c *node.Config) { c.MaxStreamsPerAddr, c.TrustedProxies = 1, loopback }, []step{
			{xff: "10.0.0.1", want: serve},
			{xff: "10.0.0.2", want: serve},
			{xff: "10.0.0.1", want: reject(node.RefuseAddrStreams, "too_many_streams")},
			{xff: "198.51.100.7, 10.0.0.2", want: reject(node.RefuseAddrStreams, "too_many_streams")}, // the last hop counts
			{xff: "10.0.0.2, 10.0.0.3", want: serve},
			{want: serve},                                                                                   // the proxy's own request
			{from: "127.0.0.2", xff: "10.0.0.9", want: serve},                                               // not trusted: counted as 127.0.0.2
			{from: "127.0.0.2", xff: "10.0.0.10", want: reject(node.RefuseAddrStreams, "too_many_streams")}, // ...which has its stream
		}},
		{"untrusted forwarded-for", func(c *node.Config) { c.MaxStreamsPerAddr = 1 }, []step{
			{xff: "10.0.0.1", want: serve},
			{xff: "10.0.0.2", want: reject(node.RefuseAddrStreams, "too_many_streams")},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			c.mod(&cfg)
			n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
			wantRefused := make(map[string]int64)
			served := 0
			for i, st := range c.steps {
				d := &net.Dialer{}
				if st.from != "" {
					d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(st.from)}
				}
				hdr := map[string]string{}
				if st.xff != "" {
					hdr["X-Forwarded-For"] = st.xff
				}
				a := n.connectVia(t, d, streamQuery("limits"), hdr)
				switch {
				case st.want == serve:
					if a.stream == nil {
						t.Fatalf("step %d (%+v): %s, want a stream", i, st, a)
					}
					a.stream.live(t)
					served++
				case st.want.code == "":
					var r node.Refusal
					for k, name := range node.RefusalNames() {
						if name == st.want.refusal {
							r = node.Refusal(k)
						}
					}
					if hint := a.refused(t, r); hint > cfg.Retry.Ceiling(1) {
						t.Errorf("step %d: hint %v, want within [0, %v]", i, hint, cfg.Retry.Ceiling(1))
					}
				default:
					a.rejected(t, st.want.code)
				}
				if st.want.refusal != "" {
					wantRefused[st.want.refusal]++
				}
			}
			checkCounts(t, "Refused", refusedCounts(n), wantRefused)
			if got := n.srv.OpenStreams(); got != served {
				t.Errorf("%d open streams, want the %d served", got, served)
			}
		})
	}
}

// TestAddrLimitReleased: a stream that ends gives its address's place back.
func TestAddrLimitReleased(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxStreamsPerAddr = 1
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	query := streamQuery("released")
	s := n.connect(t, query, nil).served(t)
	s.live(t)
	n.connect(t, query, nil).rejected(t, "too_many_streams")
	s.close()
	checkFor(t, waitTimeout, func() error { // counted once the place is given back
		if got := n.srv.Stats().Closed[node.ReasonClientGone].Load(); got != 1 {
			return fmt.Errorf("Closed[client_gone] = %d", got)
		}
		return nil
	})
	n.connect(t, query, nil).served(t).live(t)
	checkCounts(t, "Refused", refusedCounts(n), map[string]int64{"addr_streams": 1})
}
