package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node/sse"
)

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"plain", "/tmp/Test x/001", "it's", "", "$(echo no)", "a\"b", "semi;colon"} {
		out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh read %q back as %q (%v)", s, out, err)
		}
	}
}

func TestLBNotUp(t *testing.T) {
	for out, want := range map[string]bool{
		"NAME ...\n  lb: node1 UP, 0 streams\n  lb: node2 UP, 3 streams\n": false,
		"  lb: node1 UP, 0 streams\n  lb: node2 NOLB, 0 streams\n":         true,
		"  lb: node1 DOWN, 0 streams\n":                                    true,
		"  lb: node1 UP 1/2, 0 streams\n":                                  false,
	} {
		if got := lbNotUp.MatchString(out); got != want {
			t.Errorf("lbNotUp(%q) = %v, want %v", out, got, want)
		}
	}
}

// The topology tests below start real Sentinel groups and Redis Clusters
// with cluster.sh and check its Redis commands against the servers
// themselves (redis-cli), then, once ssenode knows the topology, a
// cluster of nodes on each through a failover.

// redisCLI runs one redis-cli command against 127.0.0.1:port and returns
// its output, trimmed ("" for a nil reply).
func redisCLI(t testing.TB, port string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-p", port}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli -p %s %q: %v\n%s", port, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// role returns the first line of ROLE: master or slave.
func role(t testing.TB, port string) string {
	t.Helper()
	r, _, _ := strings.Cut(redisCLI(t, port, "ROLE"), "\n")
	return r
}

// checkSeeds checks a go-redis failover or cluster URL: the first address
// in the host, the others as addr parameters, all on 127.0.0.1, ports in
// the order given.
func checkSeeds(t testing.TB, raw string, ports []string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	q := u.Query()
	got := append([]string{u.Host}, q["addr"]...)
	var want []string
	for _, p := range ports {
		want = append(want, "127.0.0.1:"+p)
	}
	if u.Scheme != "redis" || !slices.Equal(got, want) {
		t.Errorf("%q: scheme %q, addresses %v, want redis and %v", raw, u.Scheme, got, want)
	}
	return q
}

// TestSentinelRedis: a Sentinel group without nodes. What the master
// acknowledged while pause-replicas held the replicas back is lost in the
// failover kill-redis-master causes, what it had replicated is not; the
// killed master comes back as a replica; paused replicas that are resumed
// without a failover catch up.
func TestSentinelRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Sentinel group; skipped with -short")
	}
	c := Start(t, nil, "--sentinel", "--no-nodes")
	env := c.Env(t, "CLUSTER_REDIS", "NODES", "TARGET_URL", "REDIS_URL", "REDIS_PORTS", "SENTINEL_PORTS",
		"REDIS_SENTINEL_URL", "REDIS_MASTER_NAME", "REDIS_CLUSTER_URL")
	servers, sentinels := strings.Fields(env["REDIS_PORTS"]), strings.Fields(env["SENTINEL_PORTS"])
	if env["CLUSTER_REDIS"] != "sentinel" || env["NODES"] != "0" || env["TARGET_URL"] != "" || env["REDIS_URL"] != "" ||
		env["REDIS_CLUSTER_URL"] != "" || len(servers) != 3 || len(sentinels) != 3 || env["REDIS_MASTER_NAME"] == "" {
		t.Fatalf("cluster.env %v", env)
	}
	if q := checkSeeds(t, env["REDIS_SENTINEL_URL"], sentinels); q.Get("master_name") != env["REDIS_MASTER_NAME"] {
		t.Errorf("REDIS_SENTINEL_URL %q: master_name is not REDIS_MASTER_NAME %q", env["REDIS_SENTINEL_URL"], env["REDIS_MASTER_NAME"])
	}

	master := c.Output(t, "redis-master")
	if master != servers[0] {
		t.Fatalf("redis-master %q, want redis-1's port %s", master, servers[0])
	}
	redisCLI(t, master, "SET", "kept", "1")
	if n := redisCLI(t, master, "WAIT", "2", "5000"); n != "2" {
		t.Fatalf("WAIT 2: %q replicas hold the write", n)
	}
	c.Output(t, "pause-replicas")
	redisCLI(t, master, "SET", "lost", "1")
	promoted := c.Output(t, "kill-redis-master")
	if promoted == master || !slices.Contains(servers, promoted) {
		t.Fatalf("kill-redis-master: new master %q (servers %v, old %s)", promoted, servers, master)
	}
	if r := role(t, promoted); r != "master" {
		t.Errorf("port %s: ROLE %s after the failover", promoted, r)
	}
	if m := c.Output(t, "redis-master"); m != promoted {
		t.Errorf("redis-master %q after the failover, want %s", m, promoted)
	}
	if kept, lost := redisCLI(t, promoted, "GET", "kept"), redisCLI(t, promoted, "GET", "lost"); kept != "1" || lost != "" {
		t.Errorf("new master: kept=%q lost=%q, want the replicated write only", kept, lost)
	}

	c.Output(t, "restart-redis-server", master)
	if r := role(t, master); r != "slave" {
		t.Errorf("restarted old master: ROLE %s, want slave", r)
	}
	c.WaitReady(t, 30*time.Second)

	c.Output(t, "pause-replicas")
	redisCLI(t, promoted, "SET", "caught-up", "1")
	c.Output(t, "resume-replicas")
	for _, p := range servers {
		if p != promoted {
			Eventually(t, 10*time.Second, "replica "+p+" catching up", func() bool { return redisCLI(t, p, "GET", "caught-up") == "1" })
		}
	}
}

