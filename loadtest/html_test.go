package loadtest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"html/template"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	us := time.Microsecond
	uniform := NewHistogram()
	for i := 1; i <= 1000; i++ {
		uniform.Record(time.Duration(i) * us)
	}
	for _, tc := range []struct {
		name  string
		h     *Histogram
		ticks int
		// want is the value at quantile q (within 1 µs).
		want func(q float64) time.Duration
	}{
		{"empty", NewHistogram(), 5, nil},
		{"one value", histOf(1, 7*us), 5, func(float64) time.Duration { return 7 * us }},
		{"uniform 1..1000 µs", uniform, 5, func(q float64) time.Duration { return max(us, time.Duration(math.Ceil(q*1000))*us) }},
		{"ticks below 1 count as 1", uniform, 0, func(q float64) time.Duration { return max(us, time.Duration(math.Ceil(q*1000))*us) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := tc.h.Percentiles(tc.ticks)
			if tc.h.Count() == 0 {
				if ps != nil {
					t.Fatalf("%d points for an empty histogram, want none", len(ps))
				}
				return
			}
			if len(ps) < 2 || ps[0].Quantile != 0 || ps[len(ps)-1].Quantile != 1 {
				t.Fatalf("points %v: want quantiles from 0 to 1", ps)
			}
			if last := ps[len(ps)-1].Value; last != tc.h.Max() {
				t.Errorf("last point %v, want the largest value %v", last, tc.h.Max())
			}
			var tail int
			for i, p := range ps {
				if i > 0 && (p.Quantile < ps[i-1].Quantile || p.Value < ps[i-1].Value) {
					t.Errorf("point %d %v after %v: not ascending", i, p, ps[i-1])
				}
				if w := tc.want(p.Quantile); p.Value < w-us || p.Value > w+us {
					t.Errorf("point %d: value %v at quantile %v, want %v", i, p.Value, p.Quantile, w)
				}
				if p.Quantile > 0.99 && p.Quantile < 1 {
					tail++
				}
			}
			if tc.h.Count() >= 1000 && tail < 2 {
				t.Errorf("%d points between 99%% and 100%%: the tail is not drawn", tail)
			}
		})
	}
	// More ticks per half distance: more points, the tail as finely drawn.
	if a, b := len(uniform.Percentiles(1)), len(uniform.Percentiles(5)); a >= b {
		t.Errorf("%d points with 1 tick, %d with 5: want more with more ticks", a, b)
	}
}

