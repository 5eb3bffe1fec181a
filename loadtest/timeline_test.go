package loadtest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// histOf returns a histogram holding each duration n times.
func histOf(n int, ds ...time.Duration) *Histogram {
	h := NewHistogram()
	for _, d := range ds {
		for range n {
			h.Record(d)
		}
	}
	return h
}

func TestHistogramSince(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name            string
		now, prev, want *Histogram // want: the values recorded since prev
	}{
		{"nil prev is empty", histOf(10, ms), nil, histOf(10, ms)},
		{"empty prev", histOf(10, ms), NewHistogram(), histOf(10, ms)},
		{"only the new values", histOf(100, ms, 50*ms), histOf(100, ms), histOf(100, 50*ms)},
		{"nothing new", histOf(7, ms, 2*ms), histOf(7, ms, 2*ms), NewHistogram()},
		{"new values in an old bucket", histOf(3, ms, 7*ms), histOf(1, ms, 7*ms), histOf(2, ms, 7*ms)},
		{"prev holds more: bucket counts as empty", histOf(1, ms, 9*ms), histOf(5, ms), histOf(1, 9*ms)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.now.Count()
			d := tc.now.Since(tc.prev)
			if d.Count() != tc.want.Count() {
				t.Errorf("count %d, want %d", d.Count(), tc.want.Count())
			}
			for _, q := range []float64{0, 0.5, 0.99, 1} {
				if got, want := d.Quantile(q), tc.want.Quantile(q); got != want {
					t.Errorf("quantile %v: %v, want %v", q, got, want)
				}
			}
			if got, want := d.Max(), tc.want.Max(); got != want {
				t.Errorf("max %v, want %v", got, want)
			}
			if tc.now.Count() != before {
				t.Errorf("Since changed its receiver")
			}
		})
	}
}

func TestNextTick(t *testing.T) {
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		now   time.Time
		every time.Duration
		want  time.Time
	}{
		{"mid second", base.Add(300 * time.Millisecond), time.Second, base.Add(time.Second)},
		{"on the second: the next one", base, time.Second, base.Add(time.Second)},
		{"just before", base.Add(-time.Nanosecond), time.Second, base},
		{"sub-second period", base.Add(120 * time.Millisecond), 250 * time.Millisecond, base.Add(250 * time.Millisecond)},
		{"multi-second period counts from the epoch", base, 10 * time.Second, base.Add(5 * time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextTick(tc.now, tc.every); !got.Equal(tc.want) {
				t.Errorf("nextTick(%v, %v) = %v, want %v", tc.now, tc.every, got, tc.want)
			}
		})
	}
}

// fakeLive is a liveSource whose figures the test sets.
type fakeLive struct {
	mu                                    sync.Mutex
	connected, established, delivered, pb int64
	lat                                   *Histogram
}

func (f *fakeLive) source(withPub bool) liveSource {
	get := func(p *int64) func() int64 {
		return func() int64 { f.mu.Lock(); defer f.mu.Unlock(); return *p }
	}
	s := liveSource{
		connected: get(&f.connected), established: get(&f.established), delivered: get(&f.delivered),
		latencies: func() *Histogram {
			f.mu.Lock()
			defer f.mu.Unlock()
			return mergeHist(nil, f.lat) // a copy, as shardedHist.merged returns
		},
	}
	if withPub {
		s.published = get(&f.pb)
	}
	return s
}

func (f *fakeLive) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connected, f.established, f.delivered, f.pb, f.lat = 0, 0, 0, 0, nil
}

func (f *fakeLive) set(conn, est, del, pub int64, lat ...time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connected, f.established, f.delivered, f.pb = conn, est, del, pub
	if f.lat == nil {
		f.lat = NewHistogram()
	}
	for _, d := range lat {
		f.lat.Record(d)
	}
}

