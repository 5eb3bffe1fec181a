package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssecluster/ssecluster/pubsub"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

func TestMemoryConformance(t *testing.T) {
	pubsubtest.Conformance(t, func(t *testing.T, cfg pubsubtest.Config) pubsub.Broker {
		m, err := pubsub.NewMemory(pubsub.MemoryConfig{Partitions: cfg.Partitions, MaxLen: cfg.MaxLen})
		if err != nil {
			t.Fatal(err)
		}
		return m // the suite closes it
	})
}

func newMemory(t testing.TB, cfg pubsub.MemoryConfig) *pubsub.Memory {
	t.Helper()
	m, err := pubsub.NewMemory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func publish(t testing.TB, b pubsub.Broker, msgs ...pubsub.Message) []pubsub.ID {
	t.Helper()
	ids, err := b.Publish(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// handlerFuncs adapts two functions to pubsub.Handler.
type handlerFuncs struct {
	start   func(from pubsub.ID, reason string)
	deliver func(p int, evs []pubsub.Event)
}

func (h handlerFuncs) Start(from pubsub.ID, reason string) {
	if h.start != nil {
		h.start(from, reason)
	}
}

func (h handlerFuncs) Deliver(p int, evs []pubsub.Event) {
	if h.deliver != nil {
		h.deliver(p, evs)
	}
}

var _ pubsub.Handler = handlerFuncs{}

// runInBackground starts m.Run(ctx, h) and returns a function that cancels
// it and returns Run's error.
func runInBackground(t *testing.T, m *pubsub.Memory, h pubsub.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, h) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitUntil polls cond with a deadline; it never treats elapsed time as proof.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMemoryConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     pubsub.MemoryConfig
		wantErr string // "" = valid
	}{
		{"zero", pubsub.MemoryConfig{}, ""},
		{"max_partitions", pubsub.MemoryConfig{Partitions: 128}, ""},
		{"min_values", pubsub.MemoryConfig{Partitions: 1, MaxLen: 1, IdempotencyTTL: time.Millisecond, MaxIdempotencyKeys: 1}, ""},
		{"max_ttl", pubsub.MemoryConfig{IdempotencyTTL: 24 * time.Hour}, ""},
		{"negative_partitions", pubsub.MemoryConfig{Partitions: -1}, "Partitions -1"},
		{"too_many_partitions", pubsub.MemoryConfig{Partitions: 129}, "Partitions 129"},
		{"negative_maxlen", pubsub.MemoryConfig{MaxLen: -5}, "MaxLen -5"},
		{"huge_maxlen", pubsub.MemoryConfig{MaxLen: 1<<24 + 1}, "MaxLen"},
		{"negative_ttl", pubsub.MemoryConfig{IdempotencyTTL: -time.Second}, "IdempotencyTTL"},
		{"sub_ms_ttl", pubsub.MemoryConfig{IdempotencyTTL: time.Nanosecond}, "IdempotencyTTL"},
		{"long_ttl", pubsub.MemoryConfig{IdempotencyTTL: 25 * time.Hour}, "IdempotencyTTL"},
		{"negative_keys", pubsub.MemoryConfig{MaxIdempotencyKeys: -1}, "MaxIdempotencyKeys"},
		{"two_errors", pubsub.MemoryConfig{Partitions: -1, MaxIdempotencyKeys: -1}, "MaxIdempotencyKeys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			_, newErr := pubsub.NewMemory(tt.cfg)
			switch {
			case tt.wantErr == "" && (err != nil || newErr != nil):
				t.Fatalf("Validate() = %v, NewMemory error %v; want valid", err, newErr)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.wantErr)
			case tt.wantErr != "" && newErr == nil:
				t.Fatal("NewMemory accepted a config Validate rejects")
			}
		})
	}
}

