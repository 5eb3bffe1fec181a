package survival

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Reason describes one close reason: its name in reports and whether it is a
// failure.
type Reason struct {
	Name    string
	Failure bool
}

// Point is a time at which a Summary reports S(t), and its label in JSON.
type Point struct {
	Label string
	At    time.Duration
}

// DefaultPoints returns the report points: 10 s, 1 min, 5 min, 30 min, 1 h.
func DefaultPoints() []Point {
	return []Point{
		{"10s", 10 * time.Second},
		{"1m", time.Minute},
		{"5m", 5 * time.Minute},
		{"30m", 30 * time.Minute},
		{"1h", time.Hour},
	}
}

// Config configures a Log.
type Config struct {
	// Reasons lists the close reasons; a reason's code (Close's argument) is
	// its index. Required; at most 255.
	Reasons []Reason
	// Window is how far back the estimate looks: streams opened within it.
	// Default 1 h, at most 24 h.
	Window time.Duration
	// MaxRecords bounds the records kept (16 bytes each). Default 262144.
	MaxRecords int
	// Points are the times Summary reports S(t) at; default DefaultPoints.
	Points []Point
	// Now is the clock of Open and Close; default time.Now.
	Now func() time.Time
}

const (
	defaultWindow     = time.Hour
	maxWindow         = 24 * time.Hour
	defaultMaxRecords = 1 << 18
)

func (c Config) withDefaults() Config {
	if c.Window == 0 {
		c.Window = defaultWindow
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = defaultMaxRecords
	}
	if c.Points == nil {
		c.Points = DefaultPoints()
	}
	c.Points = slices.Clone(c.Points)
	slices.SortStableFunc(c.Points, func(a, b Point) int { return cmp.Compare(a.At, b.At) })
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every invalid field of an already defaulted config.
func (c Config) Validate() error {
	var errs []error
	if len(c.Reasons) == 0 || len(c.Reasons) >= openMark {
		errs = append(errs, fmt.Errorf("survival: %d reasons, want 1..%d", len(c.Reasons), openMark-1))
	}
	if c.Window <= 0 || c.Window > maxWindow {
		errs = append(errs, fmt.Errorf("survival: window %s out of range (0, %s]", c.Window, maxWindow))
	}
	if c.MaxRecords < 1 {
		errs = append(errs, fmt.Errorf("survival: max records %d must be positive", c.MaxRecords))
	}
	for _, p := range c.Points {
		if p.Label == "" || p.At < 0 {
			errs = append(errs, errors.New("survival: points need a label and a time >= 0"))
			break
		}
	}
	return errors.Join(errs...)
}

// Handle names one stream's record. The zero Handle names none: closing it
// does nothing.
type Handle uint64

// openMark is the reason of a record whose stream is still open.
const openMark = 0xff

// record is one stream.
type record struct {
	open   int64  // Unix ns
	life   uint32 // ms from open to close, when closed
	reason uint8  // close reason code, or openMark
}

// Log is the lifetime log of a node's streams. See the package doc.
type Log struct {
	cfg Config

	mu   sync.Mutex
	recs []record // recs[off:] are kept, in the order they opened
	off  int
	// first is the Handle of recs[off]; next the Handle the next Open gets.
	first, next uint64
	// capCut is the open time (Unix ns) of the newest record dropped by
	// MaxRecords; the estimate covers only streams opened after it.
	capCut int64
}

// New returns an empty Log.
func New(cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Log{cfg: cfg, first: 1, next: 1, capCut: math.MinInt64}, nil
}

// Open records a stream opened now and returns its handle.
func (l *Log) Open() Handle {
	now := l.cfg.Now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now - int64(l.cfg.Window))
	if len(l.recs)-l.off >= l.cfg.MaxRecords {
		l.capCut = max(l.capCut, l.recs[l.off].open)
		l.dropLocked()
	}
	if len(l.recs) == cap(l.recs) {
		l.growLocked()
	}
	l.recs = append(l.recs, record{open: now, reason: openMark})
	h := Handle(l.next)
	l.next++
	return h
}

// Close records that the stream of h closed now with reason (an index into
// Config.Reasons). A handle whose record was dropped, or already closed, is
// ignored.
func (l *Log) Close(h Handle, reason uint8) { l.CloseAt(h, reason, l.cfg.Now()) }