// TestSampler runs the sampler on synctest's clock: one sample on every
// whole second, the p99 of each interval's latencies only.
func TestSampler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeLive{}
		start := time.Now().Add(-250 * time.Millisecond) // the run started earlier
		s := newSampler(Config{SampleEvery: time.Second}, start, f.source(true))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.run(ctx); close(done) }()

		time.Sleep(500 * time.Millisecond)
		f.set(10, 10, 100, 10, repeat(100, time.Millisecond)...)
		time.Sleep(time.Second) // 1.5 s: sample 1 taken at 1 s
		f.set(8, 12, 300, 30, repeat(100, 10*time.Millisecond)...)
		time.Sleep(time.Second) // 2.5 s: sample 2 taken at 2 s
		time.Sleep(time.Second) // 3.5 s: sample 3 (nothing new) at 3 s
		cancel()
		<-done

		if len(s.samples) != 3 {
			t.Fatalf("%d samples, want 3: %+v", len(s.samples), s.samples)
		}
		p := func(n int64) *int64 { return &n }
		want := []Sample{
			{TS: 1.25, Connected: 10, Established: 10, Delivered: 100, Published: p(10), P99Us: p99Of(time.Millisecond)},
			{TS: 2.25, Connected: 8, Established: 12, Delivered: 300, Published: p(30),
				P99Us: p99Of(10 * time.Millisecond)},
			{TS: 3.25, Connected: 8, Established: 12, Delivered: 300, Published: p(30)},
		}
		for i, got := range s.samples {
			w := want[i]
			if got.UnixMs%1000 != 0 || got.TS != w.TS || got.Connected != w.Connected || got.Established != w.Established ||
				got.Delivered != w.Delivered || *got.Published != *w.Published || got.P99Us != w.P99Us {
				t.Errorf("sample %d: %+v (published %d), want %+v (published %d)", i, got, *got.Published, w, *w.Published)
			}
			if wantN := map[int]int64{0: 100, 1: 100, 2: 0}[i]; histCount(got.Latency) != wantN {
				t.Errorf("sample %d: %d interval latencies, want %d", i, histCount(got.Latency), wantN)
			}
		}
	})
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// TestMergeTimelines merges the timelines of two workers (and the
// publishing parent) as Report.Merge does, through JSON as they travel.
func TestMergeTimelines(t *testing.T) {
	const t0 = 1_700_000_000_000 // a whole second, in ms
	at := func(s int64) int64 { return t0 + s*1000 }
	p := func(n int64) *int64 { return &n }
	ms := time.Millisecond
	// Worker 1 sees fast events, worker 2 a slow tail in second 2.
	w1 := []Sample{
		{UnixMs: at(1), Connected: 5, Established: 5},
		{UnixMs: at(2), Connected: 5, Established: 5, Delivered: 99, Latency: histOf(99, ms), P99Us: p99Of(ms)},
		{UnixMs: at(3), Connected: 4, Established: 5, Delivered: 198, Latency: histOf(99, 2*ms), P99Us: p99Of(2 * ms)},
	}
	w2 := []Sample{
		{UnixMs: at(1), Connected: 3, Established: 3},
		{UnixMs: at(2), Connected: 3, Established: 3, Delivered: 1, Latency: histOf(1, 900*ms), P99Us: p99Of(900 * ms)},
		{UnixMs: at(3), Connected: 3, Established: 3, Delivered: 101, Latency: histOf(100, 3*ms), P99Us: p99Of(3 * ms)},
	}
	for _, tc := range []struct {
		name string
		a, b []Sample
		want []Sample
	}{
		{
			name: "aligned: exact sums, exact p99",
			a:    w1, b: w2,
			want: []Sample{
				{UnixMs: at(1), Connected: 8, Established: 8},
				// 99 values at 1 ms and one at 900 ms: p99 is 1 ms, not the max of the two p99s.
				{UnixMs: at(2), Connected: 8, Established: 8, Delivered: 100, P99Us: p99Of(ms)},
				// 99 at 2 ms, 100 at 3 ms.
				{UnixMs: at(3), Connected: 7, Established: 8, Delivered: 299, P99Us: p99Of(3 * ms)},
			},
		},
		{
			name: "one stopped a second early: its last figures are held",
			a:    w1, b: w2[:2],
			want: []Sample{
				{UnixMs: at(1), Connected: 8, Established: 8},
				{UnixMs: at(2), Connected: 8, Established: 8, Delivered: 100, P99Us: p99Of(ms)},
				{UnixMs: at(3), Connected: 7, Established: 8, Delivered: 199, P99Us: p99Of(2 * ms)},
			},
		},
		{
			name: "one started later and skipped a tick: zero before, held over the gap",
			a:    w1, b: []Sample{w2[1]},
			want: []Sample{
				{UnixMs: at(1), Connected: 5, Established: 5},
				{UnixMs: at(2), Connected: 8, Established: 8, Delivered: 100, P99Us: p99Of(ms)},
				{UnixMs: at(3), Connected: 7, Established: 8, Delivered: 199, P99Us: p99Of(2 * ms)},
			},
		},
		{
			name: "the publishing parent: published where it sampled",
			a:    w1, b: []Sample{{UnixMs: at(2), Published: p(40)}, {UnixMs: at(3), Published: p(80)}},
			want: []Sample{
				{UnixMs: at(1), Connected: 5, Established: 5},
				{UnixMs: at(2), Connected: 5, Established: 5, Delivered: 99, Published: p(40), P99Us: p99Of(ms)},
				{UnixMs: at(3), Connected: 4, Established: 5, Delivered: 198, Published: p(80), P99Us: p99Of(2 * ms)},
			},
		},
		{
			name: "one empty",
			a:    nil, b: w2[:1],
			want: []Sample{{UnixMs: at(1), Connected: 3, Established: 3}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started := time.UnixMilli(t0).Add(-500 * time.Millisecond)
			r := &Report{Started: started}
			for _, tl := range [][]Sample{tc.a, tc.b} {
				r.Merge(workerReport(t, &Report{Timeline: tl}))
			}
			r.finalize(nil)
			if len(r.Timeline) != len(tc.want) {
				t.Fatalf("%d samples, want %d: %+v", len(r.Timeline), len(tc.want), r.Timeline)
			}
			for i, got := range r.Timeline {
				w := tc.want[i]
				w.TS = float64(w.UnixMs-started.UnixMilli()) / 1000
				if got.UnixMs != w.UnixMs || got.TS != w.TS || got.Connected != w.Connected || got.Established != w.Established ||
					got.Delivered != w.Delivered || got.P99Us != w.P99Us || !samePtr(got.Published, w.Published) {
					t.Errorf("sample %d: %s, want %s", i, sampleJSON(got), sampleJSON(w))
				}
				if got.Latency != nil {
					t.Errorf("sample %d: interval histogram kept in the final report", i)
				}
			}
		})
	}
}