func TestChartHelpers(t *testing.T) {
	for _, tc := range []struct {
		raw, want float64
	}{{0.7, 1}, {1, 1}, {1.3, 2}, {2.2, 2.5}, {3, 5}, {7, 10}, {23, 25}, {180, 200}, {0.013, 0.02}, {0, 1}} {
		if got := niceStep(tc.raw); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("niceStep(%v) = %v, want %v", tc.raw, got, tc.want)
		}
	}
	for n, want := range []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"} {
		if got := ninesLabel(float64(n)); got != want {
			t.Errorf("ninesLabel(%d) = %q, want %q", n, got, want)
		}
	}
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-45678, "-45,678"}} {
		if got := fmtInt(tc.n); got != tc.want {
			t.Errorf("fmtInt(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	for _, tc := range []struct {
		hi, step, v float64
		want        string
	}{{100, 20, 40, "40"}, {3, 0.5, 2.5, "2.5"}, {125000, 25000, 75000, "75k"}, {12500, 2500, 7500, "7.5k"}, {2.5e6, 5e5, 1.5e6, "1.5M"}} {
		if got := plainLabels(tc.hi)(tc.step)(tc.v); got != tc.want {
			t.Errorf("label of %v (step %v, top %v) = %q, want %q", tc.v, tc.step, tc.hi, got, tc.want)
		}
	}
	for _, tc := range []struct {
		n    int64
		want int
	}{{1, 2}, {100, 2}, {101, 3}, {5000, 4}, {1e9, 6}} {
		if got := ninesFor(tc.n); got != tc.want {
			t.Errorf("ninesFor(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

// measuredReport is a publish run where every figure was measured.
func measuredReport() *Report {
	start := time.Date(2025, 3, 14, 10, 20, 30, 400e6, time.UTC)
	r := &Report{Target: "http://127.0.0.1:8080", Mode: "publish", Subs: 100, Topics: 4, Rate: 50, Batch: 1,
		Workers: 1, Started: start, ElapsedS: 6.2}
	lat, ttfb, tth, req := NewHistogram(), NewHistogram(), NewHistogram(), NewHistogram()
	var delivered, published int64
	for s := int64(1); s <= 6; s++ {
		smp := Sample{TS: float64(s) - 0.4, UnixMs: start.UnixMilli() + s*1000 - 400,
			Connected: min(s*40, 100), Established: min(s*40, 100)}
		if s >= 3 {
			iv := NewHistogram()
			for i := range 1250 {
				d := time.Duration(1000+i) * time.Microsecond
				iv.Record(d)
				lat.Record(d)
			}
			delivered += 1250
			published += 50
			smp.P99Us = int64(iv.Quantile(0.99) / time.Microsecond)
		}
		smp.Delivered = delivered
		p := published
		smp.Published = &p
		r.Timeline = append(r.Timeline, smp)
	}
	for i := range 100 {
		ttfb.Record(time.Duration(300+i) * time.Microsecond)
		tth.Record(time.Duration(320+i) * time.Microsecond)
	}
	for i := range 200 {
		req.Record(time.Duration(700+i) * time.Microsecond)
	}
	r.Connect = ConnectStats{Attempts: 100, OK: 100, Established: 100, TimeToFirstByte: ttfb, TimeToHeaders: tth}
	r.Streams = StreamStats{AliveAtEnd: 100, Survival: 1, IDOnly: 100, RetryHints: 100, RetryMinMs: 3000, RetryMaxMs: 3000}
	r.Delivery = DeliveryStats{Expected: delivered, Events: delivered, Delivered: delivered, Unique: delivered, PerSec: float64(delivered) / 4}
	r.Latency = lat
	r.Publish = &PublishStats{Topics: 4, Events: published, Published: published, Requests: published, DurationS: 4, RatePerSec: 50, MaxLagMs: 0.4, Request: req}
	r.Self = ProcessStats{Processes: 1, CPUSeconds: 1.5, MaxRSSKiB: 40960, MachineCores: 2}
	return r
}

// emptyReport is an idle run that established nothing, as finalize leaves
// it.
func emptyReport(target string) *Report {
	r := newReport(Config{URL: target, Subs: 3, Topics: 1, Idle: true})
	r.finalize(nil)
	return r
}

// TestWriteHTML checks the page's structure, not its looks: it is
// well-formed (its markup is also XML), self-contained, escapes the
// report's strings, has one figure per chart, and says "not measured"
// exactly where the run measured nothing.
func TestWriteHTML(t *testing.T) {
	const hostile = `http://127.0.0.1:1/x?a="><script>alert(1)</script><img src=x onerror=alert(2)>&b='c'`
	for _, tc := range []struct {
		name        string
		r           *Report
		svgs        int      // charts drawn
		notMeasured []string // markup that must be there: figures that read "not measured"
		measured    bool     // no figure at all reads "not measured"
	}{
		{name: "publish run", r: measuredReport(), svgs: 6, measured: true},
		{name: "idle run that established nothing", r: emptyReport(hostile), svgs: 0, notMeasured: []string{
			`<div class="label">delivered</div><div class="value nm">not measured</div>`,
			`<div class="label">loss</div><div class="value nm">not measured</div>`,
			`<div class="label">p99 latency</div><div class="value nm">not measured</div>`,
			`<div class="label">p99 first byte</div><div class="value nm">not measured</div>`,
			`<div class="missing">not measured: no values were recorded</div>`,
			`<div class="missing">not measured: idle run, nothing was published</div>`,
			`<tr><td>end-to-end latency</td><td class="nm" colspan="6">not measured</td></tr>`,
			`<tr><td>time to first byte</td><td class="nm" colspan="6">not measured</td></tr>`,
			`<tr><th>survival</th><td class="nm">not measured</td></tr>`,
			`<tr><th>loss</th><td class="nm">not measured</td></tr>`,
			`<tr><td class="nm" colspan="2">not measured: idle run, nothing was published</td></tr>`,
		}},
		{name: "no timeline", r: func() *Report { r := measuredReport(); r.Timeline = nil; return r }(), svgs: 2, notMeasured: []string{
			`<div class="missing">not measured: the report has no timeline samples</div>`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.r.WriteHTML(&b); err != nil {
				t.Fatalf("WriteHTML: %v", err)
			}
			page := b.String()
			elems := wellFormed(t, page)
			if elems["figure"] != 6 || elems["svg"] != tc.svgs {
				t.Errorf("%d figures and %d svg charts, want 6 and %d", elems["figure"], elems["svg"], tc.svgs)
			}
			if tc.svgs > 0 && elems["polyline"] < tc.svgs {
				t.Errorf("%d polylines in %d charts: some chart draws no line", elems["polyline"], tc.svgs)
			}
			for _, e := range []string{"script", "link", "img", "iframe", "object", "embed", "image", "use", "a"} {
				if elems[e] > 0 {
					t.Errorf("page has %d <%s> elements: want a self-contained page without scripts or links", elems[e], e)
				}
			}
			for _, s := range []string{"url(", "@import", "http-equiv"} {
				if strings.Contains(page, s) {
					t.Errorf("page contains %q", s)
				}
			}
			escaped := template.HTMLEscapeString(tc.r.Target)
			if !strings.Contains(page, escaped) {
				t.Errorf("target %q not shown", tc.r.Target)
			}
			if escaped != tc.r.Target && strings.Contains(page, tc.r.Target) {
				t.Errorf("target %q shown unescaped", tc.r.Target)
			}
			n := strings.Count(page, notMeasured)
			if tc.measured && n != 0 {
				t.Errorf("%d figures read %q in a run that measured everything", n, notMeasured)
			}
			for _, want := range tc.notMeasured {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %s", want)
				}
			}
		})
	}
}

// wellFormed parses page as XML and returns how many of each element it
// holds.
func wellFormed(t *testing.T, page string) map[string]int {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = true
	elems := map[string]int{}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line, _ := d.InputPos()
			t.Fatalf("page is not well-formed: %v\n%s", err, strings.Split(page, "\n")[line-1])
		}
		if se, ok := tok.(xml.StartElement); ok {
			elems[se.Name.Local]++
			for _, a := range se.Attr {
				if n := strings.ToLower(a.Name.Local); n == "src" || n == "href" || strings.HasPrefix(n, "on") {
					t.Errorf("<%s %s=%q>: the page must not load or run anything", se.Name.Local, a.Name.Local, a.Value)
				}
			}
		}
	}
	if elems["html"] != 1 || elems["body"] != 1 || elems["title"] != 1 {
		t.Errorf("page structure %v", elems)
	}
	return elems
}
