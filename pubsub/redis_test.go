package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssecluster/ssecluster/pubsub"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

var prefixSeq atomic.Int64

// uniquePrefix keeps tests that share a redis-server apart.
func uniquePrefix() string { return fmt.Sprintf("t%d", prefixSeq.Add(1)) }

func newRedis(t testing.TB, cfg pubsub.RedisConfig) *pubsub.Redis {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = uniquePrefix()
	}
	if cfg.Block == 0 {
		cfg.Block = time.Second
	}
	b, err := pubsub.NewRedis(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRedisConformance(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	pubsubtest.Conformance(t, func(t *testing.T, cfg pubsubtest.Config) pubsub.Broker {
		return newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Partitions: cfg.Partitions, MaxLen: cfg.MaxLen})
	})
}

func TestRedisConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  pubsub.RedisConfig
	}{
		{"no url", pubsub.RedisConfig{}},
		{"bad url", pubsub.RedisConfig{URL: "http://x"}},
		{"partitions", pubsub.RedisConfig{URL: "redis://127.0.0.1:1", Partitions: pubsub.MaxPartitions + 1}},
		{"wait replicas", pubsub.RedisConfig{URL: "redis://127.0.0.1:1", WaitReplicas: -1}},
		{"two topologies", pubsub.RedisConfig{URL: "redis://127.0.0.1:1", ClusterURL: "redis://127.0.0.1:2"}},
		{"sentinel without master", pubsub.RedisConfig{SentinelURL: "redis://127.0.0.1:1"}},
		{"prefix brace", pubsub.RedisConfig{URL: "redis://127.0.0.1:1", Prefix: "a{b"}},
		{"ttl", pubsub.RedisConfig{URL: "redis://127.0.0.1:1", IdempotencyTTL: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := pubsub.NewRedis(tt.cfg); err == nil {
				_ = b.Close()
				t.Fatal("NewRedis accepted an invalid config")
			}
		})
	}
}

// events is a Handler that records what Run hands it.
type events struct {
	mu     sync.Mutex
	starts []startRec
	evs    []pubsub.Event
	block  chan struct{} // when non-nil, Deliver waits for it to close
}

type startRec struct {
	from   pubsub.ID
	reason string
}

func (h *events) Start(from pubsub.ID, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.starts = append(h.starts, startRec{from, reason})
}

func (h *events) Deliver(_ int, evs []pubsub.Event) {
	h.mu.Lock()
	block := h.block
	h.mu.Unlock()
	if block != nil {
		<-block
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range evs {
		ev.Data = append([]byte(nil), ev.Data...)
		h.evs = append(h.evs, ev)
	}
}

func (h *events) snapshot() ([]startRec, []pubsub.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]startRec(nil), h.starts...), append([]pubsub.Event(nil), h.evs...)
}

// run starts b.Run(h) and stops it in cleanup.
func run(t testing.TB, b pubsub.Broker, h pubsub.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = b.Close()
	})
}

