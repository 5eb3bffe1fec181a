package node_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// redisParts is the partition count of the Redis tests.
const redisParts = 8

var prefixSeq atomic.Int64

// newRedisBroker returns a broker on srv with the cluster prefix prefix,
// closed when the test ends (after the node using it stopped).
func newRedisBroker(t testing.TB, srv *pubsubtest.Redis, prefix string, mod func(*pubsub.RedisConfig)) *pubsub.Redis {
	t.Helper()
	cfg := pubsub.RedisConfig{
		URL:        srv.URL(),
		Prefix:     prefix,
		Partitions: redisParts,
		Block:      time.Second,
		Logger:     testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := pubsub.NewRedis(cfg)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// uniquePrefix keeps the clusters of tests sharing a redis-server apart.
func uniquePrefix() string { return fmt.Sprintf("nt%d", prefixSeq.Add(1)) }

// startRedisNode starts a node on its own broker of the cluster prefix.
func startRedisNode(t testing.TB, srv *pubsubtest.Redis, prefix, id string, mod func(*pubsub.RedisConfig)) *testNode {
	t.Helper()
	cfg := testConfig(t)
	cfg.NodeID = id
	return startNode(t, cfg, newRedisBroker(t, srv, prefix, mod))
}

// TestRedisResumeOnAnotherNode: a client of node A resumes on node B after A
// stopped, and on node C that started after the events it missed (so C
// must read them from Redis), with nothing lost or repeated, per topic in
// order.
func TestRedisResumeOnAnotherNode(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	cases := []struct {
		name   string
		topics []string
	}{
		{"one topic", []string{"solo"}},
		{"partitions apart", []string{topicsIn(0, redisParts, 1, "pa")[0], topicsIn(3, redisParts, 1, "pb")[0], topicsIn(7, redisParts, 1, "pc")[0]}},
		{"one partition", topicsIn(5, redisParts, 3, "same")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := uniquePrefix()
			a := startRedisNode(t, srv, prefix, "a", nil)
			b := startRedisNode(t, srv, prefix, "b", nil)
			query := streamQuery(c.topics...)
			round := func(tag string, k int, via ...*testNode) map[string][]string {
				want := make(map[string][]string)
				for i := range k {
					var evs []ev
					for _, tp := range c.topics {
						d := fmt.Sprintf("%s/%s%d", tp, tag, i)
						evs = append(evs, ev{Topic: tp, Data: d})
						want[tp] = append(want[tp], d)
					}
					via[i%len(via)].publish(t, evs...)
				}
				return want
			}

			s := a.subscribe(t, query, "")
			if s.resp.Header.Get("X-SSE-Node") != "a" {
				t.Fatalf("X-SSE-Node %q, want a", s.resp.Header.Get("X-SSE-Node"))
			}
			s.live(t)
			want := round("live", 4, a, b)
			checkPerTopic(t, "on node a", s.events(t, 4*len(c.topics)), want)
			last := s.lastID()

			if err := a.stop(t); err != nil {
				t.Fatalf("node a: %v", err)
			}
			rest, err := s.waitEnd(t)
			if err != io.EOF || len(rest) == 0 || rest[len(rest)-1].Retry < 0 {
				t.Fatalf("node a's stream ended with %v, blocks %+v: want a retry hint and a clean end", err, rest)
			}

			missed := round("missed", 5, b)
			r := b.subscribe(t, query, last)
			checkPerTopic(t, "resumed on node b", collect(t, r, 5*len(c.topics)), missed)

			cNode := startRedisNode(t, srv, prefix, "c", nil)
			rc := cNode.subscribe(t, query, last)
			checkPerTopic(t, "resumed on node c", collect(t, rc, 5*len(c.topics)), missed)
			if st := snapshot(cNode); st.reads == 0 {
				t.Errorf("node c served history it never saw without reading Redis: %+v", st)
			}

			// Both continue live, with nothing twice, whichever node
			// publishes.
			more := round("after", 2, b, cNode)
			checkPerTopic(t, "live on node b", r.events(t, 2*len(c.topics)), more)
			checkPerTopic(t, "live on node c", rc.events(t, 2*len(c.topics)), more)
		})
	}
}

// TestRedisRestartEmpty: Redis dies and comes back without its data. While
// it is down, publishes answer 503 broker_unavailable, /readyz 503, and
// streams stay open with heartbeats. Afterwards streams get reset
// (epoch_changed) for each topic, new events flow, and an old cursor gets
// reset.
func TestRedisRestartEmpty(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	n := startRedisNode(t, srv, uniquePrefix(), "n", nil)
	topics := []string{topicsIn(1, redisParts, 1, "re")[0], topicsIn(6, redisParts, 1, "re")[0]}
	s := n.subscribe(t, streamQuery(topics...), "")
	s.live(t)
	n.publish(t, ev{Topic: topics[0], Data: "before-0"}, ev{Topic: topics[1], Data: "before-1"})
	s.events(t, 2)
	oldCursor := s.lastID()

	srv.Kill()
	r := n.post(t, `{"topic":"`+topics[0]+`","data":"lost"}`, nil)
	if r.Status != http.StatusServiceUnavailable || r.errorCode(t) != "broker_unavailable" {
		t.Fatalf("publish with Redis down: %s, want 503 broker_unavailable", r)
	}
	checkFor(t, waitTimeout, func() error {
		if r := n.get(t, "/readyz"); r.Status != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz with Redis down: %s", r)
		}
		return nil
	})
	for range 3 {
		if b := s.nextBlock(t); b.Dispatch {
			t.Fatalf("event while Redis is down: %+v", b)
		}
	}

	srv.Restart()
	n.waitReady(t)
	var resets []sse.Event
	for len(resets) < len(topics) {
		e := s.nextEvent(t)
		if e.Type != "reset" {
			t.Fatalf("event %+v before the resets", e)
		}
		resets = append(resets, e)
	}
	checkResets(t, resets, topics, pubsub.ReasonEpochChanged)
	ids := n.publish(t, ev{Topic: topics[0], Data: "after-0"}, ev{Topic: topics[1], Data: "after-1"})
	got := data(s.events(t, 2))
	slices.Sort(got) // two partitions: no order between them
	if !slices.Equal(got, []string{"after-0", "after-1"}) {
		t.Fatalf("after the restart: %q", got)
	}
	for _, id := range ids {
		if cur := cursorOf(t, id, redisParts); cur[0].Epoch == cursorOf(t, oldCursor, redisParts)[0].Epoch && cur[0].Partition == cursorOf(t, oldCursor, redisParts)[0].Partition {
			t.Errorf("id %s keeps the epoch of before the restart", id)
		}
	}

	old := n.subscribe(t, streamQuery(topics...), oldCursor)
	_, start, _ := old.head(t)
	checkResets(t, start, topics, pubsub.ReasonEpochChanged)
}