// TestRedisClusterRedis: a Redis Cluster without nodes. kill-redis-master
// hands slot 0 to the replica of its master, with its data; the killed
// server rejoins as a replica; reshard moves slot 0 and its keys to
// another master.
func TestRedisClusterRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster; skipped with -short")
	}
	c := Start(t, nil, "--redis-cluster", "--no-nodes")
	env := c.Env(t, "CLUSTER_REDIS", "NODES", "REDIS_URL", "REDIS_PORTS", "REDIS_CLUSTER_URL", "REDIS_SENTINEL_URL", "SENTINEL_PORTS")
	servers := strings.Fields(env["REDIS_PORTS"])
	if env["CLUSTER_REDIS"] != "cluster" || env["NODES"] != "0" || env["REDIS_URL"] != "" || env["REDIS_SENTINEL_URL"] != "" ||
		env["SENTINEL_PORTS"] != "" || len(servers) != 6 {
		t.Fatalf("cluster.env %v", env)
	}
	checkSeeds(t, env["REDIS_CLUSTER_URL"], servers)

	first, last := c.Output(t, "redis-master"), c.Output(t, "redis-master", "16383")
	if !slices.Contains(servers, first) || !slices.Contains(servers, last) || first == last {
		t.Fatalf("redis-master: slot 0 on %q, slot 16383 on %q (servers %v)", first, last, servers)
	}
	const key = "{06S}k" // hash slot 0
	if s := redisCLI(t, first, "CLUSTER", "KEYSLOT", key); s != "0" {
		t.Fatalf("CLUSTER KEYSLOT %s = %s, want 0", key, s)
	}
	redisCLI(t, first, "SET", key, "v")
	if n := redisCLI(t, first, "WAIT", "1", "5000"); n != "1" {
		t.Fatalf("WAIT 1: %q replicas hold the write", n)
	}

	promoted := c.Output(t, "kill-redis-master", "0")
	if promoted == first || !slices.Contains(servers, promoted) {
		t.Fatalf("kill-redis-master 0: new master %q (servers %v, old %s)", promoted, servers, first)
	}
	if r, v := role(t, promoted), redisCLI(t, promoted, "GET", key); r != "master" || v != "v" {
		t.Errorf("port %s after the failover: ROLE %s, %s=%q", promoted, r, key, v)
	}
	c.Output(t, "restart-redis-server", first)
	if r := role(t, first); r != "slave" {
		t.Errorf("restarted old master: ROLE %s, want slave", r)
	}
	c.WaitReady(t, 30*time.Second)

	moved := c.Output(t, "reshard", "100")
	if moved == promoted || !slices.Contains(servers, moved) {
		t.Fatalf("reshard 100: slot 0 on %q, want another master than %s", moved, promoted)
	}
	if p := c.Output(t, "redis-master", "100"); p != promoted {
		t.Errorf("slot 100 on %q after moving 100 slots, want it left on %s", p, promoted)
	}
	if v := redisCLI(t, moved, "GET", key); v != "v" {
		t.Errorf("%s on its new master: %q", key, v)
	}
}

