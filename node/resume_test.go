package node_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

// resumeHow is how a client names its cursor.
type resumeHow struct {
	name string
	// open resumes from id; older is an earlier id of the same stream, for
	// checking that the header wins over the query parameter.
	open func(t testing.TB, n *testNode, query, id, older string) *stream
}

var resumeHows = []resumeHow{
	{"header", func(t testing.TB, n *testNode, query, id, _ string) *stream {
		return n.subscribe(t, query, id)
	}},
	{"query", func(t testing.TB, n *testNode, query, id, _ string) *stream {
		return n.subscribe(t, query+"&last_event_id="+url.QueryEscape(id), "")
	}},
	{"header wins over query", func(t testing.TB, n *testNode, query, id, older string) *stream {
		return n.subscribe(t, query+"&last_event_id="+url.QueryEscape(older), id)
	}},
	{"header wins over malformed query", func(t testing.TB, n *testNode, query, id, _ string) *stream {
		return n.subscribe(t, query+"&last_event_id=garbage", id)
	}},
}

func TestResume(t *testing.T) {
	const parts = 4
	const topic = "resume"
	cases := []struct {
		name   string
		cache  node.CacheConfig
		churn  bool // publish on other topics while the client is away
		broker bool // the resume must read the broker
	}{
		{"from cache", node.CacheConfig{}, true, false},
		{"from broker, per-topic cache too small", node.CacheConfig{PerTopic: 1}, false, true},
		{"from broker, topic evicted by others", node.CacheConfig{Topics: 1}, true, true},
	}
	for _, c := range cases {
		for _, how := range resumeHows {
			t.Run(c.name+"/"+how.name, func(t *testing.T) {
				cfg := testConfig(t)
				cfg.Cache = c.cache
				n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{Partitions: parts}))
				churn := []string{"churn-1", "churn-2", "churn-3"}
				// w sees everything published; once it has an event, the
				// node has fanned it out (and cached it).
				w := n.subscribe(t, streamQuery(append([]string{topic}, churn...)...), "")
				w.live(t)
				heads := make(map[int]string) // last id published per partition
				pub := func(evs ...ev) []string {
					ids := n.publish(t, evs...)
					for _, id := range ids {
						heads[cursorOf(t, id, parts)[0].Partition] = id
					}
					w.events(t, len(evs))
					return ids
				}
				s := n.subscribe(t, streamQuery(topic), "")
				s.live(t)
				first := pub(evsOf(topic, "a", 5)...)
				got := s.events(t, 3)
				if !slices.Equal(data(got), seq("a", 0, 3)) {
					t.Fatalf("live events %q", data(got))
				}
				last := s.lastID()
				if last != first[2] {
					t.Fatalf("last id %q, want the third event's id %q", last, first[2])
				}
				s.close()

				missed := pub(evsOf(topic, "b", 4)...)
				if c.churn {
					pub(ev{Topic: churn[0], Data: "x"}, ev{Topic: churn[1], Data: "y"}, ev{Topic: churn[2], Data: "z"})
				}
				before := snapshot(n)
				r := how.open(t, n, streamQuery(topic), last, first[0])
				_, start, live := r.head(t)
				want := append(seq("a", 3, 5), seq("b", 0, 4)...)
				if !slices.Equal(data(start), want) {
					t.Fatalf("resumed with %q, want %q", data(start), want)
				}
				wantIDs := append(first[3:], missed...)
				for i, e := range start {
					if e.ID != wantIDs[i] || e.Type != "message" {
						t.Errorf("replayed event %d: id %q type %q, want id %q", i, e.ID, e.Type, wantIDs[i])
					}
				}
				if p := pubsub.PartitionOf(topic, parts); live.ID != heads[p] {
					t.Errorf("live marker id %q, want the partition head %q", live.ID, heads[p])
				}
				after := snapshot(n)
				if c.broker {
					if after.reads == before.reads || after.misses == before.misses {
						t.Errorf("stats %+v -> %+v: want a cache miss and a broker read", before, after)
					}
				} else if after.hits != before.hits+1 || after.reads != before.reads || after.misses != before.misses {
					t.Errorf("stats %+v -> %+v: want one cache hit and no broker read", before, after)
				}
				if after.resets != before.resets {
					t.Errorf("resume sent %d resets", after.resets-before.resets)
				}

				// Then live, with nothing twice.
				ids := n.publish(t, ev{Topic: topic, Data: "c0"})
				if e := r.nextEvent(t); e.Data != "c0" || e.ID != ids[0] {
					t.Fatalf("first live event %+v, want c0 %s", e, ids[0])
				}
			})
		}
	}
}

