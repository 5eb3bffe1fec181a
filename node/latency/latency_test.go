package latency_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node/latency"
)

// t0 is at a slot boundary (10 s).
var t0 = time.Unix(1_800_000_000, 0)

func newRecorder(t testing.TB, cfg latency.Config) *latency.Recorder {
	t.Helper()
	r, err := latency.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// record records the latencies us (µs) of events written at now, on shard i.
func record(r *latency.Recorder, i int, now time.Time, us ...int64) {
	ts := make([]int64, len(us))
	for k, v := range us {
		ts[k] = now.UnixNano() - v*1000
	}
	r.Record(i, now.UnixNano(), ts)
}

func TestPercentiles(t *testing.T) {
	r := newRecorder(t, latency.Config{Shards: 4})
	// 1..1000 µs, spread over the shards: below 2048 µs values are exact.
	for v := int64(1); v <= 1000; v++ {
		record(r, int(v), t0.Add(time.Second), v)
	}
	got := r.Snapshot(t0.Add(5 * time.Second)).Windows()
	want := latency.Summary{Count: 1000, P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000}
	for name, s := range map[string]latency.Summary{"last_1m": got.Last1m, "last_5m": got.Last5m, "since_start": got.SinceStart} {
		if s != want {
			t.Errorf("%s = %+v, want %+v", name, s, want)
		}
	}
}

func TestClamp(t *testing.T) {
	r := newRecorder(t, latency.Config{Shards: 1, Highest: time.Second})
	record(r, 0, t0, -5, 0, 3_000_000)
	got := r.Snapshot(t0).Windows().SinceStart
	if got.Count != 3 || got.P50 != 0 || got.Max < 1_000_000 || got.Max > 1_001_000 {
		t.Errorf("since_start %+v: want 3 values: two at 0 (negative clamped), one at 1 s (the highest)", got)
	}
}

func TestEmpty(t *testing.T) {
	r := newRecorder(t, latency.Config{})
	if got := r.Snapshot(t0).Windows(); got != (latency.Windows{}) {
		t.Errorf("empty recorder: %+v, want all zero", got)
	}
}

// TestWindows: values expire from the 1 and 5 minute windows slot by slot.
func TestWindows(t *testing.T) {
	type rec struct {
		at    time.Duration
		shard int
		n     int
	}
	cases := []struct {
		name              string
		recs              []rec
		at                time.Duration
		last1, last5, all int64
	}{
		{
			name: "mixed",
			recs: []rec{{0, 0, 10}, {30 * time.Second, 1, 20}, {2 * time.Minute, 2, 30}, {6 * time.Minute, 0, 40}},
			at:   6*time.Minute + 5*time.Second,
			// 1m: slots from 5:05 (slot 5:00) on: 40. 5m: slots from 1:05
			// (slot 1:00) on: 30 + 40.
			last1: 40, last5: 70, all: 100,
		},
		{
			// Whole slots: at 79 s, values 69 and 68 s old still count in
			// the last minute (their slot, 10..20 s, overlaps it), one 79 s
			// old does not.
			name:  "slot_edges",
			recs:  []rec{{0, 0, 1}, {10 * time.Second, 0, 2}, {11 * time.Second, 1, 4}},
			at:    79 * time.Second,
			last1: 6, last5: 7, all: 7,
		},
		{
			name: "idle_shard_flushed_by_snapshot",
			recs: []rec{{0, 3, 5}},
			at:   10 * time.Minute,
			all:  5,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder(t, latency.Config{Shards: 4})
			for _, x := range tc.recs {
				for range x.n {
					record(r, x.shard, t0.Add(x.at), 100)
				}
			}
			w := r.Snapshot(t0.Add(tc.at)).Windows()
			if w.Last1m.Count != tc.last1 || w.Last5m.Count != tc.last5 || w.SinceStart.Count != tc.all {
				t.Errorf("counts 1m %d, 5m %d, all %d; want %d, %d, %d", w.Last1m.Count, w.Last5m.Count, w.SinceStart.Count, tc.last1, tc.last5, tc.all)
			}
		})
	}
}

