package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ssecluster/ssecluster/admin"
	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/latency"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// clusterNodes is the answer of GET /admin/v1/nodes, decoded.
type clusterNodes struct {
	Nodes   []node.Report `json:"nodes"`
	Cluster struct {
		Nodes       int             `json:"nodes"`
		Connections node.ConnCounts `json:"connections"`
		PushLatency latency.Windows `json:"push_latency"`
		Survival    json.RawMessage `json:"survival"`
		Deliveries  int64           `json:"deliveries"`
		Published   int64           `json:"published"`
	} `json:"cluster"`
}

func (c clusterNodes) ids() []string {
	out := make([]string, len(c.Nodes))
	for i, r := range c.Nodes {
		out[i] = r.NodeID
	}
	return out
}

// noLeave is a registry whose Remove does nothing: the node's entry stays
// until it expires, as when a node crashes.
type noLeave struct{ admin.Registry }

func (noLeave) Remove(context.Context, string) error { return nil }

// clusterMember is one node of a test cluster with its admin API.
type clusterMember struct {
	node  *testNode
	admin *testAdmin
}

// startCluster starts ids as nodes sharing r (each with its own broker and
// registry client) under one prefix, and waits until every node's admin
// API lists them all.
func startCluster(t *testing.T, r *pubsubtest.Redis, prefix string, ids ...string) map[string]*clusterMember {
	t.Helper()
	members := make(map[string]*clusterMember)
	for _, id := range ids {
		n := startNode(t, id, newRedisBroker(t, r, prefix))
		reg := newRedisRegistry(t, r, prefix)
		members[id] = &clusterMember{node: n, admin: startAdmin(t, n, noLeave{reg}, fastConfig(t))}
	}
	for _, m := range members {
		waitNodes(t, m.admin, ids...)
	}
	return members
}

// waitNodes polls a's GET /admin/v1/nodes until it lists exactly ids.
func waitNodes(t testing.TB, a *testAdmin, ids ...string) clusterNodes {
	t.Helper()
	var got clusterNodes
	checkFor(t, waitTimeout, func() error {
		got = clusterNodes{}
		a.decode(200, &got, "GET", "/admin/v1/nodes", "")
		if !slices.Equal(got.ids(), ids) || got.Cluster.Nodes != len(ids) {
			return fmt.Errorf("nodes %v (cluster.nodes %d), want %v", got.ids(), got.Cluster.Nodes, ids)
		}
		return nil
	})
	return got
}

// Three nodes sharing one Redis: each admin API lists all three; one that
// stops publishing leaves every view within the expiry; a drain sent
// through node a drains node c.
func TestClusterView(t *testing.T) {
	r := pubsubtest.StartRedis(t)
	m := startCluster(t, r, "view", "a", "b", "c")
	streamC := openStream(t, m["c"].node, "orders")
	streamB := openStream(t, m["b"].node, "orders", "news")

	t.Run("totals", func(t *testing.T) {
		publish(t, m["a"].node, "orders", 3)
		got := waitNodesWhere(t, m["b"].admin, func(c clusterNodes) error {
			if c.Cluster.Connections.Current != 2 || c.Cluster.Published != 3 || c.Cluster.Deliveries != 6 {
				return fmt.Errorf("cluster connections %d published %d deliveries %d, want 2, 3, 6",
					c.Cluster.Connections.Current, c.Cluster.Published, c.Cluster.Deliveries)
			}
			return nil
		})
		var sum node.ConnCounts
		for _, rep := range got.Nodes {
			sum.Current += rep.Connections.Current
			sum.Opened += rep.Connections.Opened
		}
		if sum.Current != got.Cluster.Connections.Current || sum.Opened != got.Cluster.Connections.Opened {
			t.Errorf("cluster connections %+v are not the sum of the nodes' %+v", got.Cluster.Connections, sum)
		}
		if got.Cluster.PushLatency.SinceStart.Count != 6 {
			t.Errorf("cluster push latency count %d, want 6", got.Cluster.PushLatency.SinceStart.Count)
		}
	})

	t.Run("topics", func(t *testing.T) {
		var page struct {
			Topics []struct {
				Topic   string `json:"topic"`
				Local   int64  `json:"local_subscribers"`
				Cluster int64  `json:"cluster_subscribers"`
				Nodes   int    `json:"nodes"`
			} `json:"topics"`
			Complete bool `json:"complete"`
		}
		checkFor(t, waitTimeout, func() error {
			m["a"].admin.decode(200, &page, "GET", "/admin/v1/topics", "")
			got := fmt.Sprint(page.Topics)
			if want := "[{news 0 1 1} {orders 0 2 2}]"; got != want || !page.Complete {
				return fmt.Errorf("topics on a = %s (complete %v), want %s", got, page.Complete, want)
			}
			return nil
		})
	})

	t.Run("expiry", func(t *testing.T) {
		m["b"].admin.stop() // b stops publishing; noLeave keeps its entry until it expires
		for _, id := range []string{"a", "c"} {
			waitNodes(t, m[id].admin, "a", "c")
		}
		if got := streamB.text(); strings.Contains(got, ": drain") {
			t.Errorf("b's stream was drained: %q", got)
		}
		if r := m["a"].admin.do("POST", "/admin/v1/nodes/b/drain", `{}`); r.Status != 404 || r.errorCode(t) != "unknown_node" {
			t.Errorf("drain of a node gone = %s, want 404 unknown_node", r)
		}
	})

	t.Run("remote_drain", func(t *testing.T) {
		var d struct {
			NodeID string           `json:"node_id"`
			Queued bool             `json:"queued"`
			Drain  node.DrainStatus `json:"drain"`
		}
		m["a"].admin.decode(202, &d, "POST", "/admin/v1/nodes/c/drain", `{"window_s":0.1}`)
		if d.NodeID != "c" || !d.Queued {
			t.Errorf("drain answer %+v, want c queued", d)
		}
		if got := streamC.waitEnd(t); !strings.Contains(got, ": drain\n") || !strings.Contains(got, "retry: ") {
			t.Errorf("c's stream ended with %q, want a retry hint and \": drain\"", got)
		}
		waitNodesWhere(t, m["a"].admin, func(c clusterNodes) error {
			for _, rep := range c.Nodes {
				if rep.NodeID == "c" && rep.Draining && rep.Drain.Done && rep.Drain.WindowS == 0.1 && rep.Drain.Closed == 1 {
					return nil
				}
			}
			return fmt.Errorf("c's drain not reported done: %+v", c.Nodes)
		})
		var rep node.Report
		m["a"].admin.decode(200, &rep, "GET", "/admin/v1/node", "")
		if rep.Draining {
			t.Error("a drained too")
		}
	})
}

