package latency

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Config configures a Recorder. The zero value is usable.
type Config struct {
	// Shards is the number of independent recording shards; default
	// 2×GOMAXPROCS. Record's shard index is taken modulo Shards.
	Shards int
	// Slot is the granularity of the windows; default 10 s, at most 1 min.
	Slot time.Duration
	// Highest is the highest value kept exactly; default 1 h. Longer
	// values count as Highest.
	Highest time.Duration
}

// Windows of a Snapshot.
const (
	Window1m = time.Minute
	Window5m = 5 * time.Minute
)

const (
	// sigFigs is the histograms' precision: 3 significant digits.
	sigFigs = 3
	// defaultHighest is the default of Config.Highest, and the geometry of
	// merged histograms.
	defaultHighest = time.Hour
)

func (c Config) withDefaults() Config {
	if c.Shards == 0 {
		c.Shards = 2 * runtime.GOMAXPROCS(0)
	}
	if c.Slot == 0 {
		c.Slot = 10 * time.Second
	}
	if c.Highest == 0 {
		c.Highest = defaultHighest
	}
	return c
}

// Validate reports every invalid field of an already defaulted config.
func (c Config) Validate() error {
	var errs []error
	if c.Shards < 1 || c.Shards > 1024 {
		errs = append(errs, fmt.Errorf("latency: shards %d out of range 1..1024", c.Shards))
	}
	if c.Slot < time.Millisecond || c.Slot > time.Minute {
		errs = append(errs, fmt.Errorf("latency: slot %s out of range 1ms..1m", c.Slot))
	}
	if c.Highest < time.Millisecond {
		errs = append(errs, errors.New("latency: highest below 1ms"))
	}
	return errors.Join(errs...)
}

// Recorder is a windowed histogram of durations. See the package doc.
type Recorder struct {
	slot    int64 // ns
	highest int64 // µs
	shards  []shard

	mu    sync.Mutex // the ring; after a shard's mu
	ring  []ringSlot
	total *hdr.PackedHistogram
}

// shard records into a dense histogram for one slot at a time.
type shard struct {
	mu   sync.Mutex
	slot int64 // slot number of h's values
	n    int64 // values in h
	h    *hdr.Histogram
	_    [64]byte // keep shards' locks on separate cache lines
}

// ringSlot holds one completed (or being completed) slot.
type ringSlot struct {
	num int64 // slot number; -1 when unused
	h   *hdr.PackedHistogram
}

// New returns an empty Recorder.
func New(cfg Config) (*Recorder, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Recorder{
		slot:    int64(cfg.Slot),
		highest: cfg.Highest.Microseconds(),
		shards:  make([]shard, cfg.Shards),
		total:   newPacked(cfg.Highest),
	}
	for i := range r.shards {
		r.shards[i].h = hdr.New(1, r.highest, sigFigs)
		r.shards[i].slot = -1
	}
	// Enough slots for the longest window, the slot it starts in and the
	// current one.
	r.ring = make([]ringSlot, int((Window5m+cfg.Slot-1)/cfg.Slot)+2)
	for i := range r.ring {
		r.ring[i] = ringSlot{num: -1, h: newPacked(cfg.Highest)}
	}
	return r, nil
}

// newPacked returns an empty packed histogram of the recorder's geometry.
func newPacked(highest time.Duration) *hdr.PackedHistogram {
	return hdr.NewPacked(1, highest.Microseconds(), sigFigs)
}

// Shards returns the number of shards.
func (r *Recorder) Shards() int { return len(r.shards) }

// Record records now − ts for each ts (Unix ns; now too) on shard i (taken
// modulo Shards). Callers that may run concurrently should use different
// shards.
func (r *Recorder) Record(i int, now int64, ts []int64) {
	if len(ts) == 0 {
		return
	}
	sh := &r.shards[uint(i)%uint(len(r.shards))]
	slot := now / r.slot
	sh.mu.Lock()
	if slot != sh.slot {
		if sh.n > 0 {
			r.flush(sh)
		}
		sh.slot = slot
	}
	for _, t := range ts {
		_ = sh.h.RecordValue(r.clamp(now - t))
	}
	sh.n += int64(len(ts))
	sh.mu.Unlock()
}

// RecordValue records one duration d ending at now.
func (r *Recorder) RecordValue(i int, now time.Time, d time.Duration) {
	n := now.UnixNano()
	r.Record(i, n, []int64{n - int64(d)})
}

// clamp turns a duration in ns into a recordable value in µs.
func (r *Recorder) clamp(ns int64) int64 {
	return min(max(ns/1000, 0), r.highest)
}

// flush moves sh's values into the ring and the total and empties sh.
// sh.mu is held.
func (r *Recorder) flush(sh *shard) {
	r.mu.Lock()
	rs := &r.ring[uint64(sh.slot)%uint64(len(r.ring))]
	switch {
	case rs.num < sh.slot:
		rs.h.Reset()
		rs.num = sh.slot
		fallthrough
	case rs.num == sh.slot:
		rs.h.MergeFrom(sh.h)
	}
	// rs.num > sh.slot: the slot is older than the ring; only the total
	// keeps it.
	r.total.MergeFrom(sh.h)
	r.mu.Unlock()
	sh.h.Reset()
	sh.n = 0
}

// Snapshot returns the histograms of the windows ending at now.
func (r *Recorder) Snapshot(now time.Time) Snapshot {
	cur := now.UnixNano() / r.slot
	live := newPacked(r.highestDuration()) // values of shards in the current slot
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		if sh.n > 0 {
			if sh.slot < cur {
				r.flush(sh)
			} else {
				live.MergeFrom(sh.h)
			}
		}
		sh.mu.Unlock()
	}
	s := Snapshot{Last1m: live.Clone(), Last5m: live.Clone(), SinceStart: live}
	from1 := (now.UnixNano() - int64(Window1m)) / r.slot
	from5 := (now.UnixNano() - int64(Window5m)) / r.slot
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.ring {
		rs := &r.ring[i]
		if rs.num < 0 || rs.num > cur {
			continue
		}
		if rs.num >= from1 {
			s.Last1m.Merge(rs.h)
		}
		if rs.num >= from5 {
			s.Last5m.Merge(rs.h)
		}
	}
	s.SinceStart.Merge(r.total)
	return s
}

func (r *Recorder) highestDuration() time.Duration {
	return time.Duration(r.highest) * time.Microsecond
}
