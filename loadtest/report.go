package loadtest

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is the result of a run: what the streams saw, what the publisher
// sent, and the figures derived from both. Reports of worker processes
// merge into one (Merge): counts add up, histograms merge.
type Report struct {
	// Scenario is the preset the run came from (capacity, fanout, topics,
	// storm) or "run" for one set by hand.
	Scenario  string    `json:"scenario,omitempty"`
	Target    string    `json:"target"`
	Mode      string    `json:"mode"` // "publish" or "idle"
	Subs      int       `json:"subs"`
	Topics    int       `json:"topics"`
	Rate      float64   `json:"rate,omitempty"`
	Batch     int       `json:"batch,omitempty"`
	Workers   int       `json:"workers"`
	Reconnect bool      `json:"reconnect"`
	Started   time.Time `json:"started"`
	ElapsedS  float64   `json:"elapsed_s"`

	// TopicsPerStream is Config.TopicsPerStream when above 1 (streams on
	// several topics at once).
	TopicsPerStream int `json:"topics_per_stream,omitempty"`

	Connect  ConnectStats  `json:"connect"`
	Streams  StreamStats   `json:"streams"`
	Delivery DeliveryStats `json:"delivery"`
	// Reconnects is what reconnecting streams (Config.Reconnect) did.
	Reconnects ReconnectStats `json:"reconnects"`
	// Storm is the fault injected during a storm run; nil otherwise.
	Storm *StormStats `json:"storm,omitempty"`
	// Nodes is what the target's processes (Config.NodePIDs) used; nil
	// when none were given.
	Nodes *NodeStats `json:"nodes,omitempty"`
	// Admin is what the target's admin API (Config.AdminURL) reported at
	// the start and the end; nil when not asked.
	Admin *AdminStats `json:"admin,omitempty"`
	// Latency is end to end per delivered event: receive time minus the
	// send time the publisher embedded (the moment its request was built).
	Latency *Histogram    `json:"latency"`
	Publish *PublishStats `json:"publish,omitempty"`
	// Self is what the load generator itself used.
	Self ProcessStats `json:"self"`
	// Timeline is the run sampled every Config.SampleEvery (see Sample).
	Timeline []Sample `json:"timeline,omitempty"`

	// Per topic, between a worker and its parent only: on-time streams and
	// the distinct events they received.
	TopicSubs   []int64 `json:"topic_subs,omitempty"`
	TopicUnique []int64 `json:"topic_unique,omitempty"`
}

// ConnectStats counts connection attempts.
type ConnectStats struct {
	Attempts    int64            `json:"attempts"`
	OK          int64            `json:"ok"`
	Failed      int64            `json:"failed"`
	FailReasons map[string]int64 `json:"fail_reasons,omitempty"` // by Reason
	HTTPStatus  map[string]int64 `json:"http_status,omitempty"`  // non-200 answers by code
	// Established streams got a 200 event stream at least once; Late ones
	// first got it after every stream had made its first attempt.
	Established int64 `json:"established"`
	Late        int64 `json:"late"`
	Reconnects  int64 `json:"reconnects"`
	// PeakAttemptsPerSec is the highest connect rate between two timeline
	// samples (first connects and reconnects): the wave the target took.
	PeakAttemptsPerSec float64 `json:"peak_attempts_per_sec"`
	// From the start of the dial to the first response byte, and to the
	// end of the response head.
	TimeToFirstByte *Histogram `json:"time_to_first_byte"`
	TimeToHeaders   *Histogram `json:"time_to_headers"`
}

// StreamStats is what the streams saw besides events.
type StreamStats struct {
	AliveAtEnd int64 `json:"alive_at_end"`
	// Survival is AliveAtEnd / Connect.Established.
	Survival float64          `json:"survival"`
	Drops    map[string]int64 `json:"drops,omitempty"` // streams that ended before the run, by Reason
	Resets   int64            `json:"resets"`          // "reset" events
	// OtherEvents are events of types other than message and reset.
	OtherEvents int64 `json:"other_events"`
	// Comments counts comment lines (heartbeats, goodbyes); IDOnly blocks
	// with an id and no data (the stream's start, id-only heartbeats).
	Comments   int64 `json:"comments"`
	IDOnly     int64 `json:"id_only"`
	RetryHints int64 `json:"retry_hints"`
	RetryMinMs int64 `json:"retry_min_ms"`
	RetryMaxMs int64 `json:"retry_max_ms"`
}

// DeliveryStats is what the streams received, against what was published.
type DeliveryStats struct {
	// Expected is, summed over topics, the events the target confirmed
	// times the streams subscribed on time (Connect.Late excluded).
	Expected int64 `json:"expected"`
	// Events are message events; Delivered those with a valid payload of
	// the stream's topic; Unique the distinct ones among them.
	Events    int64 `json:"events"`
	Delivered int64 `json:"delivered"`
	Unique    int64 `json:"unique"`
	// Loss is Expected minus the distinct events on-time streams received.
	Loss      int64   `json:"loss"`
	LossRatio float64 `json:"loss_ratio"`
	// PerSec is Delivered over the publishing time.
	PerSec     float64 `json:"per_sec"`
	Duplicates int64   `json:"duplicates"`
	Reordered  int64   `json:"out_of_order"`
	Gaps       int64   `json:"gaps"`    // jumps forward in a topic's sequence
	Missing    int64   `json:"missing"` // numbers skipped by those jumps that never arrived
	BadPayload int64   `json:"bad_payload"`
	Foreign    int64   `json:"foreign"` // payloads of another topic
}

