package survival_test

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node/survival"
)

// Reason codes of the tests.
const (
	_ uint8 = iota // "none"
	clientGone
	writeError
	slowConsumer
	drain
)

var reasons = []survival.Reason{
	{Name: "none"},
	{Name: "client_gone"},
	{Name: "write_error", Failure: true},
	{Name: "slow_consumer", Failure: true},
	{Name: "drain"},
}

// clock is a fake clock the test moves by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time  { return c.now }
func (c *clock) set(t time.Time) { c.now = t }
func (c *clock) at(t0 time.Time, s float64) time.Time {
	return t0.Add(time.Duration(s * float64(time.Second)))
}

func newLog(t testing.TB, clk *clock, cfg survival.Config) *survival.Log {
	t.Helper()
	cfg.Reasons = reasons
	cfg.Now = clk.Now
	l, err := survival.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// stream is one stream of a scenario: opened at Open seconds, closed at
// Close seconds with Reason (Close < 0: still open).
type stream struct {
	open, close float64
	reason      uint8
}

// play opens and closes the streams in time order on l.
func play(clk *clock, l *survival.Log, t0 time.Time, streams []stream) {
	type ev struct {
		at    float64
		i     int
		close bool
	}
	var evs []ev
	for i, s := range streams {
		evs = append(evs, ev{s.open, i, false})
		if s.close >= 0 {
			evs = append(evs, ev{s.close, i, true})
		}
	}
	// Stable order by time, opens before closes at the same time.
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && (evs[j].at < evs[j-1].at || evs[j].at == evs[j-1].at && !evs[j].close && evs[j-1].close); j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
	handles := make([]survival.Handle, len(streams))
	for _, e := range evs {
		clk.set(clk.at(t0, e.at))
		if e.close {
			l.Close(handles[e.i], streams[e.i].reason)
		} else {
			handles[e.i] = l.Open()
		}
	}
}

// scenario: eight streams observed at t0+100 s. Sorted observed times:
// 5 (A write_error, B client_gone), 20 (C drain, D open), 50 (E
// slow_consumer), 60 (F open), 70 (H write_error), 100 (G open). Plus one
// stream opened and closed more than the window before: not counted.
var scenario = []stream{
	{-3700, -3690, writeError}, // outside the 1 h window
	{0, 5, writeError},         // A
	{0, 5, clientGone},         // B
	{0, 20, drain},             // C
	{80, -1, 0},                // D: open, age 20
	{0, 50, slowConsumer},      // E
	{40, -1, 0},                // F: open, age 60
	{0, -1, 0},                 // G: open, age 100
	{0, 70, writeError},        // H
}

func ptr(v float64) *float64 { return &v }

// wantScenario is the scenario's summary, computed by hand:
//
//	all:      5: 1-2/8 = .75; 20: ×(1-1/6) = .625; 50: ×(1-1/4) = .46875; 70: ×(1-1/2) = .234375
//	failures: 5: 1-1/8 = .875; 50: ×3/4 = .65625; 70: ×1/2 = .328125
//	write_error: 5: 7/8; 70: ×1/2 = .4375. client_gone: 5: 7/8. drain: 20: 5/6. slow_consumer: 50: 3/4.
var wantScenario = survival.Summary{
	WindowS: 3600, Opened: 8, Closed: 5, Failed: 3, FailureRatio: 3.0 / 8,
	Curve: survival.Curve{
		S:       map[string]float64{"10s": .75, "1m": .46875, "5m": .234375, "30m": .234375, "1h": .234375},
		MedianS: ptr(50),
	},
	Failures: survival.Curve{
		S:       map[string]float64{"10s": .875, "1m": .65625, "5m": .328125, "30m": .328125, "1h": .328125},
		MedianS: ptr(70),
	},
	ByReason: map[string]survival.ReasonCurve{
		"write_error":   {Closed: 2, Curve: survival.Curve{S: map[string]float64{"10s": .875, "1m": .875, "5m": .4375, "30m": .4375, "1h": .4375}, MedianS: ptr(70)}},
		"client_gone":   {Closed: 1, Curve: survival.Curve{S: map[string]float64{"10s": .875, "1m": .875, "5m": .875, "30m": .875, "1h": .875}}},
		"drain":         {Closed: 1, Curve: survival.Curve{S: map[string]float64{"10s": 1, "1m": 5.0 / 6, "5m": 5.0 / 6, "30m": 5.0 / 6, "1h": 5.0 / 6}}},
		"slow_consumer": {Closed: 1, Curve: survival.Curve{S: map[string]float64{"10s": 1, "1m": .75, "5m": .75, "30m": .75, "1h": .75}}},
	},
}

// checkSummary compares summaries; S values up to float rounding of the
// product (1e-12).
func checkSummary(t *testing.T, what string, got, want survival.Summary) {
	t.Helper()
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }
	if !near(got.WindowS, want.WindowS) || got.Opened != want.Opened || got.Closed != want.Closed || got.Failed != want.Failed || !near(got.FailureRatio, want.FailureRatio) {
		t.Errorf("%s: window %g opened %d closed %d failed %d ratio %g; want %g %d %d %d %g", what,
			got.WindowS, got.Opened, got.Closed, got.Failed, got.FailureRatio,
			want.WindowS, want.Opened, want.Closed, want.Failed, want.FailureRatio)
	}
	checkCurve := func(name string, g, w survival.Curve) {
		t.Helper()
		if len(g.S) != len(w.S) {
			t.Errorf("%s %s: S %v, want %v", what, name, g.S, w.S)
		}
		for k, v := range w.S {
			if gv, ok := g.S[k]; !ok || !near(gv, v) {
				t.Errorf("%s %s: S(%s) = %v, want %v", what, name, k, g.S[k], v)
			}
		}
		switch {
		case (g.MedianS == nil) != (w.MedianS == nil):
			t.Errorf("%s %s: median %v, want %v", what, name, fmtPtr(g.MedianS), fmtPtr(w.MedianS))
		case g.MedianS != nil && !near(*g.MedianS, *w.MedianS):
			t.Errorf("%s %s: median %v, want %v", what, name, *g.MedianS, *w.MedianS)
		}
	}
	checkCurve("all", got.Curve, want.Curve)
	checkCurve("failures", got.Failures, want.Failures)
	if len(got.ByReason) != len(want.ByReason) {
		t.Errorf("%s: by_reason has %d reasons, want %d", what, len(got.ByReason), len(want.ByReason))
	}
	for name, w := range want.ByReason {
		g := got.ByReason[name]
		if g.Closed != w.Closed {
			t.Errorf("%s %s: closed %d, want %d", what, name, g.Closed, w.Closed)
		}
		checkCurve(name, g.Curve, w.Curve)
	}
}