// waitNodesWhere polls a's GET /admin/v1/nodes until ok accepts it.
func waitNodesWhere(t testing.TB, a *testAdmin, ok func(clusterNodes) error) clusterNodes {
	t.Helper()
	var got clusterNodes
	checkFor(t, waitTimeout, func() error {
		got = clusterNodes{}
		a.decode(200, &got, "GET", "/admin/v1/nodes", "")
		return ok(got)
	})
	return got
}

// A node that stops cleanly leaves the cluster view at once, not after
// the expiry (a long one here, so only its removal explains it).
func TestCleanStopLeaves(t *testing.T) {
	reg := admin.NewLocalRegistry()
	cfg := fastConfig(t)
	cfg.TTL = 1 << 40 // about 18 minutes
	n1, n2 := startNode(t, "one", newMemory(t)), startNode(t, "two", newMemory(t))
	a1, a2 := startAdmin(t, n1, reg, cfg), startAdmin(t, n2, reg, cfg)
	waitNodes(t, a1, "one", "two")
	a2.stop()
	var got clusterNodes
	a1.decode(200, &got, "GET", "/admin/v1/nodes", "")
	if !slices.Equal(got.ids(), []string{"one"}) {
		t.Errorf("after two stopped: nodes %v, want one", got.ids())
	}
}

// The cluster's push latency is that of the union of the nodes' values:
// their histograms merged, not their percentiles averaged.
func TestClusterLatencyMerge(t *testing.T) {
	r := pubsubtest.StartRedis(t)
	m := startCluster(t, r, "merge", "x", "y")
	openStream(t, m["x"].node, "t")
	openStream(t, m["y"].node, "t")
	openStream(t, m["y"].node, "t")
	for range 5 {
		publish(t, m["x"].node, "t", 20)
	}
	const want = 300 // 100 events × 3 streams
	for _, id := range []string{"x", "y"} {
		checkFor(t, waitTimeout, func() error {
			rep := m[id].node.srv.Report(time.Now())
			if rep.PushLatency.SinceStart.Count != map[string]int64{"x": 100, "y": 200}[id] {
				return fmt.Errorf("%s: %d values", id, rep.PushLatency.SinceStart.Count)
			}
			return nil
		})
	}
	// The expected union, merged here into a dense histogram, independently
	// of package latency's merge.
	union := hdr.New(1, 3_600_000_000, 3)
	for _, id := range []string{"x", "y"} {
		snap, err := m[id].node.srv.MergeData(time.Now()).PushLatency.Decode()
		if err != nil {
			t.Fatal(err)
		}
		snap.SinceStart.MergeInto(union)
	}
	wantSummary := latency.Summary{
		Count: union.TotalCount(), P50: union.ValueAtQuantile(50), P90: union.ValueAtQuantile(90),
		P99: union.ValueAtQuantile(99), P999: union.ValueAtQuantile(99.9), Max: union.Max(),
	}
	for _, id := range []string{"x", "y"} {
		got := waitNodesWhere(t, m[id].admin, func(c clusterNodes) error {
			if n := c.Cluster.PushLatency.SinceStart.Count; n != want {
				return fmt.Errorf("cluster push latency count %d, want %d", n, want)
			}
			return nil
		})
		if got.Cluster.PushLatency.SinceStart != wantSummary {
			t.Errorf("on %s: cluster since_start %+v, want the union's %+v", id, got.Cluster.PushLatency.SinceStart, wantSummary)
		}
	}
}