func TestMemoryDefaults(t *testing.T) {
	m := newMemory(t, pubsub.MemoryConfig{})
	if got := m.Partitions(); got != 16 {
		t.Fatalf("Partitions() = %d, want the default 16", got)
	}
	// Default MaxLen 10000: after 10001 events the first is gone and the
	// second is the trim watermark.
	msgs := make([]pubsub.Message, 10001)
	for i := range msgs {
		msgs[i] = pubsub.Message{Topic: "t"}
	}
	ids := publish(t, m, msgs...)
	head := ids[len(ids)-1]
	q := pubsub.RangeQuery{Partition: head.Partition, Epoch: head.Epoch, After: ids[0].Pos, Until: head.Pos, Limit: 20000}
	evs, pos, err := m.Range(context.Background(), q)
	if err != nil || len(evs) != 10000 || pos != head.Pos {
		t.Fatalf("Range after the trim watermark: %d events, %v, %v; want 10000, %v, nil", len(evs), pos, err, head.Pos)
	}
	q.After = pubsub.Pos{}
	if _, _, err := m.Range(context.Background(), q); !isGone(err, pubsub.ReasonTrimmed) {
		t.Fatalf("Range from zero: %v, want %s", err, pubsub.ReasonTrimmed)
	}
}

func isGone(err error, reason string) bool {
	var gone *pubsub.HistoryGoneError
	return errors.As(err, &gone) && gone.Reason == reason
}

// TestMemoryRetention checks the exact bound: MaxLen events are held, and
// the trim watermark W is the newest dropped event.
func TestMemoryRetention(t *testing.T) {
	const maxLen = 5
	m := newMemory(t, pubsub.MemoryConfig{Partitions: 1, MaxLen: maxLen})
	var ids []pubsub.ID
	for i := range 12 {
		ids = append(ids, publish(t, m, pubsub.Message{Topic: "t", Data: fmt.Appendf(nil, "%d", i)})...)
	}
	head, err := m.Head(context.Background(), 0)
	if err != nil || head != ids[11] {
		t.Fatalf("Head = %v, %v; want %v", head, err, ids[11])
	}
	w := ids[len(ids)-maxLen-1] // ids[6]
	tests := []struct {
		name    string
		after   pubsub.Pos
		want    int    // events returned
		gone    string // HistoryGoneError reason, or ""
		limit   int
		wantPos pubsub.Pos
	}{
		{name: "at_watermark", after: w.Pos, want: maxLen, wantPos: head.Pos},
		{name: "before_watermark", after: ids[5].Pos, gone: pubsub.ReasonTrimmed},
		{name: "zero", gone: pubsub.ReasonTrimmed},
		{name: "recent", after: ids[9].Pos, want: 2, wantPos: head.Pos},
		{name: "head", after: head.Pos, want: 0, wantPos: head.Pos},
		{name: "limit_2", after: w.Pos, limit: 2, want: 2, wantPos: ids[8].Pos},
		{name: "limit_exact", after: w.Pos, limit: maxLen, want: maxLen, wantPos: head.Pos},
		{name: "ahead", after: head.Pos.Next(), gone: pubsub.ReasonAhead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, pos, err := m.Range(context.Background(), pubsub.RangeQuery{
				Epoch: head.Epoch, After: tt.after, Until: head.Pos, Limit: tt.limit,
			})
			if tt.gone != "" {
				if !isGone(err, tt.gone) {
					t.Fatalf("err = %v, want %s", err, tt.gone)
				}
				return
			}
			if err != nil || len(evs) != tt.want || pos != tt.wantPos {
				t.Fatalf("Range = %d events, %v, %v; want %d, %v, nil", len(evs), pos, err, tt.want, tt.wantPos)
			}
		})
	}
}

// TestMemoryPositions checks Redis's auto-ID rule with a controlled clock.
func TestMemoryPositions(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	clock := base
	m := newMemory(t, pubsub.MemoryConfig{Partitions: 1})
	pubsub.SetMemoryClock(m, func() time.Time { return clock })

	steps := []struct {
		name  string
		clock time.Time
		want  pubsub.Pos
	}{
		{"first", base, pubsub.Pos{Ms: 1_700_000_000_000}},
		{"same_ms", base.Add(500 * time.Microsecond), pubsub.Pos{Ms: 1_700_000_000_000, Seq: 1}},
		{"same_ms_again", base, pubsub.Pos{Ms: 1_700_000_000_000, Seq: 2}},
		{"clock_went_back", base.Add(-time.Hour), pubsub.Pos{Ms: 1_700_000_000_000, Seq: 3}},
		{"next_ms", base.Add(time.Millisecond), pubsub.Pos{Ms: 1_700_000_000_001}},
		{"later", base.Add(time.Minute), pubsub.Pos{Ms: 1_700_000_060_000}},
	}
	for _, st := range steps {
		clock = st.clock
		ev := publish(t, m, pubsub.Message{Topic: "t"})[0]
		if ev.Pos != st.want {
			t.Fatalf("%s: position %v, want %v", st.name, ev.Pos, st.want)
		}
	}
	head, _ := m.Head(context.Background(), 0)
	evs, _, err := m.Range(context.Background(), pubsub.RangeQuery{Epoch: head.Epoch, After: steps[4].want, Until: head.Pos})
	if err != nil || len(evs) != 1 || evs[0].Time != clock.UnixNano() {
		t.Fatalf("Range = %+v, %v; want one event with Time %d", evs, err, clock.UnixNano())
	}

	// A clock at (or before) 1970 must not produce the zero position, which
	// means "before every event".
	early := newMemory(t, pubsub.MemoryConfig{Partitions: 1})
	pubsub.SetMemoryClock(early, func() time.Time { return time.Unix(-10, 0) })
	if id := publish(t, early, pubsub.Message{Topic: "t"})[0]; id.Pos != (pubsub.Pos{Seq: 1}) {
		t.Fatalf("position with a 1969 clock = %v, want 0-1", id.Pos)
	}
}

func TestMemoryIdempotencyTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemory(t, pubsub.MemoryConfig{IdempotencyTTL: time.Minute})
		msg := pubsub.Message{Topic: "t", IdempotencyKey: "k"}
		first := publish(t, m, msg)[0]
		time.Sleep(time.Minute - time.Nanosecond)
		if id := publish(t, m, msg)[0]; id != first {
			t.Fatalf("retry within the TTL returned %v, want %v", id, first)
		}
		time.Sleep(time.Nanosecond)
		second := publish(t, m, msg)[0]
		if second == first {
			t.Fatalf("publish after the TTL returned the old ID %v", first)
		}
		if id := publish(t, m, msg)[0]; id != second {
			t.Fatalf("retry of the re-published key returned %v, want %v", id, second)
		}
		if n := pubsub.MemoryIdempotencyKeys(m); n != 1 {
			t.Fatalf("%d keys remembered, want 1", n)
		}
		time.Sleep(2 * time.Minute)
		publish(t, m, pubsub.Message{Topic: "t", IdempotencyKey: "other"})
		if n := pubsub.MemoryIdempotencyKeys(m); n != 1 {
			t.Fatalf("%d keys remembered after expiry, want 1", n)
		}
	})
}

func TestMemoryIdempotencyBound(t *testing.T) {
	m := newMemory(t, pubsub.MemoryConfig{MaxIdempotencyKeys: 3})
	key := func(k string) pubsub.Message { return pubsub.Message{Topic: "t", IdempotencyKey: k} }
	ids := make(map[string]pubsub.ID)
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		ids[k] = publish(t, m, key(k))[0]
	}
	if n := pubsub.MemoryIdempotencyKeys(m); n != 3 {
		t.Fatalf("%d keys remembered, want the bound 3", n)
	}
	// k1, the oldest, was forgotten: it is stored again (and k2 forgotten).
	if id := publish(t, m, key("k1"))[0]; id == ids["k1"] {
		t.Fatalf("k1 should have been forgotten, got its old ID %v", id)
	}
	for _, k := range []string{"k3", "k4"} {
		if id := publish(t, m, key(k))[0]; id != ids[k] {
			t.Fatalf("%s: got %v, want the remembered %v", k, id, ids[k])
		}
	}
	if id := publish(t, m, key("k2"))[0]; id == ids["k2"] {
		t.Fatalf("k2 should have been forgotten, got its old ID %v", id)
	}
	if n := pubsub.MemoryIdempotencyKeys(m); n != 3 {
		t.Fatalf("%d keys remembered, want the bound 3", n)
	}
}

