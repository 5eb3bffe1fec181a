package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/latency"
	"github.com/ssecluster/ssecluster/pubsub"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// newestConn returns the id of the newest open stream of n.
func newestConn(t testing.TB, n *testNode) uint64 {
	t.Helper()
	list, _ := n.srv.Connections("", 10000, 0)
	if len(list) == 0 {
		t.Fatal("no open stream")
	}
	return list[len(list)-1].ID
}

// connInfo returns the listing of stream id.
func connInfo(t testing.TB, n *testNode, id uint64) node.ConnInfo {
	t.Helper()
	list, _ := n.srv.Connections("", 1, id-1)
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("stream %d not listed: %+v", id, list)
	}
	return list[0]
}

// waitReport polls the node's report until ok accepts it.
func waitReport(t testing.TB, n *testNode, what string, ok func(node.Report) bool) node.Report {
	t.Helper()
	var r node.Report
	checkFor(t, waitTimeout, func() error {
		r = n.srv.Report(time.Now())
		if !ok(r) {
			return fmt.Errorf("report never showed %s: %+v", what, r)
		}
		return nil
	})
	return r
}

// TestReport opens three streams, delivers live events, and ends them in
// three ways (client gone, kick, drain), then checks the report.
func TestReport(t *testing.T) {
	cfg := testConfig(t)
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	a := n.subscribe(t, streamQuery("rep-a"), "")
	a.live(t)
	b := n.subscribe(t, streamQuery("rep-a", "rep-b"), "")
	b.live(t)
	idB := newestConn(t, n)
	c := n.subscribe(t, streamQuery("rep-c"), "")
	c.live(t)

	n.publish(t, evsOf("rep-a", "x", 3)...)
	n.publish(t, ev{Topic: "rep-b", Data: "y"})
	a.events(t, 3)
	b.events(t, 4)
	waitReport(t, n, "7 live deliveries timed", func(r node.Report) bool { return r.PushLatency.SinceStart.Count == 7 })

	c.close() // client gone
	waitReport(t, n, "client_gone", func(r node.Report) bool { return r.Connections.Closed["client_gone"] == 1 })
	if !n.srv.Kick(idB) {
		t.Fatal("Kick of an open stream returned false")
	}
	if _, err := b.waitEnd(t); err != io.EOF || !strings.HasSuffix(b.bodyTail(), ": kicked\n\n") {
		t.Errorf("kicked stream ended with %v and %q, want a goodbye naming the kick", err, b.bodyTail())
	}
	// Unregistered before the drain starts, so the drain counts one stream.
	waitReport(t, n, "kicked", func(r node.Report) bool { return r.Connections.Closed["kicked"] == 1 })
	<-n.srv.Drain(50 * time.Millisecond)
	if _, err := a.waitEnd(t); err != io.EOF || !strings.HasSuffix(a.bodyTail(), ": drain\n\n") {
		t.Errorf("drained stream ended with %v and %q, want a goodbye naming the drain", err, a.bodyTail())
	}
	r := waitReport(t, n, "every stream unregistered", func(r node.Report) bool { return r.Connections.Current == 0 })

	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", raw)

	if r.NodeID != "test" || r.Version == "" || r.Mode != node.ModeStandalone || r.UptimeS <= 0 || r.StartedAt.IsZero() || r.StartedAt.After(time.Now()) {
		t.Errorf("identity: node %q version %q mode %q uptime %g started %v", r.NodeID, r.Version, r.Mode, r.UptimeS, r.StartedAt)
	}
	if !r.Draining || !r.Drain.Draining || !r.Drain.Done || r.Drain.Streams != 3-2 || r.Drain.Closed != 1 {
		t.Errorf("drain: draining %v, %+v; want a finished drain of the one stream left", r.Draining, r.Drain)
	}
	if !r.Broker.Reachable || r.Broker.ReadLagMs < 0 {
		t.Errorf("broker %+v, want reachable and a lag >= 0", r.Broker)
	}
	wantClosed := map[string]int64{"client_gone": 1, "kicked": 1, "drain": 1}
	for reason, k := range r.Connections.Closed {
		if k != wantClosed[reason] {
			t.Errorf("closed[%s] = %d, want %d", reason, k, wantClosed[reason])
		}
	}
	for refusal, k := range r.Connections.Refused {
		if k != 0 {
			t.Errorf("refused[%s] = %d, want 0", refusal, k)
		}
	}
	if r.Connections.Opened != 3 || len(r.Connections.Refused) != len(node.RefusalNames()) {
		t.Errorf("connections %+v, want 3 opened and every refusal listed", r.Connections)
	}
	if r.Deliveries != 7 || r.Published != 4 {
		t.Errorf("deliveries %d published %d, want 7 and 4", r.Deliveries, r.Published)
	}
	if r.Cache.Entries != 4 || r.Cache.Bytes <= 0 || r.Cache.Hits != 0 || r.Cache.Misses != 0 || r.Cache.BrokerReads != 0 || r.Cache.Resets != 0 {
		t.Errorf("cache %+v, want the 4 events cached and no resume", r.Cache)
	}

	// Survival: three streams, all closed, none by a failure.
	sv := r.Survival
	if sv.WindowS != 3600 || sv.Opened != 3 || sv.Closed != 3 || sv.Failed != 0 || sv.FailureRatio != 0 {
		t.Errorf("survival counts %+v, want 3 opened and closed, none failed, over 3600 s", sv)
	}
	if sv.S["1h"] != 0 || sv.MedianS == nil || *sv.MedianS <= 0 {
		t.Errorf("survival S %v median %v: want 0 at 1 h (every stream closed) and a median", sv.S, sv.MedianS)
	}
	if sv.Failures.MedianS != nil || sv.Failures.S["1h"] != 1 {
		t.Errorf("failure curve %+v, want S = 1 everywhere and no median", sv.Failures)
	}
	for reason := range wantClosed {
		if rc, ok := sv.ByReason[reason]; !ok || rc.Closed != 1 {
			t.Errorf("by_reason[%s] = %+v, want 1 close", reason, rc)
		}
	}
	if len(sv.ByReason) != len(wantClosed) {
		t.Errorf("by_reason has %d reasons, want %d", len(sv.ByReason), len(wantClosed))
	}

	// Push latency: the seven live deliveries.
	pl := r.PushLatency
	if pl.SinceStart.Count != 7 || pl.Last1m.Count > 7 || pl.Last5m.Count > 7 {
		t.Errorf("push latency counts %+v, want 7 since start", pl)
	}
	if s := pl.SinceStart; s.P50 > s.P90 || s.P90 > s.P99 || s.P99 > s.P999 || s.P999 > s.Max || s.Max <= 0 {
		t.Errorf("since_start percentiles %+v are not ordered", s)
	}
	checkReportJSON(t, raw)
}