// TestRingWraps records one value per slot for 40 minutes.
func TestRingWraps(t *testing.T) {
	r := newRecorder(t, latency.Config{Shards: 2})
	for s := 0; s <= 2400; s += 10 {
		record(r, s/10, t0.Add(time.Duration(s)*time.Second), int64(s+1))
	}
	w := r.Snapshot(t0.Add(2405 * time.Second)).Windows()
	// 1m: slots 2340..2400 (7); 5m: slots 2100..2400 (31).
	if w.Last1m.Count != 7 || w.Last5m.Count != 31 || w.SinceStart.Count != 241 {
		t.Errorf("counts %d, %d, %d; want 7, 31, 241", w.Last1m.Count, w.Last5m.Count, w.SinceStart.Count)
	}
	if w.Last1m.P50 != 2371 || w.Last5m.Max != 2401 {
		t.Errorf("last_1m p50 %d, last_5m max %d; want 2371 and 2401", w.Last1m.P50, w.Last5m.Max)
	}
}

// TestMerge: the merge of two nodes' snapshots is the snapshot of one node
// that recorded both sets of values, window by window; also after the
// export round trip through JSON.
func TestMerge(t *testing.T) {
	a := newRecorder(t, latency.Config{Shards: 2})
	b := newRecorder(t, latency.Config{Shards: 3})
	u := newRecorder(t, latency.Config{Shards: 1})
	play := func(r *latency.Recorder, at time.Duration, us ...int64) {
		record(r, int(at/time.Second), t0.Add(at), us...)
		record(u, 0, t0.Add(at), us...)
	}
	play(a, 0, 5, 50, 500, 5000, 50_000)
	play(b, 20*time.Second, 7, 7, 7, 123_456)
	play(a, 3*time.Minute, 999, 2049, 3_000_000)
	play(b, 4*time.Minute+30*time.Second, 1, 2, 3)
	play(a, 4*time.Minute+31*time.Second, 10_000_000)
	now := t0.Add(4*time.Minute + 40*time.Second)

	var exports []latency.Export
	for _, r := range []*latency.Recorder{a, b} {
		e, err := r.Snapshot(now).Export()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var back latency.Export
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		exports = append(exports, back)
	}
	merged, err := latency.MergeExports(exports...)
	if err != nil {
		t.Fatal(err)
	}
	direct := latency.Merge(a.Snapshot(now), b.Snapshot(now))
	want, err := u.Snapshot(now).Export()
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]latency.Snapshot{"exports": merged, "snapshots": direct} {
		got, err := s.Export()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("merge of %s: histograms differ from the union's", name)
		}
		if s.Windows() != u.Snapshot(now).Windows() {
			t.Errorf("merge of %s: %+v, want the union's %+v", name, s.Windows(), u.Snapshot(now).Windows())
		}
	}
	if w := merged.Windows(); w.SinceStart.Count != 16 || w.Last1m.Count != 4 {
		t.Errorf("merged counts: %+v", w)
	}
}

func TestDecodeError(t *testing.T) {
	if _, err := latency.MergeExports(latency.Export{Last1m: "not base64!"}); err == nil {
		t.Error("MergeExports accepted a malformed histogram")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []latency.Config{{Shards: -1}, {Slot: time.Hour}, {Highest: time.Microsecond}} {
		if _, err := latency.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", cfg)
		}
	}
}

// TestConcurrent exercises the locks under -race.
func TestConcurrent(t *testing.T) {
	r := newRecorder(t, latency.Config{Shards: 2, Slot: time.Millisecond})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				record(r, g, time.Now(), int64(i))
				if i%500 == 0 {
					_ = r.Snapshot(time.Now()).Windows()
				}
			}
		})
	}
	wg.Wait()
	if n := r.Snapshot(time.Now()).Windows().SinceStart.Count; n != 8000 {
		t.Errorf("since_start count %d, want 8000", n)
	}
}

// BenchmarkRecord is the cost on the fan-out hot path: one call per write
// to a stream, with the events of that write (1 or 10), each goroutine on
// its own shard as fan-out workers are.
func BenchmarkRecord(b *testing.B) {
	for _, batch := range []int{1, 10} {
		b.Run(map[int]string{1: "batch=1", 10: "batch=10"}[batch], func(b *testing.B) {
			r := newRecorder(b, latency.Config{})
			var shard atomicCounter
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := shard.next()
				ts := make([]int64, batch)
				for pb.Next() {
					now := time.Now().UnixNano()
					for k := range ts {
						ts[k] = now - 1_500_000 - int64(k)*1000
					}
					r.Record(i, now, ts)
				}
			})
		})
	}
}

type atomicCounter struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCounter) next() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}