// CloseAt is Close at a given time (the moment the stream closed, when it is
// logged later).
func (l *Log) CloseAt(h Handle, reason uint8, at time.Time) {
	if int(reason) >= len(l.cfg.Reasons) {
		return
	}
	t := at.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := uint64(h)
	if seq < l.first || seq >= l.next {
		return
	}
	r := &l.recs[l.off+int(seq-l.first)]
	if r.reason != openMark {
		return
	}
	r.reason = reason
	r.life = uint32(min(max(t-r.open, 0)/int64(time.Millisecond), math.MaxUint32))
}

// pruneLocked drops the records of streams opened before cutoff.
func (l *Log) pruneLocked(cutoff int64) {
	for l.off < len(l.recs) && l.recs[l.off].open < cutoff {
		l.dropLocked()
	}
}

func (l *Log) dropLocked() {
	l.recs[l.off] = record{}
	l.off++
	l.first++
	if l.off == len(l.recs) {
		l.recs, l.off = l.recs[:0], 0
	}
}

// growLocked makes room for one more record: it moves the kept records to
// the front when half the array is dropped ones, else grows it, never
// beyond MaxRecords.
func (l *Log) growLocked() {
	n := len(l.recs) - l.off
	if l.off > 0 && (l.off >= n || cap(l.recs) >= l.cfg.MaxRecords) {
		copy(l.recs, l.recs[l.off:])
		clear(l.recs[n:])
		l.recs, l.off = l.recs[:n], 0
		return
	}
	grown := make([]record, n, min(max(2*cap(l.recs), 64), l.cfg.MaxRecords))
	copy(grown, l.recs[l.off:])
	l.recs, l.off = grown, 0
}

// obs is one stream as the estimator sees it: its observed time (lifetime,
// or age when still open) in ms, and its close reason or openMark.
type obs struct {
	t      int64
	reason uint8
}

// observe returns the streams opened in the window ending at now, sorted by
// observed time, and the window's effective start.
func (l *Log) observe(now time.Time) ([]obs, time.Duration) {
	n := now.UnixNano()
	cutoff := n - int64(l.cfg.Window)
	l.mu.Lock()
	// Records dropped by MaxRecords are gone already; those kept need only
	// the time cut.
	start := max(cutoff, l.capCut)
	out := make([]obs, 0, len(l.recs)-l.off)
	for _, r := range l.recs[l.off:] {
		if r.open < cutoff {
			continue
		}
		o := obs{t: int64(r.life), reason: r.reason}
		if r.reason == openMark {
			o.t = max(n-r.open, 0) / int64(time.Millisecond)
		}
		out = append(out, o)
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b obs) int { return cmp.Compare(a.t, b.t) })
	return out, time.Duration(n - start)
}

// Summary computes the survival figures at now from the records, exactly
// (millisecond resolution).
func (l *Log) Summary(now time.Time) Summary {
	o, window := l.observe(now)
	tab := newTable(l.cfg.Reasons, int64(len(o)), l.cfg.Points, time.Millisecond)
	for i := 0; i < len(o); {
		j := i
		for j < len(o) && o[j].t == o[i].t {
			tab.add(o[j].reason, 1)
			j++
		}
		tab.endGroup(o[i].t)
		i = j
	}
	return tab.summary(window)
}

// Bins exports the records at now as 1-second bins, for merging with other
// nodes' (see Merge and Bins.Summary).
func (l *Log) Bins(now time.Time) Bins {
	o, window := l.observe(now)
	b := Bins{WindowS: window.Seconds(), Closed: make(map[string]ReasonBins)}
	counts := make(map[uint8]map[int64]int64)
	for _, x := range o {
		sec := (x.t + 999) / 1000 // ceil: S at whole seconds stays exact
		m := counts[x.reason]
		if m == nil {
			m = make(map[int64]int64)
			counts[x.reason] = m
		}
		m[sec]++
	}
	for code, m := range counts {
		bins := sortedBins(m)
		if code == openMark {
			b.Censored = bins
			continue
		}
		r := l.cfg.Reasons[code]
		b.Closed[r.Name] = ReasonBins{Failure: r.Failure, Bins: bins}
	}
	return b
}

func sortedBins(m map[int64]int64) []Bin {
	out := make([]Bin, 0, len(m))
	for s, n := range m {
		out = append(out, Bin{s, n})
	}
	slices.SortFunc(out, func(a, b Bin) int { return cmp.Compare(a[0], b[0]) })
	return out
}