// TestRedisRestartPersistent: with persistence, Redis stopped and started
// again keeps everything: no reset, nothing lost, old cursors still work.
func TestRedisRestartPersistent(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts redis-server with persistence")
	}
	srv := pubsubtest.StartRedis(t, pubsubtest.WithPersistence())
	n := startRedisNode(t, srv, uniquePrefix(), "n", nil)
	topics := []string{topicsIn(2, redisParts, 1, "pe")[0], topicsIn(4, redisParts, 1, "pe")[0]}
	s := n.subscribe(t, streamQuery(topics...), "")
	s.live(t)
	n.publish(t, ev{Topic: topics[0], Data: topics[0] + "/0"}, ev{Topic: topics[1], Data: topics[1] + "/0"})
	s.events(t, 2)
	cursor := s.lastID()

	srv.Stop()
	if r := n.post(t, `{"topic":"x","data":1}`, nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("publish with Redis stopped: %s, want 503", r)
	}
	srv.Restart()
	n.waitReady(t)
	n.publish(t, ev{Topic: topics[0], Data: topics[0] + "/1"}, ev{Topic: topics[1], Data: topics[1] + "/1"})
	got := s.events(t, 2)
	checkPerTopic(t, "after the restart", got, map[string][]string{topics[0]: {topics[0] + "/1"}, topics[1]: {topics[1] + "/1"}})

	r := n.subscribe(t, streamQuery(topics...), cursor)
	checkPerTopic(t, "resume from before the restart", collect(t, r, 2),
		map[string][]string{topics[0]: {topics[0] + "/1"}, topics[1]: {topics[1] + "/1"}})
	if st := snapshot(n); st.resets != 0 {
		t.Errorf("%d resets with a persistent Redis", st.resets)
	}
}

