package loadtest

import (
	"cmp"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WriteHTML writes the report as one self-contained HTML page for people
// and bug reports: the key figures, charts drawn as inline SVG (latency and
// time-to-first-byte distributions over percentiles, delivered and
// published events per second, p99 latency per interval and connections
// over time, the last four from Timeline), the figures of WriteText as
// tables, and WriteText's own output. The page makes no external request
// and needs no JavaScript; every string of the report is escaped. A figure
// the run did not measure (latency of an idle run, a histogram without
// values, a survival ratio without streams) reads "not measured", never 0.
func (r *Report) WriteHTML(w io.Writer) error {
	v, err := newPageView(r)
	if err != nil {
		return err
	}
	if err := pageTmpl.Execute(w, v); err != nil {
		return fmt.Errorf("loadtest: write html report: %w", err)
	}
	return nil
}

// notMeasured is what the page shows for a figure the run did not measure.
const notMeasured = "not measured"

// pageView is what the page template shows: every figure already
// formatted, every chart coordinate computed.
type pageView struct {
	Title    string
	Target   string
	Subtitle string
	Cards    []cardView
	Charts   []chartView
	Tables   []tableView
	Dists    []distView
	Text     string // WriteText's output
}

// cardView is one key figure at the top of the page; Value "" is not
// measured.
type cardView struct {
	Label, Value, Detail string
}

// tableView is one section of the summary; Note replaces its rows when the
// whole section was not measured.
type tableView struct {
	Title string
	Note  string
	Rows  []rowView
}

// rowView is one figure; Value "" is not measured.
type rowView struct {
	Label, Value string
}

// distView is one histogram's row in the distribution table; Cells nil is
// not measured.
type distView struct {
	Name  string
	Cells []string
}

func newPageView(r *Report) (*pageView, error) {
	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		return nil, fmt.Errorf("loadtest: write html report: %w", err)
	}
	v := &pageView{
		Title:    "sseload " + cmp.Or(r.Scenario, "run") + " report: " + r.Target,
		Target:   r.Target,
		Subtitle: subtitle(r),
		Text:     text.String(),
	}
	v.Cards = cards(r)
	v.Charts = charts(r)
	v.Tables = tables(r)
	for _, d := range []struct {
		name string
		h    *Histogram
	}{
		{"end-to-end latency", r.Latency},
		{"time to first byte", r.Connect.TimeToFirstByte},
		{"time to response head", r.Connect.TimeToHeaders},
		{"publish request", publishRequests(r)},
	} {
		dv := distView{Name: d.name}
		if histCount(d.h) > 0 {
			h := d.h
			dv.Cells = []string{
				fmtMs(h.Quantile(0.5)), fmtMs(h.Quantile(0.9)), fmtMs(h.Quantile(0.99)),
				fmtMs(h.Quantile(0.999)), fmtMs(h.Max()), fmtInt(h.Count()),
			}
		}
		v.Dists = append(v.Dists, dv)
	}
	return v, nil
}

func publishRequests(r *Report) *Histogram {
	if r.Publish == nil {
		return nil
	}
	return r.Publish.Request
}

func histCount(h *Histogram) int64 {
	if h == nil || h.h == nil {
		return 0
	}
	return h.Count()
}

func subtitle(r *Report) string {
	s := fmt.Sprintf("%s run, %s streams on %s topic(s)", r.Mode, fmtInt(int64(r.Subs)), fmtInt(int64(r.Topics)))
	if r.TopicsPerStream > 1 {
		s += fmt.Sprintf(" (%d per stream)", r.TopicsPerStream)
	}
	if r.Mode == "publish" {
		s += fmt.Sprintf(", %s events/s in batches of up to %d", fmtFloat(r.Rate), r.Batch)
	}
	s += fmt.Sprintf(", %d worker process(es), reconnect %s", max(r.Workers, 1), yesNo(r.Reconnect))
	if !r.Started.IsZero() {
		s += ", started " + r.Started.Format("2006-01-02 15:04:05 MST")
	}
	return s + fmt.Sprintf(", %.1f s", r.ElapsedS)
}

