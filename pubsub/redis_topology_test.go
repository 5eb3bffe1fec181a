package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/pubsub"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

func TestRedisSentinelConformance(t *testing.T) {
	s := pubsubtest.StartSentinel(t)
	pubsubtest.Conformance(t, func(t *testing.T, cfg pubsubtest.Config) pubsub.Broker {
		return newRedis(t, pubsub.RedisConfig{SentinelURL: s.URL(), Partitions: cfg.Partitions, MaxLen: cfg.MaxLen})
	})
}

func TestRedisClusterConformance(t *testing.T) {
	c := pubsubtest.StartCluster(t)
	pubsubtest.Conformance(t, func(t *testing.T, cfg pubsubtest.Config) pubsub.Broker {
		return newRedis(t, pubsub.RedisConfig{ClusterURL: c.URL(), Partitions: cfg.Partitions, MaxLen: cfg.MaxLen})
	})
}

// callLog is a pubsub.Handler keeping every call, in order.
type callLog struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	start  bool
	reason string
	id     pubsub.ID      // Start's position
	evs    []pubsub.Event // Deliver's events
}

func (l *callLog) Start(from pubsub.ID, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, call{start: true, reason: reason, id: from})
}

func (l *callLog) Deliver(_ int, evs []pubsub.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cp := make([]pubsub.Event, len(evs))
	copy(cp, evs)
	l.calls = append(l.calls, call{evs: cp})
}

func (l *callLog) snapshot() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]call(nil), l.calls...)
}

// delivered reports whether every id arrived, by partition and position:
// an event stored just before a rollback was found is delivered in the
// partition's new epoch.
func (l *callLog) delivered(ids []pubsub.ID) bool {
	type key struct {
		p   int
		pos pubsub.Pos
	}
	seen := map[key]bool{}
	for _, c := range l.snapshot() {
		for _, ev := range c.evs {
			seen[key{ev.ID.Partition, ev.ID.Pos}] = true
		}
	}
	for _, id := range ids {
		if !seen[key{id.Partition, id.Pos}] {
			return false
		}
	}
	return true
}

// started returns how many partitions had their first Start.
func (l *callLog) started() int {
	n := 0
	for _, c := range l.snapshot() {
		if c.start && c.reason == "" {
			n++
		}
	}
	return n
}

// runBroker runs b.Run with h until the test ends, and waits until every
// partition started (what is published from then on is delivered).
func runBroker(t testing.TB, b *pubsub.Redis, h *callLog) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, h) }()
	waitFor(t, "every partition to start", func() bool { return h.started() == b.Partitions() })
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = b.Close()
	})
}