// checkReportJSON checks the report's field names: admin/, the dashboard
// and loadtest parse them.
func checkReportJSON(t *testing.T, raw []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	points := []string{"10s", "1m", "5m", "30m", "1h"}
	window := []string{"count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"}
	want := map[string][]string{
		"":                         {"node_id", "version", "started_at", "uptime_s", "mode", "draining", "drain", "broker", "connections", "survival", "push_latency", "cache", "deliveries", "published"},
		"drain":                    {"draining", "window_s", "streams", "closed", "done"},
		"broker":                   {"reachable", "read_lag_ms"},
		"connections":              {"current", "opened", "closed", "refused"},
		"survival":                 {"window_s", "opened", "closed", "failed", "failure_ratio", "s", "median_s", "failures", "by_reason"},
		"survival.s":               points,
		"survival.failures":        {"s", "median_s"},
		"survival.failures.s":      points,
		"survival.by_reason.drain": {"closed", "s"},
		"push_latency":             {"last_1m", "last_5m", "since_start"},
		"push_latency.last_1m":     window,
		"push_latency.last_5m":     window,
		"push_latency.since_start": window,
		"cache":                    {"hits", "misses", "broker_reads", "resets", "entries", "bytes"},
	}
	for path, keys := range want {
		obj := m
		if path != "" {
			for _, k := range strings.Split(path, ".") {
				next, ok := obj[k].(map[string]any)
				if !ok {
					t.Fatalf("report JSON: %s is not an object", path)
				}
				obj = next
			}
		}
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				t.Errorf("report JSON: %s has no %q", path, k)
			}
		}
	}
	if _, err := time.Parse(time.RFC3339, m["started_at"].(string)); err != nil {
		t.Errorf("started_at is not RFC 3339: %v", err)
	}
}