func waitFor(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func publishOK(t testing.TB, b pubsub.Broker, msgs ...pubsub.Message) []pubsub.ID {
	t.Helper()
	ids, err := b.Publish(context.Background(), msgs)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return ids
}

// publishEventually publishes msg until the broker accepts it (after a
// Redis restart the pooled connection must break first). msg carries an
// idempotency key, so the retries store it once.
func publishEventually(t testing.TB, b pubsub.Broker, msg pubsub.Message) pubsub.ID {
	t.Helper()
	var id pubsub.ID
	waitFor(t, "publish after restart", func() bool {
		ids, err := b.Publish(context.Background(), []pubsub.Message{msg})
		if err == nil {
			id = ids[0]
		}
		return err == nil
	})
	return id
}

// A Redis that restarts without persistence loses the partition's history:
// the reader must announce a new epoch and then deliver the new events from
// the new stream's start; old cursors are refused with epoch_changed.
func TestRedisRestartWithoutPersistenceChangesEpoch(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	b := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Partitions: 1})
	h := &events{}
	run(t, b, h)
	waitFor(t, "start", func() bool { s, _ := h.snapshot(); return len(s) == 1 })
	old := publishOK(t, b, pubsub.Message{Topic: "a", Data: []byte("before")})[0]
	waitFor(t, "first event", func() bool { _, e := h.snapshot(); return len(e) == 1 })

	srv.Kill()
	srv.Restart()
	// The publisher may need a few tries while its pooled connection breaks.
	next := publishEventually(t, b, pubsub.Message{Topic: "a", Data: []byte("after"), IdempotencyKey: "k1"})
	if next.Epoch == old.Epoch {
		t.Fatalf("epoch unchanged after losing the data: %s", next.Epoch)
	}
	waitFor(t, "event after restart", func() bool { _, e := h.snapshot(); return len(e) == 2 })
	starts, evs := h.snapshot()
	if len(starts) != 2 || starts[1].reason != pubsub.ReasonEpochChanged || starts[1].from.Epoch != next.Epoch {
		t.Fatalf("starts = %+v, want a second Start with epoch_changed and epoch %s", starts, next.Epoch)
	}
	if string(evs[1].Data) != "after" || evs[1].ID != next {
		t.Fatalf("event after restart = %+v, want %v", evs[1], next)
	}
	_, _, err := b.Range(context.Background(), pubsub.RangeQuery{Partition: 0, Epoch: old.Epoch, After: old.Pos, Until: next.Pos})
	if gone, ok := errors.AsType[*pubsub.HistoryGoneError](err); !ok || gone.Reason != pubsub.ReasonEpochChanged {
		t.Fatalf("Range with the old epoch: %v, want epoch_changed", err)
	}
}

// With persistence a restart keeps the epoch and every acknowledged event.
func TestRedisRestartWithPersistenceKeepsHistory(t *testing.T) {
	srv := pubsubtest.StartRedis(t, pubsubtest.WithPersistence())
	b := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Partitions: 2})
	h := &events{}
	run(t, b, h)
	waitFor(t, "start", func() bool { s, _ := h.snapshot(); return len(s) == 2 })
	first := publishOK(t, b, pubsub.Message{Topic: "a", Data: []byte("1")})[0]
	srv.Stop()
	srv.Restart()
	second := publishEventually(t, b, pubsub.Message{Topic: "a", Data: []byte("2"), IdempotencyKey: "k2"})
	if second.Epoch != first.Epoch {
		t.Fatalf("epoch changed across a persistent restart: %s -> %s", first.Epoch, second.Epoch)
	}
	waitFor(t, "both events", func() bool { _, e := h.snapshot(); return len(e) == 2 })
	starts, evs := h.snapshot()
	if len(starts) != 2 {
		t.Fatalf("starts = %+v, want only the initial ones", starts)
	}
	if evs[0].ID != first || evs[1].ID != second {
		t.Fatalf("delivered %v, %v; want %v, %v", evs[0].ID, evs[1].ID, first, second)
	}
}

// A reader that falls behind retention (here: its handler is stuck) must
// report the gap with a trimmed Start instead of skipping silently.
func TestRedisReaderBehindRetentionReportsTrim(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	b := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Partitions: 1, MaxLen: 20, ReadCount: 5})
	block := make(chan struct{})
	h := &events{block: block}
	run(t, b, h)
	waitFor(t, "start", func() bool { s, _ := h.snapshot(); return len(s) == 1 })
	publishOK(t, b, pubsub.Message{Topic: "a", Data: []byte("0")}) // the reader takes it and blocks
	for i := range 200 {
		publishOK(t, b, pubsub.Message{Topic: "a", Data: fmt.Appendf(nil, "%d", i+1)})
	}
	h.mu.Lock()
	h.block = nil
	h.mu.Unlock()
	close(block)
	last := publishOK(t, b, pubsub.Message{Topic: "a", Data: []byte("last")})[0]
	waitFor(t, "last event", func() bool {
		_, e := h.snapshot()
		return len(e) > 0 && e[len(e)-1].ID == last
	})
	starts, evs := h.snapshot()
	// At least one trimmed Start; more are legitimate (the last publish
	// can trim past the catching-up reader again).
	if len(starts) < 2 {
		t.Fatalf("starts = %+v, want a trimmed Start", starts)
	}
	for _, s := range starts[1:] {
		if s.reason != pubsub.ReasonTrimmed {
			t.Fatalf("starts = %+v, want only trimmed Starts after the first", starts)
		}
	}
	for i := 1; i < len(evs); i++ {
		if !evs[i-1].ID.Pos.Less(evs[i].ID.Pos) {
			t.Fatalf("events out of order at %d", i)
		}
	}
}

