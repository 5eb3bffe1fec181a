package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssecluster/ssecluster/deploy/cluster/clustertest"
	"github.com/ssecluster/ssecluster/loadtest"
)

// These tests drive real clusters started by deploy/cluster/cluster.sh
// (real ssenode processes, redis-server and HAProxy on loopback) through
// every scenario with the command line itself, and check the reports
// against what is known to have been published. No timing is asserted.

// startCluster runs "cluster.sh start ARGS" (clustertest.Start) and
// returns the cluster with the cluster.env values these tests use.
func startCluster(t *testing.T, nodeEnv []string, args ...string) (*clustertest.Cluster, map[string]string) {
	t.Helper()
	c := clustertest.Start(t, nodeEnv, args...)
	return c, c.Env(t, "TARGET_URL", "NODE_PIDS", "LB_URL", "REDIS_URL")
}

// sseload runs the command line in this process and returns its report.
func sseload(t *testing.T, args ...string) *loadtest.Report {
	t.Helper()
	file := filepath.Join(t.TempDir(), "report.json")
	var out, errOut bytes.Buffer
	args = append(args, "--json", file, "--progress", "0")
	if err := run(context.Background(), args, func(string) string { return "" }, nil, &out, &errOut); err != nil {
		t.Fatalf("sseload %q: %v\n%s\n%s", args, err, out.String(), errOut.String())
	}
	t.Logf("sseload %s\n%s", strings.Join(args, " "), out.String())
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var r loadtest.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// exact checks a publishing report: every confirmed event reached every
// subscriber of its topic once, in order.
func exact(t *testing.T, name string, r *loadtest.Report, events int64) {
	t.Helper()
	d := r.Delivery
	if r.Publish == nil || r.Publish.Published != events || r.Publish.Failed != 0 {
		t.Errorf("%s: publish %+v, want %d confirmed, none failed", name, r.Publish, events)
	}
	if d.Expected == 0 || d.Loss != 0 || d.Unique != d.Expected || d.Duplicates != 0 || d.Reordered != 0 || d.Gaps != 0 {
		t.Errorf("%s: delivery %+v, want every expected event once, in order", name, d)
	}
}

func TestScenariosStandalone(t *testing.T) {
	c, env := startCluster(t, []string{"RETRY_BASE=200ms", "RETRY_CAP=1s", "LOG_LEVEL=warn"}, "--memory")
	target := env["TARGET_URL"]

	r := sseload(t, "capacity", "--target", target, "--conns", "300", "--duration", "1s", "--node-pid", env["NODE_PIDS"])
	if r.Connect.Established != 300 || r.Streams.AliveAtEnd != 300 || r.Nodes == nil || r.Nodes.RSSPerStreamKiB <= 0 {
		t.Errorf("capacity: established %d alive %d nodes %+v", r.Connect.Established, r.Streams.AliveAtEnd, r.Nodes)
	}

	r = sseload(t, "fanout", "--target", target, "--conns", "200", "--rate", "200", "--count", "100", "--warmup", "0s")
	exact(t, "fanout", r, 100)
	if r.Delivery.Expected != 100*200 || r.Topics != 1 {
		t.Errorf("fanout: expected %d on %d topics, want 20000 on 1", r.Delivery.Expected, r.Topics)
	}

	r = sseload(t, "topics", "--target", target, "--conns", "200", "--rate", "500", "--count", "400", "--warmup", "0s", "--batch", "10")
	exact(t, "topics", r, 400)
	if r.Delivery.Expected != 400 || r.Topics != 200 {
		t.Errorf("topics: expected %d on %d topics, want 400 on 200", r.Delivery.Expected, r.Topics)
	}

	// Restarting the only node of an in-memory cluster loses the history:
	// the streams come back and are told so with a reset, never a silent
	// skip, and nothing arrives twice.
	r = sseload(t, "storm", "--target", target, "--conns", "100", "--rate", "50", "--duration", "6s",
		"--storm-at", "2s", "--storm-cmd", c.Command("restart-node", "1"), "--drain", "5s")
	if r.Storm == nil || r.Storm.Error != "" || r.Reconnects.Resumed < 100 || r.Reconnects.Outcomes["reset"] == 0 {
		t.Errorf("standalone storm: storm %+v reconnects %+v", r.Storm, r.Reconnects)
	}
	if r.Delivery.Duplicates != 0 || r.Streams.AliveAtEnd != 100 {
		t.Errorf("standalone storm: duplicates %d alive %d, want 0 and 100", r.Delivery.Duplicates, r.Streams.AliveAtEnd)
	}
}

func TestScenariosCluster(t *testing.T) {
	c, env := startCluster(t, []string{"RETRY_BASE=200ms", "RETRY_CAP=1s", "LOG_LEVEL=warn"}, "-n", "3")
	target := env["LB_URL"]
	if target == "" {
		t.Fatal("no load balancer in cluster.env")
	}
	pids := strings.ReplaceAll(env["NODE_PIDS"], " ", ",")

	r := sseload(t, "capacity", "--target", target, "--conns", "300", "--duration", "1s", "--node-pid", pids)
	if r.Connect.Established != 300 || r.Nodes == nil || len(r.Nodes.Processes) != 3 || r.Nodes.RSSPerStreamKiB <= 0 {
		t.Errorf("capacity: established %d nodes %+v", r.Connect.Established, r.Nodes)
	}

	r = sseload(t, "fanout", "--target", target, "--conns", "200", "--rate", "200", "--count", "100", "--warmup", "0s")
	exact(t, "fanout", r, 100)

	r = sseload(t, "topics", "--target", target, "--conns", "200", "--rate", "500", "--count", "400", "--warmup", "0s", "--batch", "10")
	exact(t, "topics", r, 400)

	// SIGKILL one node of three: its streams come back through the load
	// balancer on the others and resume exactly from Redis.
	r = sseload(t, "storm", "--target", target, "--conns", "150", "--topics", "5", "--rate", "50", "--duration", "8s",
		"--storm-at", "2s", "--storm-cmd", c.Command("kill-node", "1"), "--drain", "10s")
	exact(t, "storm", r, r.Publish.Events)
	rc := r.Reconnects
	if r.Storm == nil || r.Storm.Error != "" || rc.Resumed == 0 || r.Storm.WaveS <= 0 {
		t.Errorf("storm: %+v, resumed %d", r.Storm, rc.Resumed)
	}
	if bad := rc.Resumed - rc.Outcomes["exact"] - rc.Outcomes["unverified"]; bad != 0 {
		t.Errorf("storm: resume outcomes %v, want every judged resume exact", rc.Outcomes)
	}
	if r.Streams.AliveAtEnd != 150 {
		t.Errorf("storm: %d streams alive at the end, want all 150 back", r.Streams.AliveAtEnd)
	}
}