// TestMemoryIdempotencyConcurrent publishes one key from many goroutines:
// exactly one event is stored.
func TestMemoryIdempotencyConcurrent(t *testing.T) {
	m := newMemory(t, pubsub.MemoryConfig{Partitions: 1})
	var wg sync.WaitGroup
	ids := make([]pubsub.ID, 16)
	for i := range ids {
		wg.Go(func() {
			got, err := m.Publish(context.Background(), []pubsub.Message{{Topic: "t", IdempotencyKey: "k"}})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = got[0]
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("IDs differ: %v", ids)
		}
	}
	head, _ := m.Head(context.Background(), 0)
	evs, _, err := m.Range(context.Background(), pubsub.RangeQuery{Epoch: head.Epoch, Until: head.Pos})
	if err != nil || len(evs) != 1 {
		t.Fatalf("Range = %d events, %v; want 1", len(evs), err)
	}
}

// TestMemoryRunTrimmedStart holds the handler while the ring wraps, then
// expects Start(W, ReasonTrimmed) followed by exactly the events held.
func TestMemoryRunTrimmedStart(t *testing.T) {
	const maxLen = 10
	m := newMemory(t, pubsub.MemoryConfig{Partitions: 1, MaxLen: maxLen})
	var (
		mu     sync.Mutex
		starts []string
		got    []pubsub.ID
	)
	g := newHold()
	stop := runInBackground(t, m, handlerFuncs{
		start: func(from pubsub.ID, reason string) {
			mu.Lock()
			defer mu.Unlock()
			starts = append(starts, from.Pos.String()+" "+reason)
		},
		deliver: func(p int, evs []pubsub.Event) {
			g.wait()
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range evs {
				got = append(got, ev.ID)
			}
		},
	})
	t.Cleanup(g.open) // runs before stop: a failed test must not leave Run held
	waitUntil(t, "Start", func() bool { mu.Lock(); defer mu.Unlock(); return len(starts) == 1 })
	ids := publish(t, m, pubsub.Message{Topic: "t"})
	<-g.entered // Run holds event 0 and waits
	for range 50 {
		ids = append(ids, publish(t, m, pubsub.Message{Topic: "t"})...)
	}
	g.open()
	waitUntil(t, "last event", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 && got[len(got)-1] == ids[50] })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantStarts := []string{"0-0 ", ids[40].Pos.String() + " " + pubsub.ReasonTrimmed}
	if fmt.Sprint(starts) != fmt.Sprint(wantStarts) {
		t.Fatalf("Start calls %q, want %q", starts, wantStarts)
	}
	want := append([]pubsub.ID{ids[0]}, ids[41:]...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

// hold makes the first Deliver wait until opened.
type hold struct {
	entered            chan struct{}
	release            chan struct{}
	enterOnce, relOnce sync.Once
}

func newHold() *hold { return &hold{entered: make(chan struct{}), release: make(chan struct{})} }

func (h *hold) wait() {
	h.enterOnce.Do(func() { close(h.entered) })
	<-h.release
}

func (h *hold) open() { h.relOnce.Do(func() { close(h.release) }) }

// TestMemoryRunBatchBound checks that a backlog is handed over in bounded
// batches and completely.
func TestMemoryRunBatchBound(t *testing.T) {
	m := newMemory(t, pubsub.MemoryConfig{Partitions: 1})
	var (
		mu       sync.Mutex
		started  bool
		total    int
		maxBatch int
	)
	g := newHold()
	runInBackground(t, m, handlerFuncs{
		start: func(pubsub.ID, string) { mu.Lock(); started = true; mu.Unlock() },
		deliver: func(p int, evs []pubsub.Event) {
			g.wait()
			mu.Lock()
			defer mu.Unlock()
			total += len(evs)
			maxBatch = max(maxBatch, len(evs))
		},
	})
	t.Cleanup(g.open)
	waitUntil(t, "Start", func() bool { mu.Lock(); defer mu.Unlock(); return started })
	publish(t, m, pubsub.Message{Topic: "t"})
	<-g.entered
	msgs := make([]pubsub.Message, 3000)
	for i := range msgs {
		msgs[i] = pubsub.Message{Topic: "t"}
	}
	publish(t, m, msgs...)
	g.open()
	waitUntil(t, "all events", func() bool { mu.Lock(); defer mu.Unlock(); return total == 3001 })
	if maxBatch > 1024 {
		t.Fatalf("a Deliver call got %d events, want at most 1024", maxBatch)
	}
}

func TestMemoryClose(t *testing.T) {
	t.Run("ends_run", func(t *testing.T) {
		m := newMemory(t, pubsub.MemoryConfig{Partitions: 2})
		var mu sync.Mutex
		n := 0
		done := make(chan error, 1)
		go func() {
			done <- m.Run(context.Background(), handlerFuncs{start: func(pubsub.ID, string) { mu.Lock(); n++; mu.Unlock() }})
		}()
		waitUntil(t, "Start", func() bool { mu.Lock(); defer mu.Unlock(); return n == 2 })
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, pubsub.ErrClosed) {
			t.Fatalf("Run after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("then_run_and_close_again", func(t *testing.T) {
		m := newMemory(t, pubsub.MemoryConfig{})
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("second Close = %v, want nil", err)
		}
		if err := m.Run(context.Background(), handlerFuncs{}); !errors.Is(err, pubsub.ErrClosed) {
			t.Fatalf("Run after Close = %v, want ErrClosed", err)
		}
	})
}

func TestMemoryRunOnceAtATime(t *testing.T) {
	m := newMemory(t, pubsub.MemoryConfig{Partitions: 1})
	var mu sync.Mutex
	starts := 0
	h := handlerFuncs{start: func(pubsub.ID, string) { mu.Lock(); starts++; mu.Unlock() }}
	stop := runInBackground(t, m, h)
	waitUntil(t, "Start", func() bool { mu.Lock(); defer mu.Unlock(); return starts == 1 })
	if err := m.Run(context.Background(), h); err == nil {
		t.Fatal("a second concurrent Run returned nil, want an error")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	// Once it returned, Run may be called again; it starts at the head.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Run(ctx, h); err != nil {
		t.Fatalf("Run with a done ctx = %v, want nil", err)
	}
}

func TestMemoryBadInput(t *testing.T) {
	m := newMemory(t, pubsub.MemoryConfig{Partitions: 2})
	ctx := context.Background()
	for _, p := range []int{-1, 2} {
		if _, err := m.Head(ctx, p); err == nil {
			t.Errorf("Head(%d): no error", p)
		}
		if _, _, err := m.Range(ctx, pubsub.RangeQuery{Partition: p}); err == nil {
			t.Errorf("Range(partition %d): no error", p)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Publish(cancelled, []pubsub.Message{{Topic: "t"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled ctx = %v, want context.Canceled", err)
	}
	for p := range 2 {
		if id, _ := m.Head(ctx, p); !id.Pos.IsZero() {
			t.Errorf("a cancelled Publish stored something: Head(%d) = %v", p, id)
		}
	}
}

// TestMemoryRangeOwnsData checks that Range's events are the caller's: a
// caller writing into them does not change the broker's copy.
func TestMemoryRangeOwnsData(t *testing.T) {
	m := newMemory(t, pubsub.MemoryConfig{Partitions: 1})
	ids := publish(t, m, pubsub.Message{Topic: "t", Data: []byte("abc")}, pubsub.Message{Topic: "t", Data: []byte("de")})
	q := pubsub.RangeQuery{Epoch: ids[0].Epoch, Until: ids[1].Pos}
	evs, _, _ := m.Range(context.Background(), q)
	evs[0].Data[0] = 'X'
	evs[0].Data = append(evs[0].Data, 'Y') // must not spill into the next event
	evs2, _, _ := m.Range(context.Background(), q)
	if string(evs2[0].Data) != "abc" || string(evs[1].Data) != "de" || string(evs2[1].Data) != "de" {
		t.Fatalf("broker data changed through Range results: %q %q / %q", evs2[0].Data, evs2[1].Data, evs[1].Data)
	}
}

func ExampleNewMemory() {
	ctx := context.Background()
	m, err := pubsub.NewMemory(pubsub.MemoryConfig{})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	ids, _ := m.Publish(ctx, []pubsub.Message{
		{Topic: "orders", Type: "created", Data: []byte(`{"id":1}`)},
		{Topic: "orders", Type: "paid", Data: []byte(`{"id":1}`)},
	})
	// A client that saw the first event resumes after it.
	head, _ := m.Head(ctx, ids[0].Partition)
	evs, _, _ := m.Range(ctx, pubsub.RangeQuery{
		Partition: ids[0].Partition, Epoch: ids[0].Epoch,
		After: ids[0].Pos, Until: head.Pos, Topics: []string{"orders"},
	})
	for _, ev := range evs {
		fmt.Println(ev.Topic, ev.Type, string(ev.Data))
	}
	// Output: orders paid {"id":1}
}

func BenchmarkMemoryPublish(b *testing.B) {
	m, err := pubsub.NewMemory(pubsub.MemoryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	msgs := []pubsub.Message{{Topic: "bench", Type: "t", Data: make([]byte, 200)}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Publish(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
}