// A publish whose reply does not come in time reports an unknown outcome;
// retrying with the same idempotency key stores the event once.
func TestRedisStalledPublishIsIdempotent(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	b := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Partitions: 1, Timeout: 300 * time.Millisecond})
	t.Cleanup(func() { _ = b.Close() })
	msg := pubsub.Message{Topic: "a", Data: []byte("once"), IdempotencyKey: "order-42"}
	publishOK(t, b, pubsub.Message{Topic: "a", Data: []byte("warm")}) // loads the script, opens a connection

	srv.Pause()
	_, err := b.Publish(context.Background(), []pubsub.Message{msg})
	srv.Resume()
	if !errors.Is(err, pubsub.ErrOutcomeUnknown) {
		t.Fatalf("Publish to a stalled Redis: %v, want ErrOutcomeUnknown", err)
	}
	var ids []pubsub.ID
	waitFor(t, "retry", func() bool {
		ids, err = b.Publish(context.Background(), []pubsub.Message{msg})
		return err == nil
	})
	again := publishOK(t, b, msg)
	if again[0] != ids[0] {
		t.Fatalf("second retry got %v, first retry %v", again[0], ids[0])
	}
	evs, _, err := b.Range(context.Background(), pubsub.RangeQuery{Partition: 0, Epoch: ids[0].Epoch, Until: ids[0].Pos})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if string(ev.Data) == "once" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the stream holds the event %d times, want 1", n)
	}
}

// With Redis gone, publishes fail (never a false success) and say so.
func TestRedisUnavailable(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	b := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Partitions: 1, Timeout: 500 * time.Millisecond})
	t.Cleanup(func() { _ = b.Close() })
	publishOK(t, b, pubsub.Message{Topic: "a", Data: []byte("x")})
	srv.Kill()
	var err error
	for range 5 {
		_, err = b.Publish(context.Background(), []pubsub.Message{{Topic: "a", Data: []byte("y")}})
		if err == nil {
			t.Fatal("Publish succeeded with Redis killed")
		}
		if errors.Is(err, pubsub.ErrUnavailable) {
			break
		}
		if !errors.Is(err, pubsub.ErrOutcomeUnknown) {
			t.Fatalf("Publish error %v is neither unavailable nor unknown", err)
		}
	}
	if !errors.Is(err, pubsub.ErrUnavailable) {
		t.Fatalf("Publish error %v, want ErrUnavailable once the connection is known dead", err)
	}
	if err := b.Ping(context.Background()); !errors.Is(err, pubsub.ErrUnavailable) {
		t.Fatalf("Ping = %v", err)
	}
}

// A command ends by its context's deadline when that comes before Timeout:
// /readyz bounds its Ping to 1 s, and a load balancer that gets no answer in
// time marks the node dead instead of not ready.
func TestRedisPingHonoursDeadline(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	const timeout = 5 * time.Second
	b := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Partitions: 1, Timeout: timeout})
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	defer srv.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Ping(ctx)
	if took := time.Since(start); took >= timeout {
		t.Errorf("Ping with a 200ms deadline took %v, the whole Timeout", took)
	}
	if !errors.Is(err, pubsub.ErrUnavailable) {
		t.Errorf("Ping to a hung Redis = %v, want ErrUnavailable", err)
	}
}

// Nodes that disagree on the partition count would hash topics differently:
// the second one must refuse to run.
func TestRedisPartitionCountIsFixed(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	prefix := uniquePrefix()
	a := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Prefix: prefix, Partitions: 4})
	run(t, a, &events{})
	waitFor(t, "first node", func() bool { return a.Ping(context.Background()) == nil })
	b := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Prefix: prefix, Partitions: 8})
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The first node stores the count on first contact; wait until it has.
	waitFor(t, "stored count", func() bool {
		n, err := redis.NewClient(&redis.Options{Addr: srv.Addr}).Get(ctx, prefix+":partitions").Int()
		return err == nil && n == 4
	})
	if err := b.Run(ctx, &events{}); err == nil || ctx.Err() != nil {
		t.Fatalf("Run with a different partition count: %v", err)
	}
}