// TestResumeFromLiveMarker resumes from the id-only block of a stream that
// received nothing: nothing to replay, nothing read.
func TestResumeFromLiveMarker(t *testing.T) {
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
	s := n.subscribe(t, streamQuery("marker"), "")
	live := s.live(t)
	s.close()
	before := snapshot(n)
	r := n.subscribe(t, streamQuery("marker"), live.ID)
	if live2 := r.live(t); live2.ID != live.ID {
		t.Errorf("live marker %q, want the unchanged cursor %q", live2.ID, live.ID)
	}
	if after := snapshot(n); after != before {
		t.Errorf("stats %+v -> %+v, want no replay work", before, after)
	}
}

func TestResumeMultiTopic(t *testing.T) {
	const parts = 8
	cases := []struct {
		name   string
		topics []string
	}{
		{"different partitions", []string{topicsIn(1, parts, 1, "x")[0], topicsIn(4, parts, 1, "y")[0], topicsIn(6, parts, 1, "z")[0]}},
		{"same partition", topicsIn(3, parts, 3, "s")},
		{"mixed", append(topicsIn(2, parts, 2, "m"), topicsIn(5, parts, 1, "n")...)},
	}
	caches := []struct {
		name  string
		cache node.CacheConfig
	}{
		{"cache", node.CacheConfig{}},
		{"broker", node.CacheConfig{PerTopic: 1}},
	}
	for _, c := range cases {
		for _, cc := range caches {
			t.Run(c.name+"/"+cc.name, func(t *testing.T) {
				cfg := testConfig(t)
				cfg.Cache = cc.cache
				n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{Partitions: parts}))
				query := streamQuery(c.topics...)
				w := n.subscribe(t, query, "") // sees everything: the node fanned it out
				w.live(t)
				s := n.subscribe(t, query, "")
				oc := newOrderChecker(parts)
				live := s.live(t)
				if cur := cursorOf(t, live.ID, parts); len(cur) != len(partitionsOf(c.topics, parts)) {
					t.Fatalf("cursor %q has %d entries, want one per partition of %v", live.ID, len(cur), c.topics)
				}
				publishRound := func(round string, k int) map[string][]string {
					want := make(map[string][]string)
					var evs []ev
					for i := range k {
						for _, tp := range c.topics {
							d := fmt.Sprintf("%s/%s%d", tp, round, i)
							evs = append(evs, ev{Topic: tp, Data: d})
							want[tp] = append(want[tp], d)
						}
					}
					n.publish(t, evs...)
					w.events(t, len(evs))
					return want
				}
				want := publishRound("a", 3)
				got := s.events(t, 2*len(c.topics))
				for _, e := range got {
					if err := oc.check(e, partOfData(e, parts)); err != nil {
						t.Fatal(err)
					}
				}
				last := s.lastID()
				s.close()
				seen := eventsByTopic(got)
				for tp := range want {
					want[tp] = want[tp][len(seen[tp]):]
				}
				more := publishRound("b", 2)
				for tp := range more {
					want[tp] = append(want[tp], more[tp]...)
				}
				r := n.subscribe(t, query, last)
				_, start, live2 := r.head(t)
				for _, e := range start {
					if err := oc.check(e, partOfData(e, parts)); err != nil {
						t.Fatal(err)
					}
				}
				if err := oc.check(live2, -1); err != nil {
					t.Fatal(err)
				}
				gotBy := eventsByTopic(start)
				for _, tp := range c.topics {
					if !slices.Equal(gotBy[tp], want[tp]) {
						t.Errorf("topic %s resumed with %q, want %q", tp, gotBy[tp], want[tp])
					}
				}
				if wantN := 5*len(c.topics) - len(got); len(start) != wantN {
					t.Errorf("resumed with %d events, want %d", len(start), wantN)
				}
				// Live again on every topic, nothing twice.
				liveWant := publishRound("c", 1)
				gotLive := eventsByTopic(r.events(t, len(c.topics)))
				for _, tp := range c.topics {
					if !slices.Equal(gotLive[tp], liveWant[tp]) {
						t.Errorf("topic %s live %q, want %q", tp, gotLive[tp], liveWant[tp])
					}
				}
			})
		}
	}
}