// TestPushLatencyLiveOnly: live deliveries are timed, replayed history is
// not (it still counts in the stream's events_sent).
func TestPushLatencyLiveOnly(t *testing.T) {
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
	live := n.subscribe(t, streamQuery("lat"), "")
	live.live(t)
	idLive := newestConn(t, n)
	ids := n.publishN(t, "lat", "e", 5)
	live.events(t, 5)
	waitReport(t, n, "5 live deliveries timed", func(r node.Report) bool { return r.PushLatency.SinceStart.Count == 5 })

	resumed := n.subscribe(t, streamQuery("lat"), ids[0])
	if got := collect(t, resumed, 4); !slices.Equal(data(got), seq("e", 1, 5)) {
		t.Fatalf("resume replayed %q", data(got))
	}
	idResumed := newestConn(t, n)
	// History is counted once the handler's write returned, which may be
	// after the client read it.
	checkFor(t, waitTimeout, func() error {
		if got := connInfo(t, n, idResumed).EventsSent; got != 4 {
			return fmt.Errorf("resumed stream events_sent %d, want the 4 replayed", got)
		}
		return nil
	})
	if got := n.srv.Report(time.Now()).PushLatency.SinceStart.Count; got != 5 {
		t.Errorf("push latency count %d after a replay, want still 5", got)
	}

	n.publish(t, ev{Topic: "lat", Data: "e5"})
	live.events(t, 1)
	resumed.events(t, 1)
	waitReport(t, n, "7 live deliveries timed", func(r node.Report) bool { return r.PushLatency.SinceStart.Count == 7 })
	if got := connInfo(t, n, idLive); got.EventsSent != 6 || got.BytesSent <= 0 || got.QueueBytes != 0 {
		t.Errorf("live stream %+v, want 6 events sent, some bytes, an empty queue", got)
	}
}

func TestConnectionsPaging(t *testing.T) {
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
	subs := [][]string{{"pg-a"}, {"pg-b"}, {"pg-b", "pg-a"}, {"pg-a"}, {"pg-c"}}
	ids := make([]uint64, len(subs))
	for i, topics := range subs {
		n.subscribe(t, streamQuery(topics...), "").live(t)
		ids[i] = newestConn(t, n)
	}
	pages := func(topic string, limit int) [][]uint64 {
		var out [][]uint64
		after := uint64(0)
		for range 10 {
			list, next := n.srv.Connections(topic, limit, after)
			var page []uint64
			for _, c := range list {
				page = append(page, c.ID)
			}
			out = append(out, page)
			if next == 0 {
				return out
			}
			after = next
		}
		t.Fatalf("Connections(%q, %d) pages never end", topic, limit)
		return nil
	}
	cases := []struct {
		topic string
		limit int
		want  [][]uint64
	}{
		{"", 2, [][]uint64{{ids[0], ids[1]}, {ids[2], ids[3]}, {ids[4]}}},
		{"", 0, [][]uint64{ids}},
		{"pg-a", 0, [][]uint64{{ids[0], ids[2], ids[3]}}},
		{"pg-a", 2, [][]uint64{{ids[0], ids[2]}, {ids[3]}}},
		{"pg-b", 1, [][]uint64{{ids[1]}, {ids[2]}}},
		{"pg-none", 5, [][]uint64{nil}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s_limit_%d", tc.topic, tc.limit), func(t *testing.T) {
			if got := pages(tc.topic, tc.limit); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("pages %v, want %v", got, tc.want)
			}
		})
	}
	// The stream's first bytes are counted once the handler's write
	// returned, which may be after the client read them.
	checkFor(t, waitTimeout, func() error {
		info := connInfo(t, n, ids[2])
		if !slices.Equal(info.Topics, []string{"pg-a", "pg-b"}) || info.Remote == "" || info.ConnectedSince.IsZero() || info.BytesSent <= 0 || info.EventsSent != 0 {
			return fmt.Errorf("listing %+v: want topics sorted, a remote address, a start time, bytes but no events", info)
		}
		return nil
	})
}

