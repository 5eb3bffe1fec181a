package admin

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ssecluster/ssecluster/internal/apierr"
	"github.com/ssecluster/ssecluster/node"
)

// newMetrics returns the registry GET /metrics exposes: the node's figures
// (nodeCollector), the Go runtime's and the process's. A registry per
// server, never prometheus.DefaultRegisterer: no global state, and two
// nodes of one test process do not collide.
func newMetrics(n Node, now func() time.Time, adminRejected *apierr.Counts) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	nc := newNodeCollector(n, now)
	nc.adminRejected = adminRejected
	reg.MustRegister(
		nc,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// latencyBuckets are the upper bounds (seconds) of the exported push
// latency histogram.
var latencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

// nodeCollector builds the node's metrics at scrape time from its report
// and its since-start push latency histogram, so the hot path records each
// figure once (in the node) and nothing is kept twice.
type nodeCollector struct {
	node          Node
	now           func() time.Time
	adminRejected *apierr.Counts // the admin listener's error answers

	info, conns, opened, closed, refused, deliveries, published, latency,
	cacheHits, cacheMisses, brokerReads, resets, cacheEntries, cacheBytes,
	brokerUp, readLag, brokerErrors, draining, rejected *prometheus.Desc
}

func newNodeCollector(n Node, now func() time.Time) *nodeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("ssecluster_"+name, help, labels, nil)
	}
	return &nodeCollector{
		node:         n,
		now:          now,
		info:         d("node_info", "Always 1; the node's id and version as labels.", "node_id", "version"),
		conns:        d("connections", "Streams open now."),
		opened:       d("connections_opened_total", "Streams opened since the node started."),
		closed:       d("connections_closed_total", "Streams closed since the node started, by close reason.", "reason"),
		refused:      d("connections_refused_total", "Connection attempts answered without a stream, by refusal.", "refusal"),
		deliveries:   d("deliveries_total", "Events written to streams (one per event and subscriber)."),
		published:    d("published_total", "Events accepted by POST /v1/publish on this node."),
		latency:      d("push_latency_seconds", "Push latency since the node started: from an event's publish time to its bytes written to a subscriber's socket, per event and subscriber."),
		cacheHits:    d("replay_cache_hits_total", "Resumes served from the replay cache."),
		cacheMisses:  d("replay_cache_misses_total", "Resumes that had to read the broker."),
		brokerReads:  d("replay_broker_reads_total", "Broker history reads made for resumes."),
		resets:       d("resets_total", "Reset events sent (history lost or cursor unusable)."),
		cacheEntries: d("replay_cache_entries", "Events held in the replay cache."),
		cacheBytes:   d("replay_cache_bytes", "Bytes held in the replay cache."),
		brokerUp:     d("broker_reachable", "1 when the broker answered the node's last check, else 0."),
		readLag:      d("broker_read_lag_seconds", "How far the node's broker reader is behind the newest event it knows of."),
		brokerErrors: d("broker_errors_total", "Failed broker (Redis) operations since the node started, by operation: publish, read (the reader's attempts), range (resume reads), head, retained, ping, shared_key, trim. Timeouts count; absent on the in-memory broker.", "op"),
		draining:     d("draining", "1 while the node drains, else 0."),
		rejected: d("requests_rejected_total", "Error answers (a bad request, a missing or invalid token, a limit, a rate limit) by listener (public or admin), status and code.",
			"listener", "status", "code"),
	}
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.conns, c.opened, c.closed, c.refused, c.deliveries, c.published,
		c.latency, c.cacheHits, c.cacheMisses, c.brokerReads, c.resets, c.cacheEntries, c.cacheBytes,
		c.brokerUp, c.readLag, c.brokerErrors, c.draining, c.rejected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	r := c.node.Report(now)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.info, 1, r.NodeID, r.Version)
	gauge(c.conns, float64(r.Connections.Current))
	counter(c.opened, r.Connections.Opened)
	// Every label value of the fixed sets, zeros included, so rate() works
	// from the first scrape.
	for _, name := range labelSet(node.CloseReasonNames(), r.Connections.Closed, "none") {
		counter(c.closed, r.Connections.Closed[name], name)
	}
	for _, name := range labelSet(node.RefusalNames(), r.Connections.Refused) {
		counter(c.refused, r.Connections.Refused[name], name)
	}
	counter(c.deliveries, r.Deliveries)
	counter(c.published, r.Published)
	counter(c.cacheHits, r.Cache.Hits)
	counter(c.cacheMisses, r.Cache.Misses)
	counter(c.brokerReads, r.Cache.BrokerReads)
	counter(c.resets, r.Cache.Resets)
	gauge(c.cacheEntries, float64(r.Cache.Entries))
	gauge(c.cacheBytes, float64(r.Cache.Bytes))
	gauge(c.brokerUp, boolFloat(r.Broker.Reachable))
	gauge(c.readLag, r.Broker.ReadLagMs/1e3)
	for _, op := range labelSet(nil, r.Broker.Errors) {
		counter(c.brokerErrors, r.Broker.Errors[op], op)
	}
	gauge(c.draining, boolFloat(r.Draining))
	for _, rc := range r.Rejected {
		counter(c.rejected, rc.Count, "public", strconv.Itoa(rc.Status), rc.Code)
	}
	for _, rc := range c.adminRejected.Snapshot() {
		counter(c.rejected, rc.Count, "admin", strconv.Itoa(rc.Status), rc.Code)
	}

	// The since-start histogram travels encoded in MergeData (the node
	// keeps it behind its own locks); decoding it costs a few µs per scrape.
	snap, err := c.node.MergeData(now).PushLatency.Decode()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.latency, err)
		return
	}
	count, sum, buckets := promBuckets(snap.SinceStart)
	ch <- prometheus.MustNewConstHistogram(c.latency, count, sum, buckets)
}

