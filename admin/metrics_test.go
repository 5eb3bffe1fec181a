package admin_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/pubsub"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// scrape reads a's /metrics in the text format.
func scrape(t testing.TB, a *testAdmin) map[string]*dto.MetricFamily {
	t.Helper()
	r := a.do("GET", "/metrics", "")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics = %s", r)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// labelled returns family name's values by their one label's value.
func labelled(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := make(map[string]float64)
	if f := fams[name]; f != nil {
		for _, m := range f.Metric {
			key := ""
			for _, l := range m.Label {
				key = l.GetValue()
			}
			out[key] = metricValue(m)
		}
	}
	return out
}

// The metrics are the report's figures, the push latency histogram is
// built from the node's since-start histogram, and the Go runtime and
// process collectors are there.
func TestMetrics(t *testing.T) {
	n, a := standalone(t)
	openStream(t, n, "m")
	openStream(t, n, "m")
	publish(t, n, "m", 7)
	var rep node.Report
	checkFor(t, waitTimeout, func() error {
		a.decode(200, &rep, "GET", "/admin/v1/node", "")
		if rep.PushLatency.SinceStart.Count != 14 {
			return fmt.Errorf("push latency count %d, want 14", rep.PushLatency.SinceStart.Count)
		}
		return nil
	})
	var id struct {
		Connections []node.ConnInfo `json:"connections"`
	}
	a.decode(200, &id, "GET", "/admin/v1/connections?limit=1", "")
	a.decode(200, new(any), "DELETE", fmt.Sprintf("/admin/v1/connections/%d", id.Connections[0].ID), "")
	checkFor(t, waitTimeout, func() error {
		a.decode(200, &rep, "GET", "/admin/v1/node", "")
		if rep.Connections.Current != 1 {
			return fmt.Errorf("%d streams, want 1", rep.Connections.Current)
		}
		return nil
	})

	fams := scrape(t, a)
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("no %s: the Go or process collector is missing", name)
		}
	}
	single := func(name string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil || len(f.Metric) != 1 {
			t.Fatalf("metric %s: %v", name, f)
		}
		return metricValue(f.Metric[0])
	}
	checks := []struct {
		name string
		want float64
	}{
		{"ssecluster_connections", 1},
		{"ssecluster_connections_opened_total", 2},
		{"ssecluster_deliveries_total", 14},
		{"ssecluster_published_total", 7},
		{"ssecluster_broker_reachable", 1},
		{"ssecluster_draining", 0},
		{"ssecluster_replay_cache_hits_total", float64(rep.Cache.Hits)},
		{"ssecluster_replay_cache_misses_total", float64(rep.Cache.Misses)},
	}
	for _, c := range checks {
		if got := single(c.name); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	closed := labelled(fams, "ssecluster_connections_closed_total")
	if closed["kicked"] != 1 || len(closed) != len(node.CloseReasonNames())-1 {
		t.Errorf("closes by reason %v: want kicked 1 and every reason but none", closed)
	}
	if _, ok := closed["none"]; ok {
		t.Error(`close reason "none" exported`)
	}
	if refused := labelled(fams, "ssecluster_connections_refused_total"); len(refused) != len(node.RefusalNames()) {
		t.Errorf("refusals %v: want every refusal", refused)
	}
	info := fams["ssecluster_node_info"]
	if info == nil || !strings.Contains(info.Metric[0].String(), `"solo"`) {
		t.Errorf("node info %v", info)
	}
	for _, name := range []string{"ssecluster_broker_read_lag_seconds", "ssecluster_replay_cache_entries", "ssecluster_replay_cache_bytes",
		"ssecluster_replay_broker_reads_total", "ssecluster_resets_total"} {
		single(name)
	}

	h := fams["ssecluster_push_latency_seconds"]
	if h == nil || h.GetType() != dto.MetricType_HISTOGRAM || len(h.Metric) != 1 {
		t.Fatalf("push latency histogram: %v", h)
	}
	hist := h.Metric[0].Histogram
	if hist.GetSampleCount() != 14 {
		t.Errorf("histogram count %d, want the report's 14", hist.GetSampleCount())
	}
	// Cumulative, ending at the count, and consistent with the report's
	// maximum: every value is at most max_us.
	maxS := float64(rep.PushLatency.SinceStart.Max) / 1e6
	prev := uint64(0)
	for _, b := range hist.Bucket {
		if b.GetCumulativeCount() < prev {
			t.Errorf("buckets not cumulative: %v", hist.Bucket)
		}
		prev = b.GetCumulativeCount()
		if b.GetUpperBound() >= maxS*1.001 && b.GetCumulativeCount() != 14 {
			t.Errorf("bucket le=%v holds %d, want all 14 (max %vs)", b.GetUpperBound(), b.GetCumulativeCount(), maxS)
		}
	}
	if hist.GetSampleSum() <= 0 || hist.GetSampleSum() > 14*maxS*1.001 {
		t.Errorf("histogram sum %v out of (0, 14×max]", hist.GetSampleSum())
	}
}