func TestKick(t *testing.T) {
	cfg := testConfig(t)
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	s := n.subscribe(t, streamQuery("kick"), "")
	s.live(t)
	id := newestConn(t, n)
	if n.srv.Kick(id + 1000) {
		t.Error("Kick of an unknown id returned true")
	}
	if !n.srv.Kick(id) {
		t.Fatal("Kick returned false")
	}
	rest, err := s.waitEnd(t)
	if err != io.EOF || len(rest) == 0 {
		t.Fatalf("kicked stream ended with %v after %d blocks, want a goodbye and a clean end", err, len(rest))
	}
	last := rest[len(rest)-1]
	if last.Retry < 0 || last.Retry > cfg.Retry.Cap.Milliseconds() {
		t.Errorf("goodbye retry %d ms, want within [0, %v]", last.Retry, cfg.Retry.Cap)
	}
	if want := fmt.Sprintf("retry: %d\n: kicked\n\n", last.Retry); !strings.HasSuffix(s.bodyTail(), want) {
		t.Errorf("stream ends with %q, want %q", s.bodyTail(), want)
	}
	if n.srv.Kick(id) {
		t.Error("second Kick returned true")
	}
	r := waitReport(t, n, "the kick counted", func(r node.Report) bool { return r.Connections.Closed["kicked"] == 1 })
	if got := n.srv.Stats().Closed[node.ReasonKicked].Load(); got != 1 {
		t.Errorf("Stats().Closed[kicked] = %d, want 1", got)
	}
	if rc := r.Survival.ByReason["kicked"]; rc.Closed != 1 || r.Survival.Failed != 0 {
		t.Errorf("survival: kicked %+v, failed %d; want one kick, not a failure", rc, r.Survival.Failed)
	}
}

func TestTopics(t *testing.T) {
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
	n.subscribe(t, streamQuery("tp-b"), "").live(t)
	n.subscribe(t, streamQuery("tp-a", "tp-b"), "").live(t)
	want := []node.TopicCount{{Topic: "tp-a", Subscribers: 1}, {Topic: "tp-b", Subscribers: 2}}
	if got := n.srv.Topics(); !slices.Equal(got, want) {
		t.Errorf("Topics() = %+v, want %+v", got, want)
	}
}