func fmtPtr(p *float64) any {
	if p == nil {
		return "null"
	}
	return *p
}

func TestKaplanMeier(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	clk := &clock{}
	l := newLog(t, clk, survival.Config{})
	play(clk, l, t0, scenario)
	now := clk.at(t0, 100)
	checkSummary(t, "records", l.Summary(now), wantScenario)
	// The lifetimes are whole seconds: the binned estimate is the same.
	checkSummary(t, "bins", l.Bins(now).Summary(nil), wantScenario)
}

func TestKaplanMeierCases(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name    string
		streams []stream
		at      float64
		all     survival.Curve
		opened  int64
	}{
		{
			name: "empty", at: 10, opened: 0,
			all: survival.Curve{S: map[string]float64{"10s": 1, "1m": 1, "5m": 1, "30m": 1, "1h": 1}},
		},
		{
			name: "all_open", at: 100, opened: 2,
			streams: []stream{{0, -1, 0}, {50, -1, 0}},
			all:     survival.Curve{S: map[string]float64{"10s": 1, "1m": 1, "5m": 1, "30m": 1, "1h": 1}},
		},
		{
			// A death exactly at a point counts at that point: S(10s) includes it.
			name: "death_at_point", at: 100, opened: 2,
			streams: []stream{{0, 10, clientGone}, {0, -1, 0}},
			all:     survival.Curve{S: map[string]float64{"10s": .5, "1m": .5, "5m": .5, "30m": .5, "1h": .5}, MedianS: ptr(10)},
		},
		{
			// Censored before the first death: leaves the risk set first.
			// 3: censored; 4: 1 death of 3 → 2/3; 9.5: 1 death of 2 → 1/3.
			name: "censored_before_death", at: 100, opened: 4,
			streams: []stream{{97, -1, 0}, {0, 4, clientGone}, {0, 9.5, drain}, {0, -1, 0}},
			all:     survival.Curve{S: map[string]float64{"10s": 1.0 / 3, "1m": 1.0 / 3, "5m": 1.0 / 3, "30m": 1.0 / 3, "1h": 1.0 / 3}, MedianS: ptr(9.5)},
		},
		{
			// Every stream dies: S reaches 0.
			name: "all_die", at: 100, opened: 3,
			streams: []stream{{0, 1, clientGone}, {0, 2, clientGone}, {0, 120, clientGone}},
			all:     survival.Curve{S: map[string]float64{"10s": 1.0 / 3, "1m": 1.0 / 3, "5m": 0, "30m": 0, "1h": 0}, MedianS: ptr(2)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{}
			l := newLog(t, clk, survival.Config{})
			play(clk, l, t0, tc.streams)
			at := tc.at
			for _, s := range tc.streams {
				at = max(at, s.close)
			}
			got := l.Summary(clk.at(t0, at))
			if got.Opened != tc.opened {
				t.Errorf("opened %d, want %d", got.Opened, tc.opened)
			}
			w := got
			w.Curve = tc.all
			checkSummary(t, tc.name, got, w)
		})
	}
}