// p99Of is a value as a histogram reports it, in µs (within its
// resolution).
func p99Of(d time.Duration) int64 { return int64(histOf(1, d).Quantile(0.99) / time.Microsecond) }

func samePtr(a, b *int64) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func sampleJSON(s Sample) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestSampleJSON pins the documented field names.
func TestSampleJSON(t *testing.T) {
	n := int64(7)
	got := sampleJSON(Sample{TS: 1.5, UnixMs: 1000, Connected: 1, Established: 2, Attempts: 5, Delivered: 3, Published: &n, P99Us: 4})
	const want = `{"t_s":1.5,"unix_ms":1000,"connected":1,"established":2,"attempts":5,"delivered":3,"published":7,"p99_us":4}`
	if got != want {
		t.Errorf("JSON %s, want %s", got, want)
	}
	if got := sampleJSON(Sample{}); got != `{"t_s":0,"unix_ms":0,"connected":0,"established":0,"attempts":0,"delivered":0}` {
		t.Errorf("JSON of an idle sample %s: published and p99_us should be absent", got)
	}
}

func TestProgressMeter(t *testing.T) {
	f := &fakeLive{}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		src  liveSource
		want []string // lines at 2 s and 4 s
	}{
		{"streams and publisher", f.source(true), []string{
			"t=2s conns=4/10 established=5 delivered=100 (50/s) p99=none published=10 (5/s)",
			"t=4s conns=4/10 established=5 delivered=300 (100/s) p99=2.000ms published=30 (10/s)",
		}},
		{"worker parent: publisher only", liveSource{published: f.source(true).published}, []string{
			"t=2s published=10 (5/s)",
			"t=4s published=30 (10/s)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.reset()
			m := newProgressMeter(Config{Subs: 10}, start, tc.src)
			f.set(4, 5, 100, 10)
			if got := m.line(start.Add(2 * time.Second)); got != tc.want[0] {
				t.Errorf("line 1 %q, want %q", got, tc.want[0])
			}
			f.set(4, 5, 300, 30, 2*time.Millisecond)
			if got := m.line(start.Add(4 * time.Second)); got != tc.want[1] {
				t.Errorf("line 2 %q, want %q", got, tc.want[1])
			}
		})
	}
}