// partitionsOf returns the set of partitions of topics.
func partitionsOf(topics []string, parts int) map[int]bool {
	m := make(map[int]bool)
	for _, tp := range topics {
		m[pubsub.PartitionOf(tp, parts)] = true
	}
	return m
}

// partOfData is the partition of an event whose data is "<topic>/...".
func partOfData(e sse.Event, parts int) int {
	if !e.Dispatch {
		return -1
	}
	tp, _, _ := strings.Cut(e.Data, "/")
	return pubsub.PartitionOf(tp, parts)
}

// TestQuietTopicHeartbeat: a topic with no events in a busy partition gets
// id-only heartbeats that move its cursor to the partition head, so its
// resume needs no broker read even when the cache cannot answer for it.
func TestQuietTopicHeartbeat(t *testing.T) {
	const parts = 4
	cfg := testConfig(t)
	cfg.Heartbeat = 50 * time.Millisecond
	cfg.Cache = node.CacheConfig{Topics: 1} // busy topics evict each other: the cache forgets the partition
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{Partitions: parts}))
	tps := topicsIn(2, parts, 3, "hb")
	quiet, busy := tps[0], tps[1:]

	s := n.subscribe(t, streamQuery(quiet), "")
	first := s.live(t)
	var evs []ev
	for i := range 20 {
		evs = append(evs, ev{Topic: busy[i%2], Data: i})
	}
	ids := n.publish(t, evs...)
	head := ids[len(ids)-1]
	// The quiet stream's last id reaches the partition head through
	// id-only blocks, without any event firing.
	deadline := time.Now().Add(waitTimeout)
	for s.lastID() != head {
		b := s.nextBlock(t)
		if b.Dispatch {
			t.Fatalf("quiet stream got event %+v", b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("quiet stream's id %q never reached the partition head %q", s.lastID(), head)
		}
	}
	s.close()

	before := snapshot(n)
	r := n.subscribe(t, streamQuery(quiet), head)
	if live := r.live(t); live.ID != head {
		t.Errorf("resumed live id %q, want %q", live.ID, head)
	}
	if after := snapshot(n); after.reads != before.reads {
		t.Errorf("resume from the heartbeat id read the broker (%+v -> %+v)", before, after)
	}

	// Without the heartbeat the same resume needs the broker: the test
	// above is not vacuous.
	before = snapshot(n)
	old := n.subscribe(t, streamQuery(quiet), first.ID)
	if live := old.live(t); live.ID != head {
		t.Errorf("resumed live id %q, want %q", live.ID, head)
	}
	if after := snapshot(n); after.reads == before.reads {
		t.Errorf("resume from before the busy events read no history (%+v -> %+v); the cache should not know", before, after)
	}
}