func TestMedianUnknownIsNull(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	clk := &clock{}
	l := newLog(t, clk, survival.Config{})
	play(clk, l, t0, []stream{{0, 5, clientGone}, {0, -1, 0}, {0, -1, 0}})
	b, err := json.Marshal(l.Summary(clk.at(t0, 30)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"median_s":null`) || !strings.Contains(string(b), `"1m":0.6666666666666667`) {
		t.Errorf("summary JSON %s: want median_s null and S(1m) = 2/3", b)
	}
}

func TestWindowCut(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	clk := &clock{}
	l := newLog(t, clk, survival.Config{Window: time.Minute})
	play(clk, l, t0, []stream{
		{0, 10, writeError},  // opened before now-window at 100: dropped
		{30, -1, 0},          // opened before: dropped though open
		{50, 55, writeError}, // kept
		{90, -1, 0},          // kept, censored at 10
	})
	got := l.Summary(clk.at(t0, 100))
	want := survival.Summary{
		WindowS: 60, Opened: 2, Closed: 1, Failed: 1, FailureRatio: .5,
		Curve:    survival.Curve{S: map[string]float64{"10s": .5, "1m": .5, "5m": .5, "30m": .5, "1h": .5}, MedianS: ptr(5)},
		Failures: survival.Curve{S: map[string]float64{"10s": .5, "1m": .5, "5m": .5, "30m": .5, "1h": .5}, MedianS: ptr(5)},
		ByReason: map[string]survival.ReasonCurve{
			"write_error": {Closed: 1, Curve: survival.Curve{S: map[string]float64{"10s": .5, "1m": .5, "5m": .5, "30m": .5, "1h": .5}, MedianS: ptr(5)}},
		},
	}
	checkSummary(t, "window", got, want)
}

func TestMaxRecords(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	clk := &clock{}
	l := newLog(t, clk, survival.Config{MaxRecords: 3})
	var streams []stream
	for i := range 10 {
		streams = append(streams, stream{float64(i), float64(i) + 0.5, clientGone})
	}
	play(clk, l, t0, streams)
	got := l.Summary(clk.at(t0, 20))
	if got.Opened != 3 || got.Closed != 3 {
		t.Errorf("opened %d closed %d, want the 3 newest streams", got.Opened, got.Closed)
	}
	// The newest dropped stream opened at 6 s: the estimate covers 14 s.
	if math.Abs(got.WindowS-14) > 1e-6 {
		t.Errorf("window %g s, want 14 (since the newest dropped stream)", got.WindowS)
	}
}

func TestCloseIgnoresUnknownHandles(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	clk := &clock{now: t0}
	l := newLog(t, clk, survival.Config{MaxRecords: 1})
	h1 := l.Open()
	h2 := l.Open() // drops h1's record
	clk.set(clk.at(t0, 3))
	l.Close(h1, writeError)
	l.Close(0, writeError)
	l.Close(h2, clientGone)
	clk.set(clk.at(t0, 4))
	l.Close(h2, writeError) // closed already
	l.Close(h2+1, writeError)
	got := l.Summary(clk.at(t0, 10))
	if got.Opened != 1 || got.Closed != 1 || got.Failed != 0 || got.ByReason["client_gone"].Closed != 1 {
		t.Errorf("summary %+v: want one stream, closed once by client_gone", got)
	}
	if m := got.MedianS; m == nil || *m != 3 {
		t.Errorf("median %v, want 3", fmtPtr(m))
	}
}

// TestMergeBins: the merge of two nodes' bins is the bins of one node that
// had all their streams.
func TestMergeBins(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := []stream{{0, 5.2, writeError}, {0, 12, clientGone}, {10, -1, 0}, {3, 3.9, drain}}
	b := []stream{{1, 5.9, writeError}, {2, 70, slowConsumer}, {20, -1, 0}, {10, -1, 0}, {4, 5, clientGone}}
	clkA, clkB, clkU := &clock{}, &clock{}, &clock{}
	la := newLog(t, clkA, survival.Config{})
	lb := newLog(t, clkB, survival.Config{})
	lu := newLog(t, clkU, survival.Config{})
	play(clkA, la, t0, a)
	play(clkB, lb, t0, b)
	play(clkU, lu, t0, append(append([]stream(nil), a...), b...))
	now := clkA.at(t0, 100)
	merged := survival.Merge(la.Bins(now), lb.Bins(now))
	union := lu.Bins(now)
	if !reflect.DeepEqual(merged, union) {
		t.Fatalf("merged bins\n%+v\nwant the union's\n%+v", merged, union)
	}
	// Round trip through JSON (the bins travel through Redis).
	raw, err := json.Marshal(merged)
	if err != nil {
		t.Fatal(err)
	}
	var back survival.Bins
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, union) {
		t.Fatalf("bins after JSON %s differ", raw)
	}
	// The union at 1-second resolution (lifetimes rounded up): deaths at 1
	// (0.9 drain, 1 client_gone), 5 (4.9), 6 (5.2), 12, 68; open at 80, 90,
	// 90. S: 1: 7/9; 5: ×6/7; 6: ×5/6 = 5/9 at 10 s; 12: ×4/5; 68: ×3/4 = 1/3.
	s := survival.Merge(la.Bins(now), lb.Bins(now)).Summary(nil)
	if got := s.S["10s"]; math.Abs(got-5.0/9) > 1e-12 {
		t.Errorf("cluster S(10s) = %v, want 5/9", got)
	}
	if got := s.S["5m"]; math.Abs(got-1.0/3) > 1e-12 {
		t.Errorf("cluster S(5m) = %v, want 1/3", got)
	}
	if m := s.MedianS; m == nil || *m != 12 { // 4/9 at 12
		t.Errorf("cluster median %v, want 12", fmtPtr(m))
	}
	if s.Opened != 9 || s.Closed != 6 || s.Failed != 3 {
		t.Errorf("cluster opened %d closed %d failed %d, want 9 6 3", s.Opened, s.Closed, s.Failed)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  survival.Config
	}{
		{"no_reasons", survival.Config{}},
		{"window_too_long", survival.Config{Reasons: reasons, Window: 25 * time.Hour}},
		{"negative_records", survival.Config{Reasons: reasons, MaxRecords: -1}},
		{"unlabelled_point", survival.Config{Reasons: reasons, Points: []survival.Point{{At: time.Second}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := survival.New(tc.cfg); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

// TestConcurrent exercises the lock under -race.
func TestConcurrent(t *testing.T) {
	l, err := survival.New(survival.Config{Reasons: reasons, MaxRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				h := l.Open()
				if i%2 == 0 {
					l.Close(h, uint8(1+(g+i)%4))
				}
				if i%100 == 0 {
					_ = l.Summary(time.Now())
					_ = l.Bins(time.Now())
				}
			}
		})
	}
	wg.Wait()
	if s := l.Summary(time.Now()); s.Opened != 100 {
		t.Errorf("opened %d, want the cap 100", s.Opened)
	}
}