// Each server has its own registry: two in one process do not collide.
func TestMetricsPerServer(t *testing.T) {
	_, a1 := standalone(t)
	_, a2 := standalone(t)
	for _, a := range []*testAdmin{a1, a2} {
		if f := scrape(t, a)["ssecluster_connections"]; f == nil || len(f.Metric) != 1 {
			t.Errorf("ssecluster_connections: %v", f)
		}
	}
}

func TestPprof(t *testing.T) {
	_, a := standalone(t)
	tests := []struct{ method, path, contains string }{
		{"GET", "/debug/pprof/", "goroutine"},
		{"GET", "/debug/pprof/goroutine?debug=1", "goroutine profile"},
		{"GET", "/debug/pprof/heap?debug=1", "heap profile"},
		{"GET", "/debug/pprof/cmdline", "admin.test"},
		{"GET", "/debug/pprof/symbol", "num_symbols"},
		{"GET", "/debug/pprof/profile?seconds=1", ""},
		{"GET", "/debug/pprof/trace?seconds=0.1", ""},
	}
	for _, tt := range tests {
		r := a.do(tt.method, tt.path, "")
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), tt.contains) || len(r.Body) == 0 {
			t.Errorf("%s %s = %d (%d bytes), want 200 with %q", tt.method, tt.path, r.Status, len(r.Body), tt.contains)
		}
	}
}

// A node on Redis exports its broker's failed operations by op, every op
// from the first scrape; a publish that Redis cannot take is counted under
// "publish" in /metrics and in the report, and standalone nodes (no store to
// fail) export none.
func TestMetricsBrokerErrors(t *testing.T) {
	r := pubsubtest.StartRedis(t)
	m := startCluster(t, r, "brokererr", "a")
	a := m["a"].admin
	errs := labelled(scrape(t, a), "ssecluster_broker_errors_total")
	if len(errs) != len(pubsub.StoreOps()) || errs[pubsub.OpPublish] != 0 {
		t.Fatalf("healthy broker errors %v, want every op of %v at 0", errs, pubsub.StoreOps())
	}

	r.Kill()
	resp, err := httpClient.Post(m["a"].node.url+"/v1/publish", "application/json", strings.NewReader(`{"topic":"t","data":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("publish with Redis killed: %d, want 503", resp.StatusCode)
	}
	errs = labelled(scrape(t, a), "ssecluster_broker_errors_total")
	if errs[pubsub.OpPublish] != 1 {
		t.Errorf("broker errors after one failed publish %v, want publish 1", errs)
	}
	var rep node.Report
	a.decode(200, &rep, "GET", "/admin/v1/node", "")
	if rep.Broker.Errors[pubsub.OpPublish] != 1 {
		t.Errorf("report broker errors %v, want publish 1", rep.Broker.Errors)
	}

	_, solo := standalone(t)
	if f := scrape(t, solo)["ssecluster_broker_errors_total"]; f != nil {
		t.Errorf("standalone node exports broker errors: %v", f)
	}
}