func cards(r *Report) []cardView {
	c, d := &r.Connect, &r.Delivery
	out := []cardView{
		{Label: "established", Value: fmtInt(c.Established), Detail: "of " + fmtInt(int64(r.Subs)) + " streams asked"},
		{Label: "alive at end", Value: fmtInt(r.Streams.AliveAtEnd)},
	}
	if c.Established > 0 {
		out[1].Detail = fmt.Sprintf("survival %.2f%%", 100*r.Streams.Survival)
	}
	if r.Publish != nil {
		out = append(out,
			cardView{Label: "delivered", Value: fmtInt(d.Delivered), Detail: fmtFloat(math.Round(d.PerSec)) + " events/s"},
			cardView{Label: "loss", Value: fmtInt(d.Loss), Detail: fmt.Sprintf("%.4f%% of %s expected", 100*d.LossRatio, fmtInt(d.Expected))})
	} else {
		out = append(out, cardView{Label: "delivered"}, cardView{Label: "loss"})
	}
	lat := cardView{Label: "p99 latency"}
	if histCount(r.Latency) > 0 {
		lat.Value, lat.Detail = fmtMs(r.Latency.Quantile(0.99)), "max "+fmtMs(r.Latency.Max())
	}
	ttfb := cardView{Label: "p99 first byte"}
	if h := c.TimeToFirstByte; histCount(h) > 0 {
		ttfb.Value, ttfb.Detail = fmtMs(h.Quantile(0.99)), "max "+fmtMs(h.Max())
	}
	return append(out, lat, ttfb)
}

func tables(r *Report) []tableView {
	c, s, d := &r.Connect, &r.Streams, &r.Delivery
	publishing := r.Publish != nil
	run := tableView{Title: "Run", Rows: []rowView{
		{"target", r.Target},
		{"scenario", cmp.Or(r.Scenario, "run")},
		{"mode", r.Mode},
		{"streams", fmtInt(int64(r.Subs))},
		{"topics", fmtInt(int64(r.Topics))},
	}}
	if r.TopicsPerStream > 1 {
		run.Rows = append(run.Rows, rowView{"topics per stream", fmtInt(int64(r.TopicsPerStream))})
	}
	if r.Mode == "publish" {
		run.Rows = append(run.Rows, rowView{"rate", fmtFloat(r.Rate) + " events/s"}, rowView{"batch", strconv.Itoa(r.Batch)})
	} else {
		run.Rows = append(run.Rows, rowView{"rate", "none (idle: holds streams only)"})
	}
	run.Rows = append(run.Rows,
		rowView{"worker processes", strconv.Itoa(max(r.Workers, 1))},
		rowView{"reconnect", yesNo(r.Reconnect)},
		rowView{"started", fmtTime(r.Started)},
		rowView{"elapsed", fmt.Sprintf("%.1f s", r.ElapsedS)},
	)

	conn := tableView{Title: "Connect", Rows: []rowView{
		{"attempts", fmtInt(c.Attempts)},
		{"ok", fmtInt(c.OK)},
		{"failed", fmtInt(c.Failed)},
		{"established", fmtInt(c.Established)},
		{"late (after the ramp)", fmtInt(c.Late)},
		{"reconnects", fmtInt(c.Reconnects)},
		{"failures", countsOrNone(c.FailReasons)},
		{"non-200 answers", countsOrNone(c.HTTPStatus)},
	}}

	streams := tableView{Title: "Streams", Rows: []rowView{
		{"alive at end", fmtInt(s.AliveAtEnd)},
		{"survival", ifMeasured(c.Established > 0, fmt.Sprintf("%.2f%%", 100*s.Survival))},
		{"drops", countsOrNone(s.Drops)},
		{"reset events", fmtInt(s.Resets)},
		{"other events", fmtInt(s.OtherEvents)},
		{"comments", fmtInt(s.Comments)},
		{"id-only blocks", fmtInt(s.IDOnly)},
		{"retry hints", fmtInt(s.RetryHints)},
		{"retry range", ifMeasured(s.RetryHints > 0, fmt.Sprintf("%d..%d ms", s.RetryMinMs, s.RetryMaxMs))},
	}}

	pub := tableView{Title: "Publish", Note: nothingPublished(r)}
	if p := r.Publish; p != nil {
		pub.Note = ""
		pub.Rows = []rowView{
			{"scheduled", fmtInt(p.Events)},
			{"confirmed", fmtInt(p.Published)},
			{"failed", fmtInt(p.Failed)},
			{"requests", fmtInt(p.Requests)},
			{"confirmed rate", fmt.Sprintf("%.1f events/s", p.RatePerSec)},
			{"duration", fmt.Sprintf("%.1f s", p.DurationS)},
			{"max lag behind schedule", fmt.Sprintf("%.1f ms", p.MaxLagMs)},
			{"errors", countsOrNone(p.Errors)},
		}
	}

	del := tableView{Title: "Delivery", Rows: []rowView{
		{"expected", ifMeasured(publishing, fmtInt(d.Expected))},
		{"message events", fmtInt(d.Events)},
		{"delivered", fmtInt(d.Delivered)},
		{"delivered per second", ifMeasured(publishing && d.PerSec > 0, fmtFloat(math.Round(d.PerSec))+"/s")},
		{"unique", fmtInt(d.Unique)},
		{"loss", ifMeasured(publishing, fmt.Sprintf("%s (%.4f%%)", fmtInt(d.Loss), 100*d.LossRatio))},
		{"duplicates", fmtInt(d.Duplicates)},
		{"out of order", fmtInt(d.Reordered)},
		{"gaps (missing)", fmt.Sprintf("%s (%s)", fmtInt(d.Gaps), fmtInt(d.Missing))},
		{"bad payload", fmtInt(d.BadPayload)},
		{"foreign topic", fmtInt(d.Foreign)},
	}}

	self := tableView{Title: "sseload itself", Rows: []rowView{
		{"processes", strconv.Itoa(r.Self.Processes)},
		{"CPU time", ifMeasured(r.Self.Processes > 0, fmt.Sprintf("%.2f s", r.Self.CPUSeconds))},
		{"CPU per million events received", ifMeasured(r.Self.Processes > 0 && d.Delivered > 0,
			fmt.Sprintf("%.2f s", r.Self.CPUSeconds/float64(d.Delivered)*1e6))},
		{"peak RSS (sum over processes)", ifMeasured(r.Self.MaxRSSKiB > 0, fmt.Sprintf("%.1f MiB", float64(r.Self.MaxRSSKiB)/1024))},
		{"share of the machine's cores, on average", ifMeasured(r.Self.busyShare(r.ElapsedS) > 0,
			fmt.Sprintf("%.0f%% of %d", 100*r.Self.busyShare(r.ElapsedS), r.Self.MachineCores))},
	}}
	return []tableView{run, conn, streams, pub, del, self}
}