// TestRedisPaused: a stalled Redis (SIGSTOP) makes publishes answer 503
// without waiting forever and /readyz 503, while streams keep their
// heartbeats; once it runs again everything published reaches them, once.
func TestRedisPaused(t *testing.T) {
	if testing.Short() {
		t.Skip("stalls redis-server")
	}
	srv := pubsubtest.StartRedis(t)
	n := startRedisNode(t, srv, uniquePrefix(), "n", func(c *pubsub.RedisConfig) { c.Timeout = 300 * time.Millisecond })
	const topic = "stall"
	s := n.subscribe(t, streamQuery(topic), "")
	s.live(t)
	n.publishN(t, topic, "before", 3)
	if got := data(s.events(t, 3)); !slices.Equal(got, seq("before", 0, 3)) {
		t.Fatalf("before the stall: %q", got)
	}

	srv.Pause()
	r := n.post(t, `{"topic":"stall","data":"during"}`, nil)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("publish with Redis stalled: %s, want 503", r)
	}
	if code := r.errorCode(t); code != "publish_outcome_unknown" && code != "broker_unavailable" {
		t.Errorf("code %q, want publish_outcome_unknown or broker_unavailable", code)
	}
	if r := n.get(t, "/readyz"); r.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis stalled: %s, want 503", r)
	}
	for range 3 {
		if b := s.nextBlock(t); b.Dispatch {
			t.Fatalf("event during the stall: %+v", b)
		}
	}
	srv.Resume()
	n.waitReady(t)
	n.publishN(t, topic, "after", 3)
	// The stalled publish may or may not have been stored: at most once.
	var got []string
	during := 0
	for len(got) == 0 || got[len(got)-1] != "after2" {
		if d := s.nextEvent(t).Data; d == "during" {
			during++
		} else {
			got = append(got, d)
		}
	}
	if !slices.Equal(got, seq("after", 0, 3)) || during > 1 {
		t.Fatalf("after the stall: %q and %d times the stalled event, want after0..after2 and at most one", got, during)
	}
}

// TestRedisOutcomeUnknownRetry: a publish with an Idempotency-Key that
// times out against a stalled Redis answers 503 publish_outcome_unknown;
// the retry with the same key after Redis recovers answers 200, and the
// stream holds the event exactly once.
func TestRedisOutcomeUnknownRetry(t *testing.T) {
	if testing.Short() {
		t.Skip("stalls redis-server")
	}
	srv := pubsubtest.StartRedis(t)
	n := startRedisNode(t, srv, uniquePrefix(), "n", func(c *pubsub.RedisConfig) { c.Timeout = 300 * time.Millisecond })
	const topic = "unknown"
	s := n.subscribe(t, streamQuery(topic), "")
	s.live(t)
	hdr := http.Header{"Idempotency-Key": {"pay-42"}}
	body := `{"topic":"unknown","data":"charged"}`

	srv.Pause()
	r := n.post(t, body, hdr)
	srv.Resume()
	if r.Status != http.StatusServiceUnavailable || r.errorCode(t) != "publish_outcome_unknown" {
		t.Fatalf("publish with Redis stalled: %s, want 503 publish_outcome_unknown", r)
	}
	n.waitReady(t)
	id := publishIDs(t, n.post(t, body, hdr), 1)[0]
	again := publishIDs(t, n.post(t, body, hdr), 1)[0]
	if again != id {
		t.Fatalf("second retry id %q, want %q", again, id)
	}
	marker := n.publish(t, ev{Topic: topic, Data: "marker"})[0]
	got := s.events(t, 2)
	if got[0].Data != "charged" || got[0].ID != id || got[1].Data != "marker" || got[1].ID != marker {
		t.Fatalf("stream %q %q / %q %q, want the event once (%s) then the marker", got[0].ID, got[0].Data, got[1].ID, got[1].Data, id)
	}
	// History holds it once too.
	cur := cursorOf(t, id, redisParts)[0]
	cur.Pos = pubsub.Pos{}
	h := n.subscribe(t, streamQuery(topic), cur.String())
	if got := data(collect(t, h, 2)); !slices.Equal(got, []string{"charged", "marker"}) {
		t.Fatalf("history %q, want [charged marker]", got)
	}
}