// TestTopicInfo runs against both brokers.
func TestTopicInfo(t *testing.T) {
	cases := []struct {
		name  string
		start func(t *testing.T) *testNode
	}{
		{"memory", func(t *testing.T) *testNode {
			return startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{Partitions: redisParts}))
		}},
		{"redis", func(t *testing.T) *testNode {
			return startRedisNode(t, pubsubtest.StartRedis(t), uniquePrefix(), "test", nil)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			topics := topicsIn(2, redisParts, 2, "info") // one partition
			empty := topicsIn(5, redisParts, 1, "empty")[0]
			n.subscribe(t, streamQuery(topics[0]), "").live(t)
			n.subscribe(t, streamQuery(topics[0], empty), "").live(t)
			ids := n.publish(t, ev{Topic: topics[0], Data: "1"}, ev{Topic: topics[1], Data: "2"}, ev{Topic: topics[0], Data: "3"})
			first, last := cursorOf(t, ids[0], redisParts)[0], cursorOf(t, ids[2], redisParts)[0]

			got, err := n.srv.TopicInfo(ctx, topics[0])
			if err != nil {
				t.Fatal(err)
			}
			want := node.TopicDetail{
				Topic: topics[0], Partition: 2, Subscribers: 2,
				Head:     node.HeadID{ID: ids[2], Epoch: last.Epoch, Pos: last.Pos.String()},
				Retained: node.RetainedRange{First: first.Pos.String(), Last: last.Pos.String(), Entries: 3},
			}
			if got != want {
				t.Errorf("TopicInfo(%s) = %+v, want %+v", topics[0], got, want)
			}

			got, err = n.srv.TopicInfo(ctx, empty)
			if err != nil {
				t.Fatal(err)
			}
			if got.Partition != 5 || got.Subscribers != 1 || got.Head.Pos != "0-0" || got.Retained != (node.RetainedRange{First: "0-0", Last: "0-0"}) || got.Head.Epoch == "" {
				t.Errorf("TopicInfo(%s) of an empty partition = %+v", empty, got)
			}
			if _, err := n.srv.TopicInfo(ctx, "bad topic"); !errors.Is(err, node.ErrInvalidTopic) {
				t.Errorf("TopicInfo of an invalid name: %v, want ErrInvalidTopic", err)
			}
		})
	}
}

// TestMergeReports merges two nodes' data, after a trip through JSON.
func TestMergeReports(t *testing.T) {
	var data []node.MergeData
	var timed, opened int64
	for i, k := range []int{2, 3} {
		n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
		topic := fmt.Sprintf("merge-%d", i)
		s := n.subscribe(t, streamQuery(topic), "")
		s.live(t)
		n.publishN(t, topic, "m", k)
		s.events(t, k)
		n.subscribe(t, streamQuery(topic), "").live(t)
		n.srv.Kick(newestConn(t, n))
		r := waitReport(t, n, "deliveries timed and the kick logged", func(r node.Report) bool {
			return r.PushLatency.SinceStart.Count == int64(k) && r.Survival.Closed == 1
		})
		timed += r.PushLatency.SinceStart.Count
		opened += r.Survival.Opened
		raw, err := json.Marshal(n.srv.MergeData(time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		var d node.MergeData
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		data = append(data, d)
	}
	got, err := node.MergeReports(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Nodes != 2 || got.PushLatency.SinceStart.Count != timed || got.Survival.Opened != opened || got.Survival.Closed != 2 || got.Survival.ByReason["kicked"].Closed != 2 {
		t.Errorf("cluster figures %+v: want 2 nodes, %d latencies, %d streams of which 2 kicked", got, timed, opened)
	}
	if _, err := node.MergeReports([]node.MergeData{{PushLatency: latency.Export{Last1m: "garbage"}}}); err == nil {
		t.Error("MergeReports accepted a malformed histogram")
	}
}

// Config.Version, when set, is the reported version; a version that is not
// a plain token is refused at New.
func TestReportVersion(t *testing.T) {
	cfg := testConfig(t)
	cfg.Version = "v1.2.3-4-gabcdef0+dirty"
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	if got := n.srv.Report(time.Now()).Version; got != cfg.Version {
		t.Errorf("version %q, want %q", got, cfg.Version)
	}
	for _, bad := range []string{"v1 2", "v1\n", strings.Repeat("v", 129), "v1\"x"} {
		cfg.Version = bad
		if _, err := node.New(cfg, newMemory(t, pubsub.MemoryConfig{})); err == nil || !strings.Contains(err.Error(), "version") {
			t.Errorf("New with version %q: %v, want a version error", bad, err)
		}
	}
}