func ifMeasured(ok bool, s string) string {
	if !ok {
		return ""
	}
	return s
}

func countsOrNone(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+" "+fmtInt(m[k]))
	}
	return strings.Join(parts, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02 15:04:05.000 MST")
}

// fmtMs is a duration in milliseconds with three decimals, as WriteText
// prints it.
func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

// fmtInt writes n with thousands separators.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtFloat writes x without exponent, integers with separators.
func fmtFloat(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return fmtInt(int64(x))
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// Charts.

// Chart geometry, in SVG user units; the page scales the SVG to its box.
const (
	chartW      = 560
	chartH      = 300
	chartLeft   = 64
	chartRight  = 36 // room for the last x label
	chartTop    = 40
	chartBottom = 48
)

// chartView is one chart, ready to draw; Missing, when set, says why there
// is nothing to draw.
type chartView struct {
	Title, Caption string
	Missing        string
	W, H           int
	// Plot area.
	X0, X1, Y0, Y1 string // left, right, bottom, top
	XMid, YMidNeg  string // the axis labels' centres (y rotated: negated)
	TickEnd        string // the bottom end of the x tick marks
	XLabel, YLabel string
	XTicks, YTicks []tickView
	Series         []seriesView
}

// tickView is one tick: its position on its axis and its label.
type tickView struct {
	Pos, Label string
}

// seriesView is one line of a chart: polylines (a gap in the data breaks
// the line), lone points drawn as dots, and its legend entry.
type seriesView struct {
	Name, Class string
	Lines       []string // SVG points lists
	Dots        []pointView
	// The legend entry: a short line from KeyX0 to KeyX1, then the name
	// at NameX.
	KeyX0, KeyX1, NameX string
}

type pointView struct{ X, Y string }

// scale maps a data interval onto a pixel interval, with its ticks.
type scale struct {
	lo, hi float64
	p0, p1 float64
	ticks  []float64
	label  func(float64) string
}

func (s scale) at(v float64) float64 {
	if s.hi == s.lo {
		return s.p0
	}
	return s.p0 + (v-s.lo)/(s.hi-s.lo)*(s.p1-s.p0)
}

// plotSeries is one data series; a NaN y breaks the line.
type plotSeries struct {
	name, class string
	x, y        []float64
}

func px(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// newChart lays the series out on the scales.
func newChart(title, caption, xLabel, yLabel string, xs, ys scale, series []plotSeries) chartView {
	cv := chartView{
		Title: title, Caption: caption, W: chartW, H: chartH,
		X0: px(xs.p0), X1: px(xs.p1), Y0: px(ys.p0), Y1: px(ys.p1),
		XMid: px((xs.p0 + xs.p1) / 2), YMidNeg: px(-(ys.p0 + ys.p1) / 2), TickEnd: px(ys.p0 + 5),
		XLabel: xLabel, YLabel: yLabel,
	}
	for _, t := range xs.ticks {
		cv.XTicks = append(cv.XTicks, tickView{Pos: px(xs.at(t)), Label: xs.label(t)})
	}
	for _, t := range ys.ticks {
		cv.YTicks = append(cv.YTicks, tickView{Pos: px(ys.at(t)), Label: ys.label(t)})
	}
	legendX := float64(chartLeft)
	for _, s := range series {
		sv := seriesView{Name: s.name, Class: s.class, KeyX0: px(legendX), KeyX1: px(legendX + 22), NameX: px(legendX + 28)}
		legendX += 28 + 6*float64(len([]rune(s.name))) + 22
		var run []string
		var lone pointView
		flush := func() {
			switch len(run) {
			case 0:
			case 1:
				sv.Dots = append(sv.Dots, lone)
			default:
				sv.Lines = append(sv.Lines, strings.Join(run, " "))
			}
			run = nil
		}
		for i := range s.x {
			if math.IsNaN(s.y[i]) {
				flush()
				continue
			}
			x, y := px(xs.at(s.x[i])), px(ys.at(s.y[i]))
			lone = pointView{X: x, Y: y}
			run = append(run, x+","+y)
		}
		flush()
		cv.Series = append(cv.Series, sv)
	}
	return cv
}

// missingChart is a chart with nothing to draw.
func missingChart(title, caption, why string) chartView {
	return chartView{Title: title, Caption: caption, Missing: why}
}

func xPixels() (float64, float64) { return chartLeft, chartW - chartRight }
func yPixels() (float64, float64) { return chartH - chartBottom, chartTop }

// linearScale spans [0, hi] (or [lo, hi]) with about n round ticks; the
// domain is widened to whole ticks. integer keeps ticks on integers
// (counts of streams).
func linearScale(lo, hi float64, n int, integer bool, p0, p1 float64, unit func(step float64) func(float64) string) scale {
	if !(hi > lo) {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / float64(n))
	if integer {
		step = max(step, 1)
	}
	s := scale{lo: math.Floor(lo/step) * step, p0: p0, p1: p1}
	k := math.Ceil(hi/step - 1e-9)
	s.hi = k * step
	for i := math.Floor(lo / step); i <= k; i++ {
		s.ticks = append(s.ticks, i*step)
	}
	s.label = unit(step)
	return s
}

// niceStep rounds raw up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if !(raw > 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// decimals is how many decimals print every multiple of step exactly.
func decimals(step float64) int {
	for d := 0; d < 9; d++ {
		x := step * math.Pow(10, float64(d))
		if math.Abs(x-math.Round(x)) < 1e-6*math.Max(1, x) {
			return d
		}
	}
	return 9
}

// plainLabels prints tick values as numbers, large ones with k or M.
func plainLabels(hi float64) func(step float64) func(float64) string {
	return func(step float64) func(float64) string {
		div, suffix := 1.0, ""
		switch {
		case hi >= 1e6:
			div, suffix = 1e6, "M"
		case hi >= 1e4:
			div, suffix = 1e3, "k"
		}
		d := decimals(step / div)
		return func(v float64) string {
			if v == 0 {
				return "0"
			}
			// Round to the step's decimals, then drop trailing zeros: 2.5k, 5k.
			x, _ := strconv.ParseFloat(strconv.FormatFloat(v/div, 'f', d, 64), 64)
			return strconv.FormatFloat(x, 'f', -1, 64) + suffix
		}
	}
}

// durationUnit picks the unit that prints durations up to max readably.
func durationUnit(maxD time.Duration) (name string, unit time.Duration) {
	switch {
	case maxD < 2*time.Millisecond:
		return "µs", time.Microsecond
	case maxD < 20*time.Second:
		return "ms", time.Millisecond
	default:
		return "s", time.Second
	}
}

// Percentile ("nines") axis: x = -log10(1-q), so 90% is 1, 99% is 2,
// 99.9% is 3: the tail gets as much room as the body, as in HdrHistogram's
// plots.

func nines(q float64) float64 {
	if q >= 1 {
		return math.Inf(1)
	}
	return -math.Log10(1 - q)
}

func ninesLabel(n float64) string {
	switch k := int(math.Round(n)); {
	case k <= 0:
		return "0%"
	case k == 1:
		return "90%"
	case k == 2:
		return "99%"
	default:
		return "99." + strings.Repeat("9", k-2) + "%"
	}
}

// ninesFor is how many nines a histogram of n values can show: the last
// one is its largest value.
func ninesFor(n int64) int {
	return min(max(int(math.Ceil(math.Log10(float64(max(n, 1))))), 2), 6)
}

// distributionChart draws histograms as value against percentile.
func distributionChart(title, caption, yName string, hs []*Histogram, names []string) chartView {
	var n int64
	var maxD time.Duration
	for _, h := range hs {
		if histCount(h) > 0 {
			n = max(n, h.Count())
			maxD = max(maxD, h.Max())
		}
	}
	if n == 0 {
		return missingChart(title, caption, notMeasured+": no values were recorded")
	}
	top := ninesFor(n)
	x0, x1 := xPixels()
	xs := scale{lo: 0, hi: float64(top), p0: x0, p1: x1, label: ninesLabel}
	for k := 0; k <= top; k++ {
		xs.ticks = append(xs.ticks, float64(k))
	}
	unitName, unit := durationUnit(maxD)
	y0, y1 := yPixels()
	ys := linearScale(0, float64(maxD)/float64(unit), 5, false, y0, y1, plainLabels(0))
	var series []plotSeries
	for i, h := range hs {
		if histCount(h) == 0 {
			continue
		}
		s := plotSeries{name: names[i], class: "s" + strconv.Itoa(i)}
		for _, p := range h.Percentiles(5) {
			s.x = append(s.x, min(nines(p.Quantile), float64(top)))
			s.y = append(s.y, float64(p.Value)/float64(unit))
		}
		series = append(series, s)
	}
	return newChart(title, caption, "percentile", yName+" ("+unitName+")", xs, ys, series)
}

// timeAxis is the x axis shared by the time charts, so they line up.
func timeAxis(r *Report) scale {
	hi := r.ElapsedS
	if n := len(r.Timeline); n > 0 {
		hi = max(hi, r.Timeline[n-1].TS)
	}
	x0, x1 := xPixels()
	var s scale
	if hi > 180 { // whole minutes read better
		s = linearScale(0, hi/60, 6, true, x0, x1, plainLabels(0))
		s.lo, s.hi = s.lo*60, s.hi*60
		for i := range s.ticks {
			s.ticks[i] *= 60
		}
		inner := s.label
		s.label = func(v float64) string { return inner(v / 60) }
		return s
	}
	return linearScale(0, hi, 6, true, x0, x1, plainLabels(0))
}

func timeLabel(s scale) string {
	if s.hi > 180 {
		return "time since start (min)"
	}
	return "time since start (s)"
}

// timeChart draws series over the run's time, with y from 0.
func timeChart(r *Report, title, caption, yLabel string, integer bool, series []plotSeries) chartView {
	xs := timeAxis(r)
	hi := 0.0
	for _, s := range series {
		for _, y := range s.y {
			if !math.IsNaN(y) {
				hi = max(hi, y)
			}
		}
	}
	y0, y1 := yPixels()
	ys := linearScale(0, hi*1.04, 5, integer, y0, y1, plainLabels(hi*1.04))
	return newChart(title, caption, timeLabel(xs), yLabel, xs, ys, series)
}

// rates returns, per sample after the first, the increase of value per
// second since the previous sample (NaN where either is missing).
func rates(tl []Sample, value func(Sample) (float64, bool)) (x, y []float64) {
	for i := 1; i < len(tl); i++ {
		a, aok := value(tl[i-1])
		b, bok := value(tl[i])
		dt := float64(tl[i].UnixMs-tl[i-1].UnixMs) / 1000
		x = append(x, tl[i].TS)
		if !aok || !bok || dt <= 0 {
			y = append(y, math.NaN())
			continue
		}
		y = append(y, (b-a)/dt)
	}
	return x, y
}

// flat is a reference line at y over the time axis.
func flat(r *Report, name string, y float64) plotSeries {
	xs := timeAxis(r)
	return plotSeries{name: name, class: "ref", x: []float64{xs.lo, xs.hi}, y: []float64{y, y}}
}

// nothingPublished says why a run has no publish figures: an idle run, or
// one that stopped before publishing (no stream could be established).
func nothingPublished(r *Report) string {
	if r.Mode == "idle" {
		return notMeasured + ": idle run, nothing was published"
	}
	return notMeasured + ": nothing was published"
}

func charts(r *Report) []chartView {
	tl := r.Timeline
	idle := r.Publish == nil
	const noTimeline = notMeasured + ": the report has no timeline samples"
	idleRun := nothingPublished(r)
	var out []chartView

	out = append(out, distributionChart("Latency distribution",
		"End to end per delivered event: receive time minus send time.", "latency",
		[]*Histogram{r.Latency}, []string{"end-to-end latency"}))
	out = append(out, distributionChart("Connection setup",
		"From the start of the dial to the first response byte, and to the response head's end.", "time",
		[]*Histogram{r.Connect.TimeToFirstByte, r.Connect.TimeToHeaders}, []string{"first byte", "response head"}))

	const delTitle, delCaption = "Delivered events per second", "Events received by all streams, per sampling interval."
	switch {
	case idle:
		out = append(out, missingChart(delTitle, delCaption, idleRun))
	case len(tl) < 2:
		out = append(out, missingChart(delTitle, delCaption, noTimeline))
	default:
		x, y := rates(tl, func(s Sample) (float64, bool) { return float64(s.Delivered), true })
		series := []plotSeries{{name: "delivered/s", class: "s0", x: x, y: y}}
		if r.Rate > 0 && r.Topics > 0 {
			perTopic := float64(r.Subs) * float64(max(r.TopicsPerStream, 1)) / float64(r.Topics)
			series = append(series, flat(r, "offered (rate × streams per topic)", r.Rate*perTopic))
		}
		out = append(out, timeChart(r, delTitle, delCaption, "events/s", false, series))
	}

	const p99Title, p99Caption = "p99 latency over time", "99th percentile end-to-end latency of the events delivered in each interval."
	var p99x, p99y []float64
	var anyP99 bool
	var maxP99 time.Duration
	for _, s := range tl {
		maxP99 = max(maxP99, time.Duration(s.P99Us)*time.Microsecond)
	}
	unitName, unit := durationUnit(maxP99)
	for _, s := range tl {
		p99x = append(p99x, s.TS)
		if s.P99Us > 0 {
			anyP99 = true
			p99y = append(p99y, float64(time.Duration(s.P99Us)*time.Microsecond)/float64(unit))
		} else {
			p99y = append(p99y, math.NaN())
		}
	}
	switch {
	case idle:
		out = append(out, missingChart(p99Title, p99Caption, idleRun))
	case len(tl) == 0:
		out = append(out, missingChart(p99Title, p99Caption, noTimeline))
	case !anyP99:
		out = append(out, missingChart(p99Title, p99Caption, notMeasured+": no event was delivered"))
	default:
		out = append(out, timeChart(r, p99Title, p99Caption, "p99 latency ("+unitName+")", false,
			[]plotSeries{{name: "p99 per interval", class: "s1", x: p99x, y: p99y}}))
	}

	const connTitle, connCaption = "Connections", "Streams connected at each sample; streams established at least once so far."
	if len(tl) == 0 {
		out = append(out, missingChart(connTitle, connCaption, noTimeline))
	} else {
		var x, conn, est []float64
		for _, s := range tl {
			x = append(x, s.TS)
			conn = append(conn, float64(s.Connected))
			est = append(est, float64(s.Established))
		}
		out = append(out, timeChart(r, connTitle, connCaption, "streams", true, []plotSeries{
			{name: "established", class: "s2", x: x, y: est},
			{name: "connected", class: "s0", x: x, y: conn}, // drawn last: on top
			flat(r, "asked for", float64(r.Subs)),
		}))
	}

	const pubTitle, pubCaption = "Published events per second", "Events the target confirmed, per sampling interval."
	switch {
	case idle:
		out = append(out, missingChart(pubTitle, pubCaption, idleRun))
	case len(tl) < 2:
		out = append(out, missingChart(pubTitle, pubCaption, noTimeline))
	default:
		x, y := rates(tl, func(s Sample) (float64, bool) {
			if s.Published == nil {
				return 0, false
			}
			return float64(*s.Published), true
		})
		series := []plotSeries{{name: "confirmed/s", class: "s3", x: x, y: y}}
		if r.Rate > 0 {
			series = append(series, flat(r, "scheduled rate", r.Rate))
		}
		out = append(out, timeChart(r, pubTitle, pubCaption, "events/s", false, series))
	}
	return out
}

// pageTmpl is the page. Its markup is also well-formed XML (every element
// closed, no named entities besides XML's), which the tests check.
var pageTmpl = template.Must(template.New("report").Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{{.Title}}</title>
<style>
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; font-weight: 600; }
h2 { font-size: 16px; margin: 32px 0 12px; font-weight: 600; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
h3 { font-size: 14px; margin: 0; font-weight: 600; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.target { font-size: 15px; color: var(--accent); word-break: break-all; }
.sub { color: var(--muted); margin: 4px 0 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(175px, 1fr)); gap: 12px; margin-top: 20px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: var(--soft); }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; margin-top: 2px; }
.card .detail { color: var(--muted); font-size: 12px; }
.nm { color: #9a6700; font-style: italic; font-weight: 400; }
.card .value.nm { font-size: 16px; padding: 5px 0 3px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px 6px; }
figcaption p { margin: 2px 0 4px; min-height: 1.45em; color: var(--muted); font-size: 12px; }
svg { display: block; width: 100%; height: auto; }
.missing { aspect-ratio: 560 / 300; display: flex; align-items: center; justify-content: center; color: #9a6700; font-style: italic; background: var(--soft); border-radius: 6px; margin: 8px 0; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; font-size: 11px; fill: var(--muted); }
svg .axis { stroke: #8c959f; stroke-width: 1; }
svg .grid { stroke: #eaeef2; stroke-width: 1; }
svg .lbl { fill: var(--fg); font-size: 12px; }
svg polyline { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
svg .s0 { stroke: #0969da; fill: #0969da; }
svg .s1 { stroke: #cf222e; fill: #cf222e; }
svg .s2 { stroke: #1a7f37; fill: #1a7f37; }
svg .s3 { stroke: #8250df; fill: #8250df; }
svg .ref { stroke: #8c959f; fill: #8c959f; stroke-dasharray: 5 4; }
svg polyline.s0, svg polyline.s1, svg polyline.s2, svg polyline.s3, svg polyline.ref, svg line.key { fill: none; }
svg polyline.ref { stroke-width: 1.5; }
svg line.key { stroke-width: 2.5; }
.tables { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 16px; align-items: start; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 0 0 6px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { text-align: left; font-weight: 400; color: var(--muted); width: 48%; }
td { text-align: right; word-break: break-word; }
table.dist th, table.dist td { text-align: right; width: auto; }
table.dist th:first-child, table.dist td:first-child { text-align: left; }
td.nm[colspan] { text-align: left; }
table.dist thead th { color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line); }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; overflow-x: auto; line-height: 1.4; }
footer { margin-top: 28px; color: var(--muted); font-size: 12px; }
</style>
</head>
<body>
<main>
<header>
<h1>sseload report</h1>
<div class="target"><code>{{.Target}}</code></div>
<p class="sub">{{.Subtitle}}</p>
</header>

<section class="cards">
{{- range .Cards}}
<div class="card"><div class="label">{{.Label}}</div>{{if .Value}}<div class="value">{{.Value}}</div><div class="detail">{{.Detail}}</div>{{else}}<div class="value nm">not measured</div>{{end}}</div>
{{- end}}
</section>

<h2>Charts</h2>
<section class="charts">
{{- range .Charts}}
<figure>
<figcaption><h3>{{.Title}}</h3><p>{{.Caption}}</p></figcaption>
{{- if .Missing}}
<div class="missing">{{.Missing}}</div>
{{- else}}
{{template "chart" .}}
{{- end}}
</figure>
{{- end}}
</section>

<h2>Distributions</h2>
<table class="dist">
<thead><tr><th>measure</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>values</th></tr></thead>
<tbody>
{{- range .Dists}}
<tr><td>{{.Name}}</td>{{if .Cells}}{{range .Cells}}<td>{{.}}</td>{{end}}{{else}}<td class="nm" colspan="6">not measured</td>{{end}}</tr>
{{- end}}
</tbody>
</table>

<h2>Figures</h2>
<section class="tables">
{{- range .Tables}}
<table>
<caption>{{.Title}}</caption>
<tbody>
{{- if .Note}}
<tr><td class="nm" colspan="2">{{.Note}}</td></tr>
{{- end}}
{{- range .Rows}}
<tr><th>{{.Label}}</th>{{if .Value}}<td>{{.Value}}</td>{{else}}<td class="nm">not measured</td>{{end}}</tr>
{{- end}}
</tbody>
</table>
{{- end}}
</section>

<h2>Text report</h2>
<pre>{{.Text}}</pre>

<footer>Written by sseload. The JSON report (--json) holds the same figures, the whole histograms (HdrHistogram V2) and the timeline.</footer>
</main>
</body>
</html>
{{define "chart"}}<svg viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="{{.Title}}">
<g>
{{- range .YTicks}}
<line class="grid" x1="{{$.X0}}" x2="{{$.X1}}" y1="{{.Pos}}" y2="{{.Pos}}"/>
<text x="{{$.X0}}" y="{{.Pos}}" dx="-6" dy="0.32em" text-anchor="end">{{.Label}}</text>
{{- end}}
{{- range .XTicks}}
<line class="grid" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$.Y0}}" y2="{{$.Y1}}"/>
<line class="axis" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$.Y0}}" y2="{{$.TickEnd}}"/>
<text x="{{.Pos}}" y="{{$.Y0}}" dy="16" text-anchor="middle">{{.Label}}</text>
{{- end}}
<line class="axis" x1="{{.X0}}" x2="{{.X1}}" y1="{{.Y0}}" y2="{{.Y0}}"/>
<line class="axis" x1="{{.X0}}" x2="{{.X0}}" y1="{{.Y0}}" y2="{{.Y1}}"/>
</g>
{{- range .Series}}
<g>
{{- $class := .Class}}
{{- range .Lines}}
<polyline class="{{$class}}" points="{{.}}"/>
{{- end}}
{{- range .Dots}}
<circle class="{{$class}}" cx="{{.X}}" cy="{{.Y}}" r="2.5"/>
{{- end}}
</g>
{{- end}}
<g>
{{- range .Series}}
<line class="key {{.Class}}" x1="{{.KeyX0}}" x2="{{.KeyX1}}" y1="16" y2="16"/>
<text x="{{.NameX}}" y="16" dy="0.32em">{{.Name}}</text>
{{- end}}
</g>
<text class="lbl" x="{{.XMid}}" y="{{.H}}" dy="-8" text-anchor="middle">{{.XLabel}}</text>
<text class="lbl" transform="rotate(-90)" x="{{.YMidNeg}}" y="14" text-anchor="middle">{{.YLabel}}</text>
</svg>{{end}}
`