// needFlags skips the test unless the ssenode binary of env (BuildNode's
// "BIN=...") has every flag: the topologies' settings are younger than
// this test.
func needFlags(t *testing.T, binEnv string, flags ...string) {
	t.Helper()
	out, _ := exec.Command(strings.TrimPrefix(binEnv, "BIN="), "-h").CombinedOutput()
	for _, f := range flags {
		if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(f) + `\b`).Match(out) {
			t.Skipf("ssenode has no %s flag yet", f)
		}
	}
}

func TestSentinelNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster on a Sentinel group; skipped with -short")
	}
	bin := BuildNode(t)
	needFlags(t, bin, "-redis-sentinel-url", "-publish-wait-replicas")
	// One of two replicas must hold every event before it is confirmed:
	// after the failover the other replica follows the new master, so
	// publishing goes on.
	testNodesFailover(t, []string{bin, "LOG_LEVEL=warn", "PUBLISH_WAIT_REPLICAS=1"}, "--sentinel")
}

func TestRedisClusterNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster on a Redis Cluster; skipped with -short")
	}
	bin := BuildNode(t)
	needFlags(t, bin, "-redis-cluster-url")
	testNodesFailover(t, []string{bin, "LOG_LEVEL=warn"}, "--redis-cluster")
}

// testNodesFailover starts two nodes and HAProxy on the topology, checks
// that every node is ready and that an event published through the load
// balancer reaches a stream on each node, kills the Redis master, and
// checks the same again.
func testNodesFailover(t *testing.T, env []string, topology string) {
	t.Helper()
	c := Start(t, env, topology, "-n", "2")
	c.WaitReady(t, 30*time.Second)
	e := c.Env(t, "TARGET_URL", "LB_URL", "NODE_URLS")
	nodes := strings.Fields(e["NODE_URLS"])
	if e["LB_URL"] == "" || e["TARGET_URL"] != e["LB_URL"] || len(nodes) != 2 {
		t.Fatalf("cluster.env %v", e)
	}
	for _, n := range nodes {
		if st := status(t, n+"/readyz"); st != http.StatusOK {
			t.Fatalf("%s/readyz: %d", n, st)
		}
	}
	start := time.Now()
	delivered(t, e["TARGET_URL"], nodes, 1)
	t.Logf("delivered on every node in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	port := c.Output(t, "kill-redis-master")
	t.Logf("failover to port %s in %v", port, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	delivered(t, e["TARGET_URL"], nodes, 2)
	t.Logf("after the failover: delivered on every node in %v", time.Since(start).Round(time.Millisecond))
}

// testClient keeps no idle connections (no goroutine outlives a test).
var testClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

func status(t testing.TB, u string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// delivered opens a stream of topic t on each node, publishes
// {"topic":"t","data":{"x":x}} through target until it is confirmed (a
// publish during a failover may fail: 503) and waits for the event on
// every stream. The bound is generous: it is there to end a test whose
// event never comes, not to time the delivery.
func delivered(t *testing.T, target string, nodes []string, x int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var streams []*sse.Parser
	for _, n := range nodes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n+"/v1/events?topic=t", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatalf("%s: subscribe: %v", n, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: subscribe: %s", n, resp.Status)
		}
		p := sse.NewParser(resp.Body)
		for { // the stream is subscribed once its first id-only block is there
			ev, err := p.Next()
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if ev.HasID {
				break
			}
		}
		streams = append(streams, p)
	}

	body := fmt.Sprintf(`{"topic":"t","data":{"x":%d}}`, x)
	publish := func() (ok bool, answer string) {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		req, err := http.NewRequestWithContext(pctx, http.MethodPost, target+"/v1/publish", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := testClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK, resp.Status + " " + string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, answer := publish()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish %s: not confirmed within 30s; last answer: %s", body, answer)
		}
		time.Sleep(200 * time.Millisecond) // retry interval
	}

	for i, p := range streams {
		for {
			ev, err := p.Next()
			if err != nil {
				t.Fatalf("%s: stream ended before the event x=%d: %v", nodes[i], x, err)
			}
			var d struct{ X int }
			if ev.Dispatch && json.Unmarshal([]byte(ev.Data), &d) == nil && d.X == x {
				break
			}
		}
	}
}
