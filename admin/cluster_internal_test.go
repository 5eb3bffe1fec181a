package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/latency"
	"github.com/ssecluster/ssecluster/node/survival"
)

// testEntry makes a registry entry from a report and merge data.
func testEntry(t *testing.T, id string, r node.Report, md node.MergeData) Entry {
	t.Helper()
	rb, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{NodeID: id, Report: rb, Merge: mb}
}

// latencyExport records values (µs) and exports them.
func latencyExport(t *testing.T, now time.Time, values map[int64]int) latency.Export {
	t.Helper()
	rec, err := latency.New(latency.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for us, n := range values {
		for range n {
			rec.RecordValue(0, now, time.Duration(us)*time.Microsecond)
		}
	}
	exp, err := rec.Snapshot(now).Export()
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

// The cluster figures are those of the union of the nodes' values (merged
// histograms and bins), not averages of the nodes' figures; counters add
// up; an entry that does not decode is left out.
func TestClusterMerge(t *testing.T) {
	now := time.Now()
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a := testEntry(t, "a",
		node.Report{NodeID: "a", Connections: node.ConnCounts{Current: 3, Opened: 10,
			Closed: map[string]int64{"client_gone": 7}, Refused: map[string]int64{"capacity": 1}}, Deliveries: 101, Published: 5},
		node.MergeData{NodeID: "a",
			PushLatency: latencyExport(t, now, map[int64]int{100: 100, 50000: 1}),
			Survival: survival.Bins{WindowS: 3600, Closed: map[string]survival.ReasonBins{
				"client_gone": {Bins: []survival.Bin{{5, 10}}},
			}}})
	b := testEntry(t, "b",
		node.Report{NodeID: "b", Connections: node.ConnCounts{Current: 30, Opened: 30,
			Closed: map[string]int64{"client_gone": 1, "future_reason": 2}, Refused: map[string]int64{"capacity": 4}}, Deliveries: 100, Published: 0},
		node.MergeData{NodeID: "b",
			PushLatency: latencyExport(t, now, map[int64]int{300: 100}),
			Survival:    survival.Bins{WindowS: 1800, Censored: []survival.Bin{{100, 30}}}})
	bad := Entry{NodeID: "bad", Report: json.RawMessage(`{"node_id":"bad"}`), Merge: json.RawMessage(`{"push_latency":{"since_start":"%%%"}}`)}

	cv := s.cluster([]Entry{a, bad, b})
	if cv.Nodes != 2 {
		t.Errorf("nodes %d, want 2 (the bad entry left out)", cv.Nodes)
	}
	c := cv.Connections
	if c.Current != 33 || c.Opened != 40 || c.Closed["client_gone"] != 8 || c.Closed["future_reason"] != 2 || c.Refused["capacity"] != 5 {
		t.Errorf("connections %+v", c)
	}
	if cv.Deliveries != 201 || cv.Published != 5 {
		t.Errorf("deliveries %d published %d", cv.Deliveries, cv.Published)
	}
	// 201 values: 100 of 100 µs, 100 of 300 µs, one of 50 ms. The union's
	// median is 300 µs (averaging the nodes' medians would give 200 µs).
	ss := cv.PushLatency.SinceStart
	if ss.Count != 201 || ss.P50 != 300 || ss.P99 != 300 || ss.Max < 50000 || ss.Max > 50050 || ss.P999 != ss.Max {
		t.Errorf("since_start %+v, want the union's figures", ss)
	}
	if cv.PushLatency.Last1m.Count != 201 {
		t.Errorf("last_1m %+v", cv.PushLatency.Last1m)
	}
	// 40 streams: 10 died at 5 s, 30 still open at 100 s. S(10s) of the
	// union is 0.75 (a's alone is 0, b's 1: averaging gives 0.5).
	sv := cv.Survival
	if sv.Opened != 40 || sv.Closed != 10 || sv.Failed != 0 || sv.S["10s"] != 0.75 || sv.S["1m"] != 0.75 || sv.MedianS != nil {
		t.Errorf("survival %+v", sv)
	}
	if sv.WindowS != 1800 {
		t.Errorf("window %v, want the shortest (1800)", sv.WindowS)
	}
	if sv.Failures.S["1h"] != 1 {
		t.Errorf("failures curve %+v: nothing failed", sv.Failures)
	}

	empty := s.cluster(nil)
	if empty.Nodes != 0 || empty.PushLatency.SinceStart.Count != 0 || empty.Connections.Closed == nil {
		t.Errorf("empty cluster %+v", empty)
	}
}

func TestTopTopics(t *testing.T) {
	all := []node.TopicCount{{Topic: "b", Subscribers: 2}, {Topic: "a", Subscribers: 2}, {Topic: "c", Subscribers: 9}, {Topic: "d", Subscribers: 1}}
	got := topTopics(all, 3)
	want := []TopicCount{{"c", 9}, {"a", 2}, {"b", 2}}
	if !got.Truncated || len(got.Topics) != 3 || got.Topics[0] != want[0] || got.Topics[1] != want[1] || got.Topics[2] != want[2] {
		t.Errorf("top 3 = %+v, want %v truncated", got, want)
	}
	if got := topTopics(all, 4); got.Truncated || len(got.Topics) != 4 {
		t.Errorf("top 4 of 4 = %+v", got)
	}
}

// drainRecorder is a Node that records drains; the rest is unused.
type drainRecorder struct {
	Node
	windows []time.Duration
}

func (d *drainRecorder) Drain(w time.Duration) <-chan struct{} {
	d.windows = append(d.windows, w)
	return nil
}

// Commands from the registry: drains are performed with their window;
// unknown ops and bad windows (only someone writing Redis by hand can
// send them) are ignored.
func TestTakeCommands(t *testing.T) {
	reg := NewLocalRegistry()
	ctx := context.Background()
	if err := reg.Publish(ctx, Entry{NodeID: "me"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Command{
		{Op: "reboot"},
		{Op: OpDrain, WindowS: -1},
		{Op: OpDrain, WindowS: 1e9},
		{Op: OpDrain, WindowS: 2.5},
	} {
		if err := reg.Send(ctx, "me", c, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	n := &drainRecorder{}
	s := &Server{cfg: Config{RegistryTimeout: time.Second}, nodeID: "me", node: n, reg: reg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.takeCommands(ctx); err != nil {
		t.Fatal(err)
	}
	if len(n.windows) != 1 || n.windows[0] != 2500*time.Millisecond {
		t.Errorf("drains %v, want one of 2.5s", n.windows)
	}
}
