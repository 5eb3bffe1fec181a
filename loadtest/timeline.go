package loadtest

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Sample is the state of a run at one instant of its timeline
// (Report.Timeline). Samples are taken on whole multiples of
// Config.SampleEvery in Unix time, so the samples of worker processes fall
// on the same instants and merge by adding up.
type Sample struct {
	// TS is the sample's time since Report.Started, in seconds (ms
	// precision); UnixMs its wall-clock time, what aligns samples of
	// several processes.
	TS     float64 `json:"t_s"`
	UnixMs int64   `json:"unix_ms"`
	// Connected is the number of streams connected at that instant;
	// Established of streams that got an event stream at least once so far.
	Connected   int64 `json:"connected"`
	Established int64 `json:"established"`
	// Attempts counts connection attempts so far (first connects and
	// reconnects, cumulative): its rate is the connect load on the target.
	Attempts int64 `json:"attempts"`
	// Delivered counts the events delivered so far (cumulative, all
	// streams); the difference of two samples is what arrived between them.
	Delivered int64 `json:"delivered"`
	// Published counts the events the target confirmed so far
	// (cumulative); absent when nothing was publishing (idle runs, and
	// before the publisher's process started sampling).
	Published *int64 `json:"published,omitempty"`
	// P99Us is the 99th percentile end-to-end latency, in microseconds, of
	// the events delivered since the previous sample (not since the start);
	// absent when none were.
	P99Us int64 `json:"p99_us,omitempty"`
	// Latency holds those events' latencies. It travels from worker
	// processes to their parent only, so that P99Us merges exactly, and is
	// dropped from the final report.
	Latency *Histogram `json:"latency,omitempty"`
}

// DefaultSampleEvery is the timeline's period when Config.SampleEvery is 0.
const DefaultSampleEvery = time.Second

// liveSource is what the sampler and the progress line read while a run
// lasts. Every field may be nil: that figure is not measured in this
// process (a worker process does not publish; the parent of worker
// processes holds no streams).
type liveSource struct {
	connected, established, delivered func() int64
	attempts                          func() int64
	published                         func() int64
	latencies                         func() *Histogram // every latency so far, a fresh copy
}

// newLiveSource reads pool and pub, either of which may be nil, only
// through their accessors: how and when their counters are updated is
// theirs to choose.
func newLiveSource(pool *Pool, pub *Publisher) liveSource {
	var s liveSource
	if pool != nil {
		s.connected, s.established, s.delivered = pool.Connected, pool.Established, pool.Delivered
		s.attempts = pool.Attempts
		s.latencies = pool.lat.merged
	}
	if pub != nil {
		s.published = pub.Confirmed
	}
	return s
}

func call(f func() int64) int64 {
	if f == nil {
		return 0
	}
	return f()
}

// sampler builds a run's timeline. Its run method is a goroutine owned by
// whoever runs the pool (Run, RunWorker, RunWorkers), stopped with the pool
// by the same context; samples is read once that goroutine has returned.
type sampler struct {
	src     liveSource
	every   time.Duration
	start   time.Time
	samples []Sample
	lastLat *Histogram // the latencies at the previous sample
}

func newSampler(cfg Config, start time.Time, src liveSource) *sampler {
	every := cfg.SampleEvery
	if every <= 0 {
		every = DefaultSampleEvery
	}
	return &sampler{src: src, every: every, start: start}
}

// run takes a sample at every whole multiple of the period (Unix time)
// until ctx ends. A tick missed because the process was stalled is
// skipped, not taken late: merges hold the previous sample over the gap.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		at := nextTick(time.Now(), s.every)
		t.Reset(time.Until(at))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.take(at)
	}
}

// nextTick returns the first whole multiple of every (since the Unix
// epoch) after now.
func nextTick(now time.Time, every time.Duration) time.Time {
	ns := now.UnixNano()
	return time.Unix(0, (ns/int64(every)+1)*int64(every))
}

// take appends the sample of instant at.
func (s *sampler) take(at time.Time) {
	smp := Sample{
		TS:          sinceStart(at.UnixMilli(), s.start),
		UnixMs:      at.UnixMilli(),
		Connected:   call(s.src.connected),
		Established: call(s.src.established),
		Attempts:    call(s.src.attempts),
		Delivered:   call(s.src.delivered),
	}
	if s.src.published != nil {
		n := s.src.published()
		smp.Published = &n
	}
	if s.src.latencies != nil {
		lat := s.src.latencies()
		if lat.Count() > s.lastCount() { // else skip copying the counts
			iv := lat.Since(s.lastLat)
			smp.Latency = iv
			smp.P99Us = int64(iv.Quantile(0.99) / time.Microsecond)
		}
		s.lastLat = lat
	}
	s.samples = append(s.samples, smp)
}

func (s *sampler) lastCount() int64 {
	if s.lastLat == nil {
		return 0
	}
	return s.lastLat.Count()
}

// sinceStart is unixMs as seconds since start, to the millisecond.
func sinceStart(unixMs int64, start time.Time) float64 {
	return float64(unixMs-start.UnixMilli()) / 1000
}

