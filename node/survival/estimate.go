package survival

import (
	"time"
)

// Summary is the survival report of a node or a cluster (JSON shape of the
// admin API's "survival").
type Summary struct {
	// WindowS is how far back the estimate looks, in seconds: the window, or
	// less when MaxRecords dropped older streams.
	WindowS float64 `json:"window_s"`
	// Opened is the number of streams opened in the window; Closed of those
	// that closed since, Failed of those whose close is a failure.
	Opened int64 `json:"opened"`
	Closed int64 `json:"closed"`
	Failed int64 `json:"failed"`
	// FailureRatio is Failed/Opened (0 when nothing opened).
	FailureRatio float64 `json:"failure_ratio"`
	// S and MedianS: every close is a death.
	Curve
	// Failures: only failure closes are deaths.
	Failures Curve `json:"failures"`
	// ByReason: the curve where that reason's closes are the deaths, for
	// every reason with at least one close.
	ByReason map[string]ReasonCurve `json:"by_reason"`
}

// Curve is one Kaplan–Meier curve at the report points.
type Curve struct {
	// S maps a point's label ("10s", "1m", ...) to S(t).
	S map[string]float64 `json:"s"`
	// MedianS is the median lifetime in seconds; nil (null) when S never
	// falls to 0.5.
	MedianS *float64 `json:"median_s"`
}

// ReasonCurve is the curve of one close reason.
type ReasonCurve struct {
	Closed int64 `json:"closed"`
	Curve
}

// curve is the running state of one Kaplan–Meier estimate.
type curve struct {
	s      float64
	median int64 // in table units; -1 while unknown
	at     []float64
	next   int // index of the first point not recorded yet
}

// table computes every view's curve in one pass over the observations,
// grouped by time in ascending order: add each observation of a group,
// then endGroup. The risk set is the same for every view (a censoring and a
// death both leave it after their time); only what counts as a death
// differs.
type table struct {
	reasons []Reason
	unit    time.Duration
	points  []Point

	n      int64   // at risk before the current group
	group  int64   // observations in the current group
	deaths []int64 // current group's closes by reason
	dirty  []int   // reasons with closes in the current group

	all, fail curve
	by        []curve
	closed    []int64
	opened    int64
}

// newTable starts a table of total observations; their times are in unit.
func newTable(reasons []Reason, total int64, points []Point, unit time.Duration) *table {
	return &table{
		reasons: reasons, unit: unit, points: points, n: total,
		deaths: make([]int64, len(reasons)), by: make([]curve, len(reasons)), closed: make([]int64, len(reasons)),
	}
}

// add counts k observations of the current group with reason (openMark:
// censored).
func (tb *table) add(reason uint8, k int64) {
	tb.group += k
	tb.opened += k
	if reason == openMark {
		return
	}
	if tb.deaths[reason] == 0 {
		tb.dirty = append(tb.dirty, int(reason))
	}
	tb.deaths[reason] += k
	tb.closed[reason] += k
}

// endGroup applies the group at time t to every view and removes it from
// the risk set.
func (tb *table) endGroup(t int64) {
	var all, fail int64
	for _, r := range tb.dirty {
		d := tb.deaths[r]
		all += d
		if tb.reasons[r].Failure {
			fail += d
		}
		tb.step(&tb.by[r], t, d)
		tb.deaths[r] = 0
	}
	tb.dirty = tb.dirty[:0]
	tb.step(&tb.all, t, all)
	tb.step(&tb.fail, t, fail)
	tb.n -= tb.group
	tb.group = 0
}

// step applies d deaths at time t to c: the points before t keep the value
// S had until then.
func (tb *table) step(c *curve, t, d int64) {
	if d == 0 {
		return
	}
	if c.at == nil {
		c.s, c.median = 1, -1
		c.at = make([]float64, len(tb.points))
	}
	at := time.Duration(t) * tb.unit
	for c.next < len(tb.points) && tb.points[c.next].At < at {
		c.at[c.next] = c.s
		c.next++
	}
	c.s *= 1 - float64(d)/float64(tb.n)
	if c.median < 0 && c.s <= 0.5 {
		c.median = t
	}
}

// finish turns c into a Curve.
func (tb *table) finish(c *curve) Curve {
	out := Curve{S: make(map[string]float64, len(tb.points))}
	if c.at == nil { // no death: S is 1 everywhere
		for _, p := range tb.points {
			out.S[p.Label] = 1
		}
		return out
	}
	for i, p := range tb.points {
		v := c.s
		if i < c.next {
			v = c.at[i]
		}
		out.S[p.Label] = v
	}
	if c.median >= 0 {
		m := (time.Duration(c.median) * tb.unit).Seconds()
		out.MedianS = &m
	}
	return out
}

// summary builds the Summary once every group was added.
func (tb *table) summary(window time.Duration) Summary {
	s := Summary{WindowS: window.Seconds(), Opened: tb.opened, ByReason: make(map[string]ReasonCurve)}
	for r, n := range tb.closed {
		s.Closed += n
		if tb.reasons[r].Failure {
			s.Failed += n
		}
		if n > 0 {
			s.ByReason[tb.reasons[r].Name] = ReasonCurve{Closed: n, Curve: tb.finish(&tb.by[r])}
		}
	}
	if s.Opened > 0 {
		s.FailureRatio = float64(s.Failed) / float64(s.Opened)
	}
	s.Curve = tb.finish(&tb.all)
	s.Failures = tb.finish(&tb.fail)
	return s
}