// gatedBroker holds back a node's fan-out until open is closed, so the node
// lags behind the cluster. Start passes straight through (the node becomes
// ready); only Deliver waits.
type gatedBroker struct {
	pubsub.Broker
	open chan struct{}
}

var _ pubsub.Broker = (*gatedBroker)(nil)

func (g *gatedBroker) Run(ctx context.Context, h pubsub.Handler) error {
	return g.Broker.Run(ctx, gatedHandler{g: g, h: h})
}

type gatedHandler struct {
	g *gatedBroker
	h pubsub.Handler
}

func (gh gatedHandler) Start(from pubsub.ID, reason string) { gh.h.Start(from, reason) }

func (gh gatedHandler) Deliver(p int, evs []pubsub.Event) {
	<-gh.g.open
	gh.h.Deliver(p, evs)
}

// TestRedisResumeAheadOfNode: a client whose cursor comes from a node
// further ahead moves to a node that has not read those events yet. The
// node trusts the cursor (Redis holds it), replays nothing, and when its
// fan-out catches up delivers only what comes after the cursor.
func TestRedisResumeAheadOfNode(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	cases := []struct {
		name   string
		topics []string
	}{
		{"one topic", []string{"ahead"}},
		{"partitions apart", []string{topicsIn(2, redisParts, 1, "ah")[0], topicsIn(5, redisParts, 1, "ah")[0]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := uniquePrefix()
			a := startRedisNode(t, srv, prefix, "a", nil)
			gate := &gatedBroker{Broker: newRedisBroker(t, srv, prefix, nil), open: make(chan struct{})}
			cfg := testConfig(t)
			cfg.NodeID = "b"
			b := startNode(t, cfg, gate)
			var opened sync.Once
			openGate := func() { opened.Do(func() { close(gate.open) }) }
			t.Cleanup(openGate) // before b stops: its reader may wait in Deliver

			query := streamQuery(c.topics...)
			s := a.subscribe(t, query, "")
			s.live(t)
			round := func(tag string) map[string][]string {
				want := make(map[string][]string)
				var evs []ev
				for _, tp := range c.topics {
					d := tp + "/" + tag
					evs = append(evs, ev{Topic: tp, Data: d})
					want[tp] = []string{d}
				}
				a.publish(t, evs...)
				return want
			}
			for i := range 3 {
				round(fmt.Sprint("seen", i))
			}
			s.events(t, 3*len(c.topics))
			last := s.lastID()
			s.close()

			before := snapshot(b)
			r := b.subscribe(t, query, last)
			if live := r.live(t); live.ID != last {
				t.Errorf("node b's live cursor %q, want the client's %q", live.ID, last)
			}
			if after := snapshot(b); after.reads != before.reads || after.resets != before.resets {
				t.Errorf("stats %+v -> %+v: want no history read and no reset", before, after)
			}
			want := round("new")
			openGate()
			checkPerTopic(t, "on node b after it caught up", r.events(t, len(c.topics)), want)
			want = round("newer")
			checkPerTopic(t, "on node b, live", r.events(t, len(c.topics)), want)
		})
	}
}