// labelSet returns the names of a fixed label set plus any other name m
// holds (a newer node's), without skip.
func labelSet(names []string, m map[string]int64, skip ...string) []string {
	out := make([]string, 0, len(names)+len(m))
	for _, n := range names {
		if !slices.Contains(skip, n) {
			out = append(out, n)
		}
	}
	for n := range m {
		if !slices.Contains(out, n) && !slices.Contains(skip, n) {
			out = append(out, n)
		}
	}
	return out
}

// promBuckets converts a histogram in µs into Prometheus's cumulative
// buckets in seconds. Each HDR bucket is counted at its lowest value, so
// the split at a bound is exact below 2048 µs and within 0.1% above (the
// histogram's precision); the sum is mean × count.
func promBuckets(h *hdr.PackedHistogram) (uint64, float64, map[float64]uint64) {
	buckets := make(map[float64]uint64, len(latencyBuckets))
	for _, b := range latencyBuckets {
		buckets[b] = 0
	}
	if h == nil || h.TotalCount() == 0 {
		return 0, 0, buckets
	}
	perBound := make([]uint64, len(latencyBuckets))
	h.ForEachBucket(func(v, n int64) bool {
		s := float64(v) / 1e6
		i, _ := slices.BinarySearch(latencyBuckets, s) // first bound >= s
		if i < len(perBound) {
			perBound[i] += uint64(n)
		}
		return true
	})
	var cum uint64
	for i, b := range latencyBuckets {
		cum += perBound[i]
		buckets[b] = cum
	}
	count := uint64(h.TotalCount())
	return count, h.Mean() * float64(count) / 1e6, buckets
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// slogPromLogger sends promhttp's errors to the admin logger.
type slogPromLogger struct{ log *slog.Logger }

func (l slogPromLogger) Println(v ...any) { l.log.Warn("metrics", "err", fmt.Sprint(v...)) }