// TestRunTimeline checks the timeline of a real run: ordered samples on
// whole periods, counters that never go back and end at the report's
// figures. The run lasts at least Count/Rate = 0.3 s by the publisher's
// schedule, so it holds several 50 ms periods.
func TestRunTimeline(t *testing.T) {
	url := startNode(t)
	cfg := Config{URL: url, Subs: 20, Topics: 2, Rate: 100, Count: 30, SampleEvery: 50 * time.Millisecond}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkTimeline(t, r, cfg.SampleEvery)
}

// TestRunWorkersTimeline checks the merged timeline of two worker
// processes and the publishing parent.
func TestRunWorkersTimeline(t *testing.T) {
	url := startNode(t)
	cfg := Config{URL: url, Subs: 20, Topics: 2, Rate: 100, Count: 30, Drain: 300 * time.Millisecond,
		SampleEvery: 50 * time.Millisecond, Workers: 2}
	r, err := RunWorkers(context.Background(), cfg, func(int) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"=1")
		cmd.Stderr = os.Stderr
		return cmd
	})
	if err != nil {
		t.Fatalf("RunWorkers: %v", err)
	}
	checkTimeline(t, r, cfg.SampleEvery)
	var published bool
	for _, s := range r.Timeline {
		published = published || s.Published != nil
	}
	if !published {
		t.Errorf("no sample carries the parent's published count")
	}
}

func checkTimeline(t *testing.T, r *Report, every time.Duration) {
	t.Helper()
	tl := r.Timeline
	if len(tl) < 2 {
		t.Fatalf("%d samples, want several", len(tl))
	}
	var prev Sample
	for i, s := range tl {
		if s.UnixMs%every.Milliseconds() != 0 || i > 0 && s.UnixMs <= prev.UnixMs {
			t.Errorf("sample %d at %d ms: not on a whole period after the previous one (%d)", i, s.UnixMs, prev.UnixMs)
		}
		if s.Established < prev.Established || s.Delivered < prev.Delivered {
			t.Errorf("sample %d went back: %s after %s", i, sampleJSON(s), sampleJSON(prev))
		}
		if s.Latency != nil {
			t.Errorf("sample %d keeps its interval histogram", i)
		}
		prev = s
	}
	if prev.Established > r.Connect.Established || prev.Delivered > r.Delivery.Delivered {
		t.Errorf("last sample %s beyond the report's %d established, %d delivered", sampleJSON(prev), r.Connect.Established, r.Delivery.Delivered)
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"timeline":[{"t_s":`) {
		t.Errorf("report JSON has no timeline")
	}
}