// PublishStats is what the publisher did.
type PublishStats struct {
	Topics     int              `json:"topics"`
	Events     int64            `json:"events"`    // scheduled
	Published  int64            `json:"published"` // confirmed by the target
	Failed     int64            `json:"failed"`    // never confirmed, after every retry
	Retried    int64            `json:"retried"`   // events sent again (same idempotency keys) after an unknown outcome
	Requests   int64            `json:"requests"`
	Errors     map[string]int64 `json:"errors,omitempty"`
	DurationS  float64          `json:"duration_s"`
	RatePerSec float64          `json:"rate_per_sec"` // confirmed events per second
	MaxLagMs   float64          `json:"max_lag_ms"`   // worst delay of a request behind its schedule
	Request    *Histogram       `json:"request"`      // POST round trips

	perTopic []int64
}

// Merge adds the stream figures of o (another worker's report) to r.
func (r *Report) Merge(o *Report) {
	c, oc := &r.Connect, &o.Connect
	c.Attempts += oc.Attempts
	c.OK += oc.OK
	c.Failed += oc.Failed
	c.FailReasons = addMaps(c.FailReasons, oc.FailReasons)
	c.HTTPStatus = addMaps(c.HTTPStatus, oc.HTTPStatus)
	c.Established += oc.Established
	c.Late += oc.Late
	c.Reconnects += oc.Reconnects
	c.TimeToFirstByte = mergeHist(c.TimeToFirstByte, oc.TimeToFirstByte)
	c.TimeToHeaders = mergeHist(c.TimeToHeaders, oc.TimeToHeaders)

	s, os := &r.Streams, &o.Streams
	s.AliveAtEnd += os.AliveAtEnd
	s.Drops = addMaps(s.Drops, os.Drops)
	s.Resets += os.Resets
	s.OtherEvents += os.OtherEvents
	s.Comments += os.Comments
	s.IDOnly += os.IDOnly
	mergeRange(&s.RetryHints, &s.RetryMinMs, &s.RetryMaxMs, os.RetryHints, os.RetryMinMs, os.RetryMaxMs)

	d, od := &r.Delivery, &o.Delivery
	d.Events += od.Events
	d.Delivered += od.Delivered
	d.Unique += od.Unique
	d.Duplicates += od.Duplicates
	d.Reordered += od.Reordered
	d.Gaps += od.Gaps
	d.Missing += od.Missing
	d.BadPayload += od.BadPayload
	d.Foreign += od.Foreign

	r.Reconnects.merge(&o.Reconnects)
	r.Latency = mergeHist(r.Latency, o.Latency)
	r.Self.add(o.Self)
	r.mergeTimeline(o)
	r.TopicSubs = addSlices(r.TopicSubs, o.TopicSubs)
	r.TopicUnique = addSlices(r.TopicUnique, o.TopicUnique)
}

func addMaps(a, b map[string]int64) map[string]int64 {
	for k, v := range b {
		if a == nil {
			a = make(map[string]int64)
		}
		a[k] += v
	}
	return a
}

func addSlices(a, b []int64) []int64 {
	if len(b) > len(a) {
		a = append(a, make([]int64, len(b)-len(a))...)
	}
	for i, v := range b {
		a[i] += v
	}
	return a
}

func mergeHist(a, b *Histogram) *Histogram {
	if a == nil {
		a = NewHistogram()
	}
	a.Merge(b)
	return a
}

// finalize derives the figures that need the whole run: expected
// deliveries and loss from the publisher's per-topic counts, rates and
// survival. It drops the per-topic arrays.
func (r *Report) finalize(pub *PublishStats) {
	if r.Latency == nil {
		r.Latency = NewHistogram()
	}
	if r.Connect.TimeToFirstByte == nil {
		r.Connect.TimeToFirstByte = NewHistogram()
	}
	if r.Connect.TimeToHeaders == nil {
		r.Connect.TimeToHeaders = NewHistogram()
	}
	r.Reconnects.merge(&ReconnectStats{}) // no nil histograms
	r.Storm.waveFigures(&r.Reconnects)
	if r.Connect.Established > 0 {
		r.Streams.Survival = float64(r.Streams.AliveAtEnd) / float64(r.Connect.Established)
	}
	if pub != nil {
		r.Publish = pub
		var want, got int64
		for t, n := range pub.perTopic {
			if t < len(r.TopicSubs) {
				want += n * r.TopicSubs[t]
			}
		}
		for _, n := range r.TopicUnique {
			got += n
		}
		d := &r.Delivery
		d.Expected = want
		d.Loss = want - got
		if want > 0 {
			d.LossRatio = float64(d.Loss) / float64(want)
		}
		if pub.DurationS > 0 {
			d.PerSec = float64(d.Delivered) / pub.DurationS
		}
	}
	r.TopicSubs, r.TopicUnique = nil, nil
	r.finalizeTimeline()
}