// A plain XADD from a publisher outside ssecluster (no script, no meta key)
// is delivered like any other event.
func TestRedisPlainXAddIsDelivered(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	prefix := uniquePrefix()
	b := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Prefix: prefix, Partitions: 16})
	h := &events{}
	run(t, b, h)
	waitFor(t, "start", func() bool { s, _ := h.snapshot(); return len(s) == 16 })
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	p := pubsub.PartitionOf("orders", 16)
	key := fmt.Sprintf("{%s:%d}:events", prefix, p)
	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: key, Values: []any{"topic", "orders", "event", "", "data", "hello", "ts", "123"}}).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "plain event", func() bool { _, e := h.snapshot(); return len(e) == 1 })
	_, evs := h.snapshot()
	if evs[0].Topic != "orders" || string(evs[0].Data) != "hello" || evs[0].Time != 123 || evs[0].ID.Partition != p {
		t.Fatalf("plain XADD delivered as %+v", evs[0])
	}
}

// Failed store operations are counted by operation; a caller that gives up,
// history that is gone and successful calls are not failures.
func TestRedisErrorCounts(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	b := newRedis(t, pubsub.RedisConfig{URL: srv.URL(), Partitions: 1, Timeout: 500 * time.Millisecond})
	h := &events{}
	run(t, b, h)
	waitFor(t, "start", func() bool { s, _ := h.snapshot(); return len(s) == 1 })
	id := publishOK(t, b, pubsub.Message{Topic: "a", Data: []byte("x")})[0]
	if err := b.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}

	want := map[string]int64{}
	for _, op := range pubsub.StoreOps() {
		want[op] = 0
	}
	check := func(when string) {
		t.Helper()
		got := b.ErrorCounts()
		for _, op := range pubsub.StoreOps() {
			if op == pubsub.OpRead && got[op] > want[op] && want[op] > 0 {
				continue // the reader keeps retrying: at least want
			}
			if got[op] != want[op] {
				t.Errorf("%s: ErrorCounts()[%q] = %d, want %d (all: %v)", when, op, got[op], want[op], got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: ErrorCounts() = %v, want the ops %v", when, got, pubsub.StoreOps())
		}
	}
	check("healthy")

	// Answers that are not store failures.
	_, _, err := b.Range(context.Background(), pubsub.RangeQuery{Partition: 0, Epoch: "other", Until: id.Pos})
	if _, ok := errors.AsType[*pubsub.HistoryGoneError](err); !ok {
		t.Fatalf("Range with another epoch: %v, want history gone", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Publish(ctx, []pubsub.Message{{Topic: "a", Data: []byte("y")}}); err == nil {
		t.Fatal("Publish with a cancelled context succeeded")
	}
	if _, _, err := b.Range(ctx, pubsub.RangeQuery{Partition: 0, Epoch: id.Epoch, Until: id.Pos}); err == nil {
		t.Fatal("Range with a cancelled context succeeded")
	}
	check("history gone and cancelled calls")

	srv.Kill()
	for _, c := range []struct {
		op   string
		call func() error
	}{
		{pubsub.OpPublish, func() error {
			_, err := b.Publish(context.Background(), []pubsub.Message{{Topic: "a", Data: []byte("z")}})
			return err
		}},
		{pubsub.OpPing, func() error { return b.Ping(context.Background()) }},
		{pubsub.OpRange, func() error {
			_, _, err := b.Range(context.Background(), pubsub.RangeQuery{Partition: 0, Epoch: id.Epoch, Until: id.Pos})
			return err
		}},
		{pubsub.OpHead, func() error { _, err := b.Head(context.Background(), 0); return err }},
		{pubsub.OpRetained, func() error { _, err := b.Retained(context.Background(), 0); return err }},
		{pubsub.OpSharedKey, func() error { _, err := b.SharedKey(context.Background(), "k"); return err }},
	} {
		if err := c.call(); err == nil {
			t.Fatalf("%s succeeded with Redis killed", c.op)
		}
		want[c.op]++
	}
	// The reader notices too: each failed attempt counts.
	waitFor(t, "failed reads counted", func() bool { return b.ErrorCounts()[pubsub.OpRead] > 0 })
	want[pubsub.OpRead] = b.ErrorCounts()[pubsub.OpRead]
	check("Redis killed")
}
