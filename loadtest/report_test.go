package loadtest

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"
)

// workerReport builds a worker's (unfinalized) report as it arrives over
// JSON.
func workerReport(t *testing.T, r *Report) *Report {
	t.Helper()
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var out Report
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestReportMerge(t *testing.T) {
	lat1, lat2 := NewHistogram(), NewHistogram()
	for range 99 {
		lat1.Record(time.Millisecond)
	}
	lat2.Record(time.Second)
	w1 := workerReport(t, &Report{
		Connect:  ConnectStats{Attempts: 3, OK: 2, Failed: 1, FailReasons: map[string]int64{"refused": 1}, Established: 2},
		Streams:  StreamStats{AliveAtEnd: 2, RetryHints: 2, RetryMinMs: 1000, RetryMaxMs: 2000, Drops: map[string]int64{"eof": 1}},
		Delivery: DeliveryStats{Delivered: 20, Unique: 19, Duplicates: 1},
		Latency:  lat1,
		// topics 0 and 1, one on-time stream each; 10 and 9 distinct events
		TopicSubs: []int64{1, 1}, TopicUnique: []int64{10, 9},
	})
	w2 := workerReport(t, &Report{
		Connect:  ConnectStats{Attempts: 2, OK: 2, Established: 2, Late: 1},
		Streams:  StreamStats{AliveAtEnd: 1, RetryHints: 1, RetryMinMs: 500, RetryMaxMs: 500, Drops: map[string]int64{"eof": 2, "reset": 1}},
		Delivery: DeliveryStats{Delivered: 10, Unique: 10, Gaps: 1, Missing: 2},
		Latency:  lat2,
		// one on-time stream on topic 0 (the other is late), 10 events
		TopicSubs: []int64{1, 0}, TopicUnique: []int64{10, 0},
	})
	r := newReport(Config{URL: "http://127.0.0.1:1", Subs: 4, Topics: 2, Rate: 1, Batch: 1, Workers: 2})
	r.Merge(w1)
	r.Merge(w2)
	r.finalize(&PublishStats{Published: 20, DurationS: 2, perTopic: []int64{10, 10}})

	if c := r.Connect; c.Attempts != 5 || c.OK != 4 || c.Failed != 1 || c.Established != 4 || c.Late != 1 {
		t.Errorf("connect %+v", c)
	}
	if !maps.Equal(r.Streams.Drops, map[string]int64{"eof": 3, "reset": 1}) {
		t.Errorf("drops %v", r.Streams.Drops)
	}
	if s := r.Streams; s.AliveAtEnd != 3 || s.Survival != 0.75 || s.RetryHints != 3 || s.RetryMinMs != 500 || s.RetryMaxMs != 2000 {
		t.Errorf("streams %+v", s)
	}
	// expected: topic 0: 10 events x 2 streams, topic 1: 10 x 1 = 30;
	// received 10+10 on topic 0, 9 on topic 1: loss 1.
	d := r.Delivery
	if d.Expected != 30 || d.Loss != 1 || d.Delivered != 30 || d.Unique != 29 || d.Duplicates != 1 || d.Gaps != 1 || d.Missing != 2 || d.PerSec != 15 {
		t.Errorf("delivery %+v", d)
	}
	if r.Latency.Count() != 100 {
		t.Errorf("latency count %d, want 100", r.Latency.Count())
	}
	if p99, max := r.Latency.Quantile(0.99), r.Latency.Max(); p99 > 2*time.Millisecond || max < time.Second {
		t.Errorf("latency p99 %v max %v: histograms not merged", p99, max)
	}
	if r.TopicSubs != nil || r.TopicUnique != nil {
		t.Errorf("per-topic arrays kept in the final report")
	}
}

// The report says what share of the machine the generator used, warns when
// that is most of it, and says nothing it did not measure.
func TestReportSelfShare(t *testing.T) {
	for _, c := range []struct {
		name      string
		self      ProcessStats
		elapsedS  float64
		want      string // "" = no share printed
		warn      bool
		mergeWith *ProcessStats
	}{
		{"light", ProcessStats{Processes: 1, CPUSeconds: 5, MachineCores: 2}, 10, "25% of the machine's 2 cores", false, nil},
		{"busy", ProcessStats{Processes: 1, CPUSeconds: 14, MachineCores: 2}, 10, "70% of the machine's 2 cores", true, nil},
		{"workers add up", ProcessStats{Processes: 1, CPUSeconds: 7, MachineCores: 2}, 10, "70% of the machine's 2 cores", true,
			&ProcessStats{Processes: 1, CPUSeconds: 7, MachineCores: 2}},
		{"not measured", ProcessStats{}, 10, "", false, nil},
		{"no elapsed time", ProcessStats{Processes: 1, CPUSeconds: 1, MachineCores: 2}, 0, "", false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newReport(Config{URL: "http://127.0.0.1:1", Subs: 1, Topics: 1})
			r.Self = c.self
			if c.mergeWith != nil {
				r.Self.add(*c.mergeWith)
			}
			r.ElapsedS = c.elapsedS
			var b strings.Builder
			if err := r.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if c.want == "" {
				if strings.Contains(out, "of the machine's") {
					t.Errorf("share printed though not measured:\n%s", out)
				}
			} else if !strings.Contains(out, c.want) {
				t.Errorf("want %q in:\n%s", c.want, out)
			}
			if got := strings.Contains(out, "WARNING: the load generator used most of the machine"); got != c.warn {
				t.Errorf("warning printed %v, want %v:\n%s", got, c.warn, out)
			}
		})
	}
}