// TestResumeWhilePublishing resumes a long history while the topic keeps
// getting events: the client gets every event exactly once, in order, and
// no id it sees (event, reset or id-only block) points past an event it has
// not received yet, so a disconnect at any block loses nothing.
func TestResumeWhilePublishing(t *testing.T) {
	const parts = 2
	cfg := testConfig(t)
	cfg.Cache = node.CacheConfig{PerTopic: 1} // replay from the broker, in pages
	cfg.ReplayPage = 10
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{Partitions: parts, MaxLen: 100000}))
	const topic = "busy"
	for round := range 4 {
		prefix := fmt.Sprintf("r%d-", round)
		hist := n.publishN(t, topic, prefix, 3000)

		// Publishers keep the topic busy during the whole replay. Their
		// events are ordered by the broker, so the test collects what
		// they sent and compares sets per publisher.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var pubErr error
		sent := make(map[string]bool)
		const publishers = 3
		for g := range publishers {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					d := fmt.Sprintf("%slive%d-%d", prefix, g, i)
					body, _ := json.Marshal(ev{Topic: topic, Data: d})
					r, err := n.tryDo("POST", "/v1/publish", jsonHeader, body)
					mu.Lock()
					if err != nil || r.Status != 200 {
						pubErr = fmt.Errorf("publish: %v %v", err, r)
						mu.Unlock()
						return
					}
					sent[d] = true
					mu.Unlock()
				}
			})
		}
		checkFor(t, waitTimeout, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(sent) < 10 && pubErr == nil {
				return fmt.Errorf("publishers sent %d events", len(sent))
			}
			return nil
		})
		s := n.subscribe(t, streamQuery(topic), hist[0])
		oc := newOrderChecker(parts)
		var got []string
		check := func(b sse.Event) {
			t.Helper()
			p := -1
			if b.Dispatch {
				p = pubsub.PartitionOf(topic, parts)
				got = append(got, b.Data)
			}
			if err := oc.check(b, p); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		// Read until live, and a little beyond, while publishing goes on.
		for {
			b := s.nextBlock(t)
			check(b)
			if b.HasID && !b.Dispatch && b.Comments == 0 && b.Retry < 0 {
				break // live from here
			}
		}
		for range 20 {
			check(s.nextBlock(t))
		}
		close(stop)
		wg.Wait()
		if pubErr != nil {
			t.Fatal(pubErr)
		}
		marker := prefix + "end"
		n.publish(t, ev{Topic: topic, Data: marker})
		deadline := time.Now().Add(waitTimeout)
		for len(got) == 0 || got[len(got)-1] != marker {
			check(s.nextBlock(t)) // heartbeats too: their ids must not run ahead either
			if time.Now().After(deadline) {
				t.Fatalf("round %d: marker never arrived", round)
			}
		}
		// History first, exactly; then every live event once, each
		// publisher's in the order it sent them.
		hw := seq(prefix, 1, 3000)
		if len(got) < len(hw) || !slices.Equal(got[:len(hw)], hw) {
			t.Fatalf("round %d: history replayed wrong (%d events)", round, len(got))
		}
		liveGot := got[len(hw) : len(got)-1]
		next := make([]int, publishers)
		for _, d := range liveGot {
			var g, i int
			if _, err := fmt.Sscanf(strings.TrimPrefix(d, prefix), "live%d-%d", &g, &i); err != nil || g >= publishers || i != next[g] {
				t.Fatalf("round %d: live event %q out of order or repeated (next of publisher %d is %d)", round, d, g, next[g])
			}
			next[g]++
			delete(sent, d)
		}
		if len(sent) > 0 {
			t.Fatalf("round %d: %d published events never arrived", round, len(sent))
		}
		s.close()
	}
}

// A stream over several partitions is registered in all of them at one
// instant: a live event must never carry a cursor that names a partition
// not registered yet (it would not parse, and the client would get a reset
// on its next reconnect). Publishers keep the first partition busy while
// streams start.
func TestMultiPartitionStartIDs(t *testing.T) {
	const parts = 2
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{Partitions: parts}))
	x, y := topicsIn(0, parts, 1, "x")[0], topicsIn(1, parts, 1, "y")[0]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body, _ := json.Marshal(ev{Topic: x, Data: fmt.Sprint(i)})
				_, _ = n.tryDo("POST", "/v1/publish", jsonHeader, body)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range 50 {
		s := n.subscribe(t, streamQuery(x, y), "")
		s.live(t)
		for range 3 {
			if e := s.nextEvent(t); e.ID != "" {
				if _, err := pubsub.ParseCursor(e.ID, parts); err != nil {
					t.Fatalf("attempt %d: id %q does not parse: %v", i, e.ID, err)
				}
			}
		}
		s.close()
	}
}
