package loadtest

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: microseconds from 1 µs to 10 minutes with three
// significant digits (every recorded value is within 0.1% of the truth).
const (
	histLowest  = 1
	histHighest = int64(10 * time.Minute / time.Microsecond)
	histDigits  = 3
)

// Histogram is an HDR histogram of durations with microsecond resolution.
// Histograms of several processes merge exactly (counts are added, never
// percentiles averaged). Its JSON form carries the summary figures and the
// whole histogram in HdrHistogram's compressed V2 encoding, which other
// HdrHistogram tools can read.
//
// A Histogram is not safe for concurrent use; see shardedHist.
type Histogram struct {
	h *hdrhistogram.Histogram
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(histLowest, histHighest, histDigits)}
}

// Record adds one duration. Values below 1 µs count as 1 µs, above the
// range as its top.
func (h *Histogram) Record(d time.Duration) {
	us := max(int64(d/time.Microsecond), histLowest)
	_ = h.h.RecordValue(min(us, histHighest)) // in range: cannot fail
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o != nil && o.h != nil {
		h.h.Merge(o.h)
	}
}

// Count returns how many values were recorded.
func (h *Histogram) Count() int64 { return h.h.TotalCount() }

// Quantile returns the value at quantile q (0..1), 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(h.h.ValueAtQuantile(q*100)) * time.Microsecond
}

// Max returns the largest value recorded (within the resolution).
func (h *Histogram) Max() time.Duration {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(h.h.Max()) * time.Microsecond
}

// Min returns the smallest value recorded (within the resolution).
func (h *Histogram) Min() time.Duration {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(h.h.Min()) * time.Microsecond
}

// Mean returns the mean of the recorded values.
func (h *Histogram) Mean() time.Duration {
	return time.Duration(h.h.Mean() * float64(time.Microsecond))
}

// Percentile is one point of a distribution: Quantile (0..1) of the
// recorded values are at or below Value.
type Percentile struct {
	Quantile float64
	Value    time.Duration
}

// Percentiles returns the distribution as HdrHistogram's percentile output
// (.hgrm files) does: ticksPerHalf points (at least 1) each time the
// distance to 100% halves, so the tail (99%, 99.9%, ...) is drawn as finely
// as the body. Quantiles ascend from 0 (the smallest value) to 1 (the
// largest). Nil when the histogram is empty.
func (h *Histogram) Percentiles(ticksPerHalf int) []Percentile {
	if h.h.TotalCount() == 0 {
		return nil
	}
	brackets := h.h.CumulativeDistributionWithTicks(int32(max(ticksPerHalf, 1)))
	out := make([]Percentile, len(brackets))
	for i, b := range brackets {
		out[i] = Percentile{Quantile: b.Quantile / 100, Value: time.Duration(b.ValueAt) * time.Microsecond}
	}
	return out
}

// Since returns the values recorded in h after it held what prev holds: h's
// counts minus prev's, bucket by bucket. prev is an earlier copy of h (a
// histogram that is only recorded to never loses a value); a bucket where
// prev holds more than h counts as empty. A nil prev is an empty one. It is
// how the timeline gets one interval's latencies from two snapshots of the
// run's histogram.
func (h *Histogram) Since(prev *Histogram) *Histogram {
	s := h.h.Export() // a copy of the counts
	if prev != nil && prev.h != nil && prev.h.TotalCount() > 0 {
		p := prev.h.Export()
		for i := range min(len(s.Counts), len(p.Counts)) {
			s.Counts[i] = max(s.Counts[i]-p.Counts[i], 0)
		}
	}
	return &Histogram{h: hdrhistogram.Import(s)}
}

// histJSON is the wire form of a Histogram. The figures are for people and
// scripts; hdr is what Merge uses.
type histJSON struct {
	Count  int64  `json:"count"`
	MinUs  int64  `json:"min_us"`
	MeanUs int64  `json:"mean_us"`
	P50Us  int64  `json:"p50_us"`
	P90Us  int64  `json:"p90_us"`
	P99Us  int64  `json:"p99_us"`
	P999Us int64  `json:"p999_us"`
	MaxUs  int64  `json:"max_us"`
	HDR    string `json:"hdr"`
}

// MarshalJSON implements json.Marshaler.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	enc, err := h.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("loadtest: encode histogram: %w", err)
	}
	us := func(d time.Duration) int64 { return int64(d / time.Microsecond) }
	return json.Marshal(histJSON{
		Count: h.Count(), MinUs: us(h.Min()), MeanUs: us(h.Mean()),
		P50Us: us(h.Quantile(0.50)), P90Us: us(h.Quantile(0.90)), P99Us: us(h.Quantile(0.99)),
		P999Us: us(h.Quantile(0.999)), MaxUs: us(h.Max()), HDR: string(enc),
	})
}

// UnmarshalJSON implements json.Unmarshaler; only the hdr field is read.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var v histJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	h.h = hdrhistogram.New(histLowest, histHighest, histDigits)
	if v.HDR == "" {
		return nil
	}
	dec, err := hdrhistogram.Decode([]byte(v.HDR))
	if err != nil {
		return fmt.Errorf("loadtest: decode histogram: %w", err)
	}
	h.h.Merge(dec) // re-bucket into our geometry, whatever the sender used
	return nil
}

// histShards spreads recording over several locks. Poller loops record
// into one shard each, so their locks are never contended but by a reader
// of the whole (progress, timeline); streams read by their own goroutines
// record into shard key%histShards, where one lock would be the meeting
// point of thousands of goroutines.
const histShards = 32

// shardedHist is a Histogram safe for concurrent use.
type shardedHist struct {
	shards [histShards]struct {
		mu sync.Mutex
		h  *Histogram
		_  [40]byte // keep neighbouring locks off one cache line
	}
}

func newShardedHist() *shardedHist {
	s := &shardedHist{}
	for i := range s.shards {
		s.shards[i].h = NewHistogram()
	}
	return s
}

// record adds d to shard key%histShards.
func (s *shardedHist) record(key int, d time.Duration) {
	sh := &s.shards[uint(key)%histShards]
	sh.mu.Lock()
	sh.h.Record(d)
	sh.mu.Unlock()
}

// merged returns one histogram holding every shard's values.
func (s *shardedHist) merged() *Histogram {
	out := NewHistogram()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		out.Merge(sh.h)
		sh.mu.Unlock()
	}
	return out
}