// TestRedisDownAtStart: a node whose Redis is down is not ready, and a
// stream opened then gets 200 with a retry hint and a clean end (never an
// HTTP error, which would stop a browser for good). Once Redis is up the
// node becomes ready and streams work.
func TestRedisDownAtStart(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	srv.Kill()
	n := startNodeNoWait(t, testConfig(t), newRedisBroker(t, srv, uniquePrefix(), nil))
	if r := n.get(t, "/readyz"); r.Status != http.StatusServiceUnavailable || r.errorCode(t) != "not_ready" {
		t.Fatalf("/readyz with Redis down: %s, want 503 not_ready", r)
	}
	if r := n.get(t, "/healthz"); r.Status != http.StatusOK {
		t.Fatalf("/healthz: %s, want 200", r)
	}
	s := n.subscribe(t, streamQuery("early"), "")
	rest, err := s.waitEnd(t)
	shedOK := err == io.EOF && len(rest) > 0 && rest[len(rest)-1].Retry >= 0
	for _, b := range rest {
		shedOK = shedOK && !b.Dispatch && !b.HasID
	}
	if !shedOK {
		t.Fatalf("stream on a node that is not ready: blocks %+v, end %v; want retry hints only and a clean end", rest, err)
	}
	checkFor(t, waitTimeout, func() error { // counted when the node unregisters it
		if got := n.srv.Stats().Closed[node.ReasonShed].Load(); got != 1 {
			return fmt.Errorf("Closed[shed] = %d, want 1", got)
		}
		return nil
	})

	srv.Restart()
	n.waitReady(t)
	s = n.subscribe(t, streamQuery("early"), "")
	s.live(t)
	n.publish(t, ev{Topic: "early", Data: "up"})
	if e := s.nextEvent(t); e.Data != "up" {
		t.Fatalf("event %+v", e)
	}
}

// xadd runs XADD key * field value ... on addr over a bare RESP connection,
// as a publisher in another language would, and returns the entry id.
func xadd(t testing.TB, addr, key string, fields ...string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	args := append([]string{"XADD", key, "*"}, fields...)
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "$") {
		t.Fatalf("XADD answered %q %v", line, err)
	}
	id, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(id, "\r\n")
}

// TestRedisPlainXADD: entries written by other publishers with a plain XADD
// (the README's format) reach streams; entries whose event type cannot be
// sent (CR/LF, or the reserved "reset") are dropped, never passed on.
func TestRedisPlainXADD(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	prefix := uniquePrefix()
	n := startRedisNode(t, srv, prefix, "n", nil)
	const topic = "plain"
	p := pubsub.PartitionOf(topic, redisParts)
	key := fmt.Sprintf("{%s:%d}:events", prefix, p)
	s := n.subscribe(t, streamQuery(topic), "")
	live := s.live(t)
	epoch := cursorOf(t, live.ID, redisParts)[0].Epoch

	good := xadd(t, srv.Addr, key, "topic", topic, "event", "", "data", "one\r\ntwo", "ts", "1")
	xadd(t, srv.Addr, key, "topic", topic, "event", "reset", "data", `{"topic":"plain","reason":"fake"}`)
	xadd(t, srv.Addr, key, "topic", topic, "event", "a\nretry: 1", "data", "x")
	minimal := xadd(t, srv.Addr, key, "topic", topic, "data", "no type, no ts")
	xadd(t, srv.Addr, key, "topic", "other", "data", "not ours")

	got := s.events(t, 2)
	want := []sse.Event{
		{ID: fmt.Sprintf("%d.%s.%s", p, epoch, good), HasID: true, Type: "message", Data: "one\ntwo", Retry: -1, Dispatch: true},
		{ID: fmt.Sprintf("%d.%s.%s", p, epoch, minimal), HasID: true, Type: "message", Data: "no type, no ts", Retry: -1, Dispatch: true},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	checkFor(t, waitTimeout, func() error {
		if d := n.srv.Stats().EventsDropped.Load(); d != 2 {
			return fmt.Errorf("EventsDropped = %d, want 2", d)
		}
		return nil
	})
	// Replayed history drops them too.
	r := n.subscribe(t, streamQuery(topic), live.ID)
	if got := data(collect(t, r, 2)); !slices.Equal(got, []string{"one\ntwo", "no type, no ts"}) {
		t.Fatalf("replayed %q", got)
	}
}