// WriteText writes the report as a table for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	f := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	f("sseload %s (%s): target %s, %d streams on %d topic(s)", cmp.Or(r.Scenario, "run"), r.Mode, r.Target, r.Subs, r.Topics)
	if r.TopicsPerStream > 1 {
		f(" (%d per stream)", r.TopicsPerStream)
	}
	if r.Mode == "publish" {
		f(", %g events/s, batch %d", r.Rate, r.Batch)
	}
	f(", %d worker process(es), reconnect %v, elapsed %.1f s\n", max(r.Workers, 1), r.Reconnect, r.ElapsedS)

	c := &r.Connect
	f("\nconnect    attempts %d  ok %d  failed %d  established %d  late %d  reconnects %d  peak %.0f attempts/s\n",
		c.Attempts, c.OK, c.Failed, c.Established, c.Late, c.Reconnects, c.PeakAttemptsPerSec)
	if len(c.FailReasons) > 0 {
		f("           failures: %s\n", fmtCounts(c.FailReasons))
	}
	if len(c.HTTPStatus) > 0 {
		f("           http status: %s\n", fmtCounts(c.HTTPStatus))
	}
	f("           first byte   %s\n", fmtHist(c.TimeToFirstByte))
	f("           headers      %s\n", fmtHist(c.TimeToHeaders))

	s := &r.Streams
	f("streams    alive at end %d / established %d (survival %.2f%%)\n", s.AliveAtEnd, c.Established, 100*s.Survival)
	if len(s.Drops) > 0 {
		f("           drops: %s\n", fmtCounts(s.Drops))
	}
	f("           resets %d  other events %d  comments %d  id-only blocks %d  retry hints %d",
		s.Resets, s.OtherEvents, s.Comments, s.IDOnly, s.RetryHints)
	if s.RetryHints > 0 {
		f(" (%d..%d ms)", s.RetryMinMs, s.RetryMaxMs)
	}
	f("\n")

	if p := r.Publish; p != nil {
		f("publish    scheduled %d  confirmed %d  failed %d  retried %d  requests %d  %.1f events/s over %.1f s  max lag %.1f ms\n",
			p.Events, p.Published, p.Failed, p.Retried, p.Requests, p.RatePerSec, p.DurationS, p.MaxLagMs)
		if len(p.Errors) > 0 {
			f("           errors: %s\n", fmtCounts(p.Errors))
		}
		f("           request      %s\n", fmtHist(p.Request))
		d := &r.Delivery
		f("delivery   expected %d  delivered %d (%.0f/s)  unique %d  loss %d (%.4f%%)\n",
			d.Expected, d.Delivered, d.PerSec, d.Unique, d.Loss, 100*d.LossRatio)
		f("           duplicates %d  out-of-order %d  gaps %d (missing %d)  bad payload %d  foreign %d\n",
			d.Duplicates, d.Reordered, d.Gaps, d.Missing, d.BadPayload, d.Foreign)
		f("latency    %s\n", fmtHist(r.Latency))
	}
	if r.Reconnect || r.Reconnects.Resumed > 0 {
		r.Reconnects.writeText(f, c.Reconnects)
	}
	if r.Storm != nil {
		r.Storm.writeText(f)
	}
	if r.Nodes != nil {
		r.Nodes.writeText(f)
	}
	if r.Admin != nil {
		r.Admin.writeText(f)
	}
	f("sseload    %d process(es), %.2f CPU-s", r.Self.Processes, r.Self.CPUSeconds)
	if d := r.Delivery.Delivered; d > 0 {
		f(" (%.2f CPU-s per million events received)", r.Self.CPUSeconds/float64(d)*1e6)
	}
	f(", peak RSS %.1f MiB", float64(r.Self.MaxRSSKiB)/1024)
	if share := r.Self.busyShare(r.ElapsedS); share > 0 {
		f(", %.0f%% of the machine's %d cores on average", 100*share, r.Self.MachineCores)
		if share >= selfBoundShare {
			f("\n           WARNING: the load generator used most of the machine; delivered/s and latency may be its limit, not the target's (spread it over several processes or machines, or lower the load)")
		}
	}
	f("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtHist(h *Histogram) string {
	if h == nil || h.Count() == 0 {
		return "(none)"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)",
		fmtDur(h.Quantile(0.5)), fmtDur(h.Quantile(0.9)), fmtDur(h.Quantile(0.99)),
		fmtDur(h.Quantile(0.999)), fmtDur(h.Max()), h.Count())
}

// fmtDur prints a duration in milliseconds with three decimals.
func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}

func fmtCounts(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