// publishRetry publishes one message, retrying while the store fails over
// (with an idempotency key, so a retry cannot store it twice).
func publishRetry(t testing.TB, b *pubsub.Redis, topic, data string) pubsub.ID {
	t.Helper()
	id, err := tryPublish(b, topic, data)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tryPublish is publishRetry for goroutines other than the test's: it
// gives up after 30 s.
func tryPublish(b *pubsub.Redis, topic, data string) (pubsub.ID, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		ids, err := b.Publish(ctx, []pubsub.Message{{Topic: topic, Data: []byte(data), IdempotencyKey: data}})
		cancel()
		if err == nil {
			return ids[0], nil
		}
		if time.Now().After(deadline) {
			return pubsub.ID{}, fmt.Errorf("publish %s: %w", data, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func publishN(t testing.TB, b *pubsub.Redis, topic, label string, n int) []pubsub.ID {
	t.Helper()
	ids := make([]pubsub.ID, n)
	for i := range ids {
		ids[i] = publishRetry(t, b, topic, fmt.Sprintf("%s-%d", label, i))
	}
	return ids
}

// TestRedisFailoverLosingWrites is the failover of issue 12: a Sentinel
// master acknowledged ten events its replicas never received, then died,
// and a replica was promoted. The node that read them must not go on
// silently (its handler gets a rollback Start before any later event), and
// every broker, also one started after the failover, must answer cursors
// from before and inside the lost part with a reset.
func TestRedisFailoverLosingWrites(t *testing.T) {
	s := pubsubtest.StartSentinel(t)
	prefix := uniquePrefix()
	cfg := pubsub.RedisConfig{SentinelURL: s.URL(), Partitions: 2, Prefix: prefix, Block: time.Second}
	a := newRedis(t, cfg)
	var la callLog
	runBroker(t, a, &la)

	const topic = "orders"
	before := publishN(t, a, topic, "before", 5)
	waitFor(t, "the first events", func() bool { return la.delivered(before) })
	var lost []pubsub.ID
	s.FailoverLosingWrites(t, func(*pubsubtest.Redis) {
		lost = publishN(t, a, topic, "lost", 10)
		waitFor(t, "the doomed events to be read", func() bool { return la.delivered(lost) })
	}, 30*time.Second)
	after := publishN(t, a, topic, "after", 5)
	waitFor(t, "the events after the failover", func() bool { return la.delivered(after) })

	// The reading broker: between the lost events and the first event
	// after the failover there is a Start with ReasonRolledBack, and every
	// later event is of the new epoch.
	p := before[0].Partition
	var sawLost, sawReset bool
	for _, c := range la.snapshot() {
		if c.start && c.id.Partition == p && sawLost {
			if c.reason != pubsub.ReasonRolledBack && c.reason != pubsub.ReasonEpochChanged {
				t.Errorf("Start after the lost events has reason %q", c.reason)
			}
			sawReset = true
		}
		for _, ev := range c.evs {
			if ev.ID.Partition != p {
				continue
			}
			if strings.HasPrefix(string(ev.Data), "lost-") {
				sawLost = true
			}
			if strings.HasPrefix(string(ev.Data), "after-") {
				if !sawReset {
					t.Fatalf("event %s (%v) delivered after the lost events without a reset: a silent skip", ev.Data, ev.ID)
				}
				if ev.ID.Epoch == before[0].Epoch {
					t.Errorf("event %s after the rollback is in the old epoch", ev.Data)
				}
			}
		}
	}
	if !sawReset {
		t.Fatal("no Start after the lost events")
	}
	count := map[string]int{}
	for _, c := range la.snapshot() {
		for _, ev := range c.evs {
			if count[string(ev.Data)]++; count[string(ev.Data)] > 1 {
				t.Errorf("event %s delivered twice (the new epoch's first position belongs to the old one)", ev.Data)
			}
		}
	}

	// Every broker answers the old cursors the same way: history gone.
	c := newRedis(t, cfg)
	var lc callLog
	runBroker(t, c, &lc)
	for _, b := range []*pubsub.Redis{a, c} {
		for _, cur := range []pubsub.ID{before[len(before)-1], lost[3], lost[len(lost)-1]} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			evs, _, err := b.Range(ctx, pubsub.RangeQuery{Partition: p, Epoch: cur.Epoch, After: cur.Pos, Until: after[len(after)-1].Pos})
			cancel()
			if _, ok := errors.AsType[*pubsub.HistoryGoneError](err); !ok {
				t.Errorf("Range after %v = %d events, %v; want history gone", cur, len(evs), err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h, err := b.Head(ctx, p)
		cancel()
		if err != nil || h.Epoch == before[0].Epoch {
			t.Errorf("Head = %v, %v; want a new epoch", h, err)
		}
	}
}

// TestRedisWaitReplicas: with WaitReplicas 1 a publish is confirmed only
// once a replica holds it; with the replicas paused it answers
// ErrNotReplicated (an unknown outcome) after WaitTimeout, and a retry
// with the same idempotency key, once they are back, is confirmed without
// storing the event twice.
func TestRedisWaitReplicas(t *testing.T) {
	s := pubsubtest.StartSentinel(t)
	b := newRedis(t, pubsub.RedisConfig{SentinelURL: s.URL(), Partitions: 2, WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond})
	var l callLog
	runBroker(t, b, &l)
	msg := []pubsub.Message{{Topic: "t", Data: []byte("x"), IdempotencyKey: "k1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ids, err := b.Publish(ctx, msg)
	if err != nil {
		t.Fatalf("publish with replicas up: %v", err)
	}
	s.PauseReplicas()
	start := time.Now()
	msg2 := []pubsub.Message{{Topic: "t", Data: []byte("y"), IdempotencyKey: "k2"}}
	_, err = b.Publish(ctx, msg2)
	if !errors.Is(err, pubsub.ErrNotReplicated) || !errors.Is(err, pubsub.ErrOutcomeUnknown) {
		t.Fatalf("publish with replicas paused = %v, want ErrNotReplicated", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("publish with replicas paused took %v: not bounded by the wait timeout", el)
	}
	s.ResumeReplicas()
	var ids2 []pubsub.ID
	waitFor(t, "the retry to be confirmed", func() bool {
		ids2, err = b.Publish(ctx, msg2)
		return err == nil
	})
	if ids2[0].Pos.Less(ids[0].Pos) || ids2[0] == ids[0] {
		t.Errorf("ids %v then %v", ids, ids2)
	}
	waitFor(t, "delivery", func() bool { return l.delivered([]pubsub.ID{ids[0], ids2[0]}) })
	n := 0
	for _, c := range l.snapshot() {
		for _, ev := range c.evs {
			if string(ev.Data) == "y" {
				n++
			}
		}
	}
	if n != 1 {
		t.Errorf("event y delivered %d times, want 1", n)
	}
}

// TestRedisClusterReshardAndFailover publishes through a Redis Cluster
// while slots holding partitions move to another master and while a master
// dies (its replica takes over): every confirmed event is delivered once,
// in order, with no reset when nothing was lost (WAIT 1).
func TestRedisClusterReshardAndFailover(t *testing.T) {
	c := pubsubtest.StartCluster(t)
	const parts = 16
	prefix := uniquePrefix()
	b := newRedis(t, pubsub.RedisConfig{ClusterURL: c.URL(), Partitions: parts, Prefix: prefix, WaitReplicas: 1})
	var l callLog
	runBroker(t, b, &l)

	topics := make([]string, 32)
	for i := range topics {
		topics[i] = fmt.Sprintf("topic-%d", i)
	}
	var mu sync.Mutex
	var acked []pubsub.ID
	var pubErr error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id, err := tryPublish(b, topics[i%len(topics)], fmt.Sprintf("e-%d", i))
			mu.Lock()
			if err != nil {
				pubErr = err
				mu.Unlock()
				return
			}
			acked = append(acked, id)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor(t, "traffic", func() bool { return count() > 50 })

	// Move the slots of partition 0 (and many more) to another master.
	slot := c.Slot(fmt.Sprintf("{%s:0}:events", prefix))
	from := c.MasterOfSlot(slot)
	var to *pubsubtest.Redis
	for _, m := range c.Masters() {
		if m != from {
			to = m
			break
		}
	}
	n0 := count()
	c.Reshard(t, from, to, 1000)
	waitFor(t, "traffic after the reshard", func() bool { return count() > n0+50 })

	// Kill the master now holding partition 1.
	slot1 := c.Slot(fmt.Sprintf("{%s:1}:events", prefix))
	old := c.KillMaster(slot1)
	c.WaitSlotServed(t, slot1, old.Addr, 30*time.Second)
	// The promoted replica has no replica of its own until the old master
	// comes back (as its replica): WAIT 1 holds that shard's publishes
	// until then.
	old.Restart()
	n1 := count()
	waitFor(t, "traffic after the failover", func() bool { return count() > n1+50 })
	close(stop)
	wg.Wait()
	if pubErr != nil {
		t.Fatal(pubErr)
	}

	mu.Lock()
	all := append([]pubsub.ID(nil), acked...)
	mu.Unlock()
	waitFor(t, "every confirmed event", func() bool { return l.delivered(all) })
	seen := map[pubsub.ID]int{}
	last := map[int]pubsub.Pos{}
	for _, cl := range l.snapshot() {
		if cl.start && cl.reason != "" {
			t.Errorf("reset %q of partition %d: nothing was lost (WAIT 1)", cl.reason, cl.id.Partition)
		}
		for _, ev := range cl.evs {
			seen[ev.ID]++
			if !last[ev.ID.Partition].Less(ev.ID.Pos) {
				t.Errorf("partition %d: %v after %v", ev.ID.Partition, ev.ID.Pos, last[ev.ID.Partition])
			}
			last[ev.ID.Partition] = ev.ID.Pos
		}
	}
	for _, id := range all {
		if seen[id] != 1 {
			t.Errorf("event %v delivered %d times", id, seen[id])
		}
	}
	t.Logf("%d events confirmed through a 1000-slot reshard and a master failover", len(all))
}

// TestRedisMaxmemory: with maxmemory reached and noeviction, a publish
// fails with ErrStoreFull (nothing stored) while reading goes on, and
// publishing recovers once memory frees; an eviction policy that may drop
// the broker's keys is reported in Warnings.
func TestRedisMaxmemory(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	b := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Partitions: 2})
	var l callLog
	runBroker(t, b, &l)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := publishRetry(t, b, "t", "first")
	if _, err := srv.Do("CONFIG", "SET", "maxmemory-policy", "noeviction"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("CONFIG", "SET", "maxmemory", "1"); err != nil {
		t.Fatal(err)
	}
	_, err := b.Publish(ctx, []pubsub.Message{{Topic: "t", Data: []byte("refused")}})
	if !errors.Is(err, pubsub.ErrStoreFull) || !errors.Is(err, pubsub.ErrUnavailable) {
		t.Fatalf("publish over maxmemory = %v, want ErrStoreFull", err)
	}
	// Reads are scripts without writes: they still answer.
	if _, _, err := b.Range(ctx, pubsub.RangeQuery{Partition: first.Partition, Epoch: first.Epoch, Until: first.Pos}); err != nil {
		t.Errorf("Range over maxmemory: %v", err)
	}
	if _, err := srv.Do("CONFIG", "SET", "maxmemory", "0"); err != nil {
		t.Fatal(err)
	}
	next := publishRetry(t, b, "t", "next")
	waitFor(t, "delivery after recovery", func() bool { return l.delivered([]pubsub.ID{first, next}) })
	for _, c := range l.snapshot() {
		if c.start && c.reason != "" {
			t.Errorf("reset %q: nothing was lost", c.reason)
		}
	}

	if w := b.Warnings(); len(w) != 0 {
		t.Errorf("warnings with noeviction: %q", w)
	}
	if _, err := srv.Do("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"); err != nil {
		t.Fatal(err)
	}
	b2 := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Partitions: 2})
	var l2 callLog
	runBroker(t, b2, &l2)
	waitFor(t, "an eviction warning", func() bool {
		w := b2.Warnings()
		return len(w) == 1 && strings.Contains(w[0], "allkeys-lru")
	})
}