// mergeTimelines returns the timelines a and b (each ordered by time) of
// two processes of one run as one. Samples of the same instant add up
// (exact sums); their interval latencies merge and P99Us is taken from the
// merged histogram (the larger of the two when a histogram is missing). At
// an instant only one of them sampled, the other counts with its previous
// sample's figures (sample and hold), or zero before its first sample:
// counters do not go back because a process skipped a tick or stopped a
// second earlier.
func mergeTimelines(a, b []Sample) []Sample {
	if len(a) == 0 || len(b) == 0 {
		return append(a, b...)
	}
	out := make([]Sample, 0, max(len(a), len(b)))
	var heldA, heldB Sample // zero until their first sample
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i].UnixMs < b[j].UnixMs:
			heldA = a[i]
			out = append(out, addSamples(a[i], held(heldB)))
			i++
		case i == len(a) || b[j].UnixMs < a[i].UnixMs:
			heldB = b[j]
			out = append(out, addSamples(b[j], held(heldA)))
			j++
		default: // same instant
			heldA, heldB = a[i], b[j]
			out = append(out, addSamples(a[i], b[j]))
			i++
			j++
		}
	}
	return out
}

// held is s carried over to a later instant: its counters without its
// interval figures.
func held(s Sample) Sample {
	s.P99Us, s.Latency = 0, nil
	return s
}

// addSamples returns x with y's figures added; x's instant is kept.
func addSamples(x, y Sample) Sample {
	x.Connected += y.Connected
	x.Established += y.Established
	x.Attempts += y.Attempts
	x.Delivered += y.Delivered
	if y.Published != nil {
		n := *y.Published
		if x.Published != nil {
			n += *x.Published
		}
		x.Published = &n
	}
	switch {
	case x.Latency != nil && y.Latency != nil:
		m := NewHistogram()
		m.Merge(x.Latency)
		m.Merge(y.Latency)
		x.Latency = m
		x.P99Us = int64(m.Quantile(0.99) / time.Microsecond)
	case y.Latency != nil:
		x.Latency = y.Latency
		x.P99Us = max(x.P99Us, y.P99Us)
	default:
		x.P99Us = max(x.P99Us, y.P99Us)
	}
	return x
}

// mergeTimeline merges o's timeline into r's (Merge) and states every
// sample's time relative to r's start.
func (r *Report) mergeTimeline(o *Report) {
	r.Timeline = mergeTimelines(r.Timeline, o.Timeline)
	if !r.Started.IsZero() {
		for i := range r.Timeline {
			r.Timeline[i].TS = sinceStart(r.Timeline[i].UnixMs, r.Started)
		}
	}
}

// finalizeTimeline drops the interval histograms, which only serve merges,
// and derives the peak connect rate.
func (r *Report) finalizeTimeline() {
	for i := range r.Timeline {
		r.Timeline[i].Latency = nil
		if i > 0 {
			a, b := &r.Timeline[i-1], &r.Timeline[i]
			if dt := float64(b.UnixMs-a.UnixMs) / 1000; dt > 0 {
				r.Connect.PeakAttemptsPerSec = max(r.Connect.PeakAttemptsPerSec, float64(b.Attempts-a.Attempts)/dt)
			}
		}
	}
}

// progressMeter writes the live progress line: connections, delivered
// events and their rate over the last interval, p99 latency so far, and
// what the publisher confirmed. It is used by one goroutine (progressLoop).
type progressMeter struct {
	src           liveSource
	subs          int
	start         time.Time
	lastAt        time.Time
	lastDelivered int64
	lastPublished int64
}

func newProgressMeter(cfg Config, start time.Time, src liveSource) *progressMeter {
	return &progressMeter{src: src, subs: cfg.Subs, start: start, lastAt: start}
}

// line returns the progress line at now; rates are over the time since
// the previous line (or the start).
func (m *progressMeter) line(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%s", now.Sub(m.start).Round(time.Second))
	dt := now.Sub(m.lastAt).Seconds()
	rate := func(n, last int64) float64 {
		if dt <= 0 {
			return 0
		}
		return float64(n-last) / dt
	}
	if m.src.connected != nil {
		d := call(m.src.delivered)
		fmt.Fprintf(&b, " conns=%d/%d established=%d delivered=%d (%.0f/s)",
			call(m.src.connected), m.subs, call(m.src.established), d, rate(d, m.lastDelivered))
		m.lastDelivered = d
	}
	if m.src.latencies != nil {
		if h := m.src.latencies(); h.Count() > 0 {
			fmt.Fprintf(&b, " p99=%s", fmtDur(h.Quantile(0.99)))
		} else {
			b.WriteString(" p99=none")
		}
	}
	if m.src.published != nil {
		p := m.src.published()
		fmt.Fprintf(&b, " published=%d (%.0f/s)", p, rate(p, m.lastPublished))
		m.lastPublished = p
	}
	m.lastAt = now
	return b.String()
}
