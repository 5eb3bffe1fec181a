package faults

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/deploy/cluster/clustertest"
	"github.com/ssecluster/ssecluster/loadtest"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// maxObserved bounds the topics observer streams watch (per node).
const maxObserved = 16

// The faults of Redis topologies: a Sentinel group failing over (with and
// without PUBLISH_WAIT_REPLICAS, with writes only the dead master had), a
// Redis Cluster losing a master and moving slots, a Redis out of memory
// and a slow one. See the package doc for what each allows.
var redisCases = []faultCase{
	{
		name: "sentinel-master-kill", what: "Sentinel: SIGKILL the master, a replica is promoted; publishes wait for 1 replica",
		args: []string{"--sentinel"}, env: []string{"PUBLISH_WAIT_REPLICAS=1"}, lasts: 3 * time.Second, observe: true,
		// The readers hand on what the master stored before any replica
		// has it (WAIT holds back the publisher's 200, not delivery): an
		// event stored in the last milliseconds before the kill may be
		// delivered and lost, never confirmed. Sentinel may also fail
		// over twice (two sentinels win consecutive epochs), losing what
		// the first new master stored unreplicated. Confirmed events are
		// all kept either way.
		lost: lostUnconfirmed,
		cmd:  func(o *outcome) string { return masterKill(o.cl, "") },
	},
	{
		name: "sentinel-lost-writes-wait", what: "Sentinel: replicas paused, 2 s of publishes on the master alone (503 publish_not_replicated), master SIGKILLed; publishes wait for 1 replica",
		args: []string{"--sentinel"}, env: []string{"PUBLISH_WAIT_REPLICAS=1"}, lasts: 5 * time.Second, observe: true,
		lost: lostUnconfirmed, loses: true,
		// Each connection has one request stuck on the master (503,
		// retried). What the master wrote before pause-replicas cut the
		// links (some 20 ms after the first replica stopped) reaches the
		// replicas; with a connection per topic the stuck requests start
		// over 100 ms, so some surely come later and are lost.
		publishConns: 10,
		cmd: func(o *outcome) string {
			return o.cl.Command("pause-replicas") + " && sleep 2 && " + masterKill(o.cl, "")
		},
		check: func(t *testing.T, o *outcome) {
			// The pause took: publishes were stored on the master alone
			// and not confirmed.
			rej := rejected(t, o.cl)
			if rej["503 publish_not_replicated"] == 0 {
				t.Errorf("no publish answered 503 publish_not_replicated while the replicas were paused")
			}
			t.Logf("the nodes' error answers: %v", rej)
		},
	},
	{
		name: "sentinel-lost-writes", what: "Sentinel: replicas paused, 2 s of confirmed publishes on the master alone, master SIGKILLed: they are lost",
		args: []string{"--sentinel"}, lasts: 5 * time.Second, observe: true,
		lost: lostAcked, loses: true, historyGone: true,
		cmd: func(o *outcome) string {
			return o.cl.Command("pause-replicas") + " && sleep 2 && " + masterKill(o.cl, "")
		},
	},
	{
		name: "cluster-master-kill", what: "Redis Cluster: SIGKILL the master of slot 0, its replica is promoted, the old master rejoins as a replica; publishes wait for 1 replica",
		args: []string{"--redis-cluster"}, env: []string{"PUBLISH_WAIT_REPLICAS=1"}, lasts: 8 * time.Second, observe: true,
		lost: lostUnconfirmed, // as sentinel-master-kill
		cmd: func(o *outcome) string {
			// The shard has no replica once its master is gone: WAIT 1
			// answers 503 until the old master is back as the new one's
			// replica.
			restart := strings.Replace(o.cl.Command("restart-redis-server", "OLD_PORT"), "OLD_PORT", `"$old"`, 1)
			return masterKill(o.cl, "0") + " && " + restart + ` && echo master-restored`
		},
	},
	{
		name: "cluster-reshard", what: "Redis Cluster: 1,000 slots moved from the master of slot 0 to another while publishing; 64 partitions, 128 topics",
		args: []string{"--redis-cluster"}, env: []string{"PARTITIONS=64"}, topics: 128, rate: 300, lasts: 4 * time.Second, observe: true,
		prepare: prepareReshard,
		cmd:     func(o *outcome) string { return o.cl.Command("reshard", "1000") },
		check:   checkReshard,
	},
	{
		name: "redis-maxmemory", what: "Redis maxmemory just above its use (noeviction) until publishes get 503 broker_full, 3 s more, then no limit",
		lasts: 4 * time.Second, observe: true,
		cmd: maxmemoryFault,
		check: func(t *testing.T, o *outcome) {
			checkStreamsOpen(t, o, "while Redis refused writes")
			rej := rejected(t, o.cl)
			if rej["503 broker_full"] == 0 {
				t.Errorf("no publish answered 503 broker_full while Redis was out of memory")
			}
			t.Logf("the nodes' error answers: %v", rej)
		},
	},
	{
		name: "redis-slow", what: "200 ms added to every Redis command (a proxy delaying what the nodes send) for 8 s",
		lasts: 8 * time.Second, observe: true,
		setup: func(t *testing.T, o *outcome) []string {
			r := pubsubtest.StartRedis(t)
			p := startLatencyProxy(t, r.Addr)
			o.prep = p
			return []string{"--redis-url", "redis://" + p.Addr() + "/0"}
		},
		cmd: func(o *outcome) string {
			p := o.prep.(*latencyProxy)
			return p.DelayCommand(200*time.Millisecond) + " && sleep 8 && " + p.DelayCommand(0)
		},
		check: checkSlow,
	},
}

// masterKill is the shell command that SIGKILLs the Redis master (of slot,
// with --redis-cluster), waits for its successor and prints when it
// killed it, its port ($old, for what follows) and when the successor
// served: kill-redis-master finds the master and kills it within a few
// milliseconds of the first line. A command that starts the old master
// again itself prints "master-restored" (else runCase does it).
func masterKill(c *clustertest.Cluster, slot string) string {
	args := []string{}
	if slot != "" {
		args = append(args, slot)
	}
	return "old=$(" + c.Command("redis-master", args...) + `) && echo "master-killed $(date +%s%N) $old" && ` +
		c.Command("kill-redis-master", args...) + ` && echo "master-promoted $(date +%s%N)"`
}

// nodeURLs returns each node's name and public URL.
func nodeURLs(t *testing.T, c *clustertest.Cluster) [][2]string {
	t.Helper()
	env := c.Env(t, "NODE_IDS", "NODE_URLS")
	ids, urls := strings.Fields(env["NODE_IDS"]), strings.Fields(env["NODE_URLS"])
	if len(ids) == 0 || len(ids) != len(urls) {
		t.Fatalf("cluster.env: nodes %q at %q", ids, urls)
	}
	out := make([][2]string, len(ids))
	for i := range ids {
		out[i] = [2]string{ids[i], urls[i]}
	}
	return out
}

// checkStreamsOpen requires that no stream dropped during the fault
// (when: what the fault did) and that heartbeats kept coming.
// HEARTBEAT_INTERVAL is the longest silence a stream gets (the node looks
// every half interval): with observers, no observed stream went quiet for
// more than twice that; without, where no event flows during the fault
// (the fault's length allows about faultS/heartbeat comments per stream),
// a third of those comments is plenty.
func checkStreamsOpen(t *testing.T, o *outcome, when string) {
	t.Helper()
	r := o.r
	if r.Connect.Reconnects != 0 || len(r.Streams.Drops) != 0 {
		t.Errorf("streams dropped %s (drops %v, reconnects %d): they must stay open", when, r.Streams.Drops, r.Connect.Reconnects)
	}
	if o.obs == nil {
		if want := int64(float64(r.Subs) * o.faultS / heartbeat.Seconds() / 3); r.Streams.Comments < want {
			t.Errorf("%d heartbeat comments over %d streams during a %.1f s fault, want at least %d", r.Streams.Comments, r.Subs, o.faultS, want)
		}
		return
	}
	var longest time.Duration
	for _, s := range o.obs.streams {
		if _, drops := s.snapshot(); drops != 0 {
			t.Errorf("observer stream %s %s dropped %d times %s (last: %s)", s.node, s.topic, drops, when, s.lastFailure())
		}
		if d := s.longestSilence(); d > 2*heartbeat {
			t.Errorf("observer stream %s %s was silent for %v %s: heartbeats every %v at the latest", s.node, s.topic, d.Round(time.Millisecond), when, heartbeat)
		}
		longest = max(longest, s.longestSilence())
	}
	t.Logf("longest silence of an observed stream: %v (%d heartbeat comments over all %d streams)", longest.Round(time.Millisecond), r.Streams.Comments, r.Subs)
}

// rollback is one "partition history rolled back" a node logged.
type rollback struct {
	node      string
	partition int
	missing   string // the stream entry id it found missing
}

// rolledBack returns the rollbacks the nodes logged: the node's claim
// that a position it read or stored is gone from Redis.
func rolledBack(t *testing.T, c *clustertest.Cluster) []rollback {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(c.Dir, "node*.log"))
	var out []rollback
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l struct {
				Msg       string `json:"msg"`
				NodeID    string `json:"node_id"`
				Partition *int   `json:"partition"`
				Missing   string `json:"missing"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil || !strings.HasPrefix(l.Msg, "partition history rolled back") || l.Partition == nil {
				continue // go-redis's own lines are not JSON
			}
			out = append(out, rollback{node: strings.TrimSuffix(filepath.Base(f), ".log"), partition: *l.Partition, missing: l.Missing})
		}
	}
	return out
}

// checkHistory holds the nodes' rollbacks against Redis and the observed
// streams against the case's rules (checkObserved). A rollback is allowed
// only where history may be lost, and must be real: the position the node
// missed is not in the partition's stream on the master now.
func checkHistory(t *testing.T, o *outcome) {
	t.Helper()
	rbs := rolledBack(t, o.cl)
	parts := make(map[int]bool)
	for _, rb := range rbs {
		parts[rb.partition] = true
		if o.c.lost == lostNone {
			t.Errorf("%s found partition %d rolled back (entry %s missing): this fault loses no history", rb.node, rb.partition, rb.missing)
			continue
		}
		key := fmt.Sprintf("{sse:%d}:events", rb.partition)
		port := masterOf(t, o.cl, key)
		if out := redisCLI(t, port, []string{"xrange", key, rb.missing, rb.missing}); strings.TrimSpace(out) != "" {
			t.Errorf("%s reset partition %d, but entry %s it found missing is on the master (port %s):\n%s", rb.node, rb.partition, rb.missing, port, out)
		}
	}
	if o.c.loses && len(rbs) == 0 {
		t.Errorf("no node found a partition rolled back: the master died with writes no replica had (or the case lost nothing, and checked nothing)")
	}
	if o.obs != nil {
		rules := obsRules{mode: o.c.lost, batch: o.cfg.Batch, total: o.topicTotal, rolledBack: parts}
		bad, again := checkObserved(o.obs, rules)
		for _, p := range bad {
			t.Errorf("observed: %s", p)
		}
		// An event received again after a reset was stored anew (after
		// the stream's new position); its first copy must be gone, or it
		// is stored twice.
		for _, r := range again {
			key := fmt.Sprintf("{sse:%d}:events", r.part)
			port := masterOf(t, o.cl, key)
			if out := redisCLI(t, port, []string{"xrange", key, r.pos.String(), r.pos.String()}); strings.TrimSpace(out) != "" {
				t.Errorf("event %d of partition %d came again after a reset, but its first copy (%s) is still on the master: stored twice", r.seq, r.part, r.pos)
			}
		}
		if len(again) > 0 {
			t.Logf("events received again after a reset (unconfirmed, lost, stored anew; first copies checked gone): %d", len(again))
		}
	}
	if len(rbs) > 0 {
		t.Logf("rollbacks found by the nodes (each checked missing on the new master): %v", rbs)
	}
}

// masterOf returns the port of the master holding key.
func masterOf(t *testing.T, c *clustertest.Cluster, key string) string {
	t.Helper()
	env := c.Env(t, "CLUSTER_REDIS", "REDIS_PORT", "REDIS_PORTS")
	switch env["CLUSTER_REDIS"] {
	case "sentinel":
		return strings.TrimSpace(c.Run(t, "redis-master"))
	case "cluster":
		slot := strings.TrimSpace(redisCLI(t, strings.Fields(env["REDIS_PORTS"])[0], []string{"cluster", "keyslot", key}))
		return strings.TrimSpace(c.Run(t, "redis-master", slot))
	}
	return env["REDIS_PORT"]
}

// redisCLI runs each command on one redis-cli connection to port and
// returns the output (raw: one line per reply element).
func redisCLI(t *testing.T, port string, cmds ...[]string) string {
	t.Helper()
	var in strings.Builder
	for _, c := range cmds {
		in.WriteString(strings.Join(c, " ") + "\n")
	}
	cmd := exec.Command("timeout", "10", "redis-cli", "-p", port)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("redis-cli -p %s %q: %v", port, cmds, err)
	}
	return strings.ReplaceAll(string(out), "\r", "")
}

// rejected sums the error answers of every node's public listener
// (GET /admin/v1/node, rejected), by "status code": "503 broker_full".
func rejected(t *testing.T, c *clustertest.Cluster) map[string]int64 {
	t.Helper()
	out := make(map[string]int64)
	for _, base := range strings.Fields(c.Env(t, "NODE_ADMIN_URLS")["NODE_ADMIN_URLS"]) {
		var rep struct {
			Rejected []struct {
				Status int    `json:"status"`
				Code   string `json:"code"`
				Count  int64  `json:"count"`
			} `json:"rejected"`
		}
		adminGet(t, base+"/admin/v1/node", &rep)
		for _, r := range rep.Rejected {
			out[strconv.Itoa(r.Status)+" "+r.Code] += r.Count
		}
	}
	return out
}

// adminGet reads one admin API answer into v (ADMIN_TOKEN, when the
// nodes got one from this environment).
func adminGet(t *testing.T, url string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok := os.Getenv("ADMIN_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// logFailover logs the failover's timeline, from the master's kill: the
// new master serving (kill-redis-master returned), the first confirmed
// publish (the end of the publishes' stall in the timeline), and every
// observed stream (node × topic) receiving events again: the end of its
// longest silence that ended after the kill.
func logFailover(t *testing.T, o *outcome) {
	killMs := o.killedNs / 1e6
	pub := backAfter(o.r.Timeline, killMs, func(s loadtest.Sample) (int64, bool) {
		if s.Published == nil {
			return 0, false
		}
		return *s.Published, true
	})
	line := fmt.Sprintf("failover %s: master killed %.2fs after the fault began; from the kill: new master serving %.2fs, first confirmed publish %.2fs",
		o.c.name, float64(o.killedNs-o.r.Storm.TriggeredUnixNs)/1e9, float64(o.promotedNs-o.killedNs)/1e9, pub)
	if o.obs != nil {
		var last float64
		slowest, never := "", 0
		for _, s := range o.obs.streams {
			items, _ := s.snapshot()
			var prev, gap, back int64
			for _, it := range items {
				if it.kind != obsEvent {
					continue
				}
				if prev != 0 && it.atNs > o.killedNs && it.atNs-prev > gap {
					gap, back = it.atNs-prev, it.atNs
				}
				prev = it.atNs
			}
			if back == 0 {
				never++
				continue
			}
			if d := float64(back-o.killedNs) / 1e9; d > last {
				last, slowest = d, s.node+" "+s.topic
			}
		}
		line += fmt.Sprintf(", every stream delivering again %.2fs (slowest of %d observed: %s", last, len(o.obs.streams), slowest)
		if never > 0 {
			line += fmt.Sprintf("; %d never did", never)
		}
		line += ")"
	}
	t.Log(line)
}

// reshardPlan is what prepareReshard found: the slot of each partition
// and which master served it before.
type reshardPlan struct {
	slots  []int
	before []string
}

// prepareReshard makes sure the reshard moves partitions: reshard moves
// slots from the master of slot 0, starting with its lowest (redis-cli
// --cluster reshard takes the source's slots in order), so at least one
// partition key must hash below 1000 and be served by that master.
func prepareReshard(t *testing.T, o *outcome) {
	t.Helper()
	port := strings.Fields(o.cl.Env(t, "REDIS_PORTS")["REDIS_PORTS"])[0]
	const partitions = 64 // the case's PARTITIONS
	plan := &reshardPlan{slots: partitionSlots(t, port, partitions)}
	plan.before = slotMasters(t, port, plan.slots)
	src := slotMasters(t, port, []int{0})[0]
	var inRange []int
	for p, s := range plan.slots {
		if s < 1000 && plan.before[p] == src {
			inRange = append(inRange, p)
		}
	}
	if len(inRange) == 0 {
		t.Fatalf("no partition key of %d hashes to slots 0..999 of port %s: the reshard would move none (slots %v)", partitions, src, plan.slots)
	}
	t.Logf("partitions in the slots the reshard moves (0..999, port %s): %v", src, inRange)
	o.prep = plan
}

// checkReshard requires that partitions changed masters.
func checkReshard(t *testing.T, o *outcome) {
	plan := o.prep.(*reshardPlan)
	port := strings.TrimSpace(o.cl.Run(t, "redis-master", "0"))
	after := slotMasters(t, port, plan.slots)
	var moved []string
	for p := range plan.slots {
		if after[p] != plan.before[p] {
			moved = append(moved, fmt.Sprintf("%d (slot %d, %s->%s)", p, plan.slots[p], plan.before[p], after[p]))
		}
	}
	if len(moved) == 0 {
		t.Errorf("no partition changed masters: the reshard moved nothing the nodes use")
	}
	t.Logf("partitions moved by the reshard: %s", strings.Join(moved, ", "))
}

// partitionSlots returns the Redis Cluster slot of each partition's keys.
func partitionSlots(t *testing.T, port string, partitions int) []int {
	t.Helper()
	cmds := make([][]string, partitions)
	for p := range cmds {
		cmds[p] = []string{"cluster", "keyslot", fmt.Sprintf("{sse:%d}:events", p)}
	}
	lines := strings.Fields(redisCLI(t, port, cmds...))
	if len(lines) != partitions {
		t.Fatalf("cluster keyslot: %d answers for %d keys", len(lines), partitions)
	}
	slots := make([]int, partitions)
	for p, l := range lines {
		var err error
		if slots[p], err = strconv.Atoi(l); err != nil {
			t.Fatalf("cluster keyslot: %q", l)
		}
	}
	return slots
}

// slotMasters returns the port of the master serving each slot, as the
// server on port sees it (CLUSTER NODES: id addr flags master ping pong
// epoch link slots...; "[...]" entries are migrations in progress).
func slotMasters(t *testing.T, port string, slots []int) []string {
	t.Helper()
	out := make([]string, len(slots))
	for _, line := range strings.Split(redisCLI(t, port, []string{"cluster", "nodes"}), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") && !strings.Contains(f[2], "fail?") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		_, p, _ := strings.Cut(addr, ":")
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue
			}
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			l, _ := strconv.Atoi(lo)
			h, _ := strconv.Atoi(hi)
			for i, s := range slots {
				if s >= l && s <= h {
					out[i] = p
				}
			}
		}
	}
	for i, p := range out {
		if p == "" {
			t.Fatalf("no master serves slot %d (port %s's view)", slots[i], port)
		}
	}
	return out
}

// maxmemoryFault sets maxmemory 32 KiB above what Redis uses (noeviction)
// and waits until a node refused a publish with broker_full (its log line;
// at most 10 s), lets publishes be refused 3 s more, then lifts the limit.
func maxmemoryFault(o *outcome) string {
	dir := shellQuoteDir(o.cl.Dir)
	r := `redis-cli -p "$REDIS_PORT"`
	logs := dir + "/node*.log"
	return `. ` + dir + `/cluster.env && ` + r + ` config set maxmemory-policy noeviction >/dev/null && ` +
		`used=$(` + r + ` info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p') && ` +
		r + ` config set maxmemory $((used + 32768)) >/dev/null && echo "maxmemory $((used + 32768))" && ` +
		`i=0 && until grep -q '"publish refused: store full"' ` + logs + `; do i=$((i + 1)); [ $i -le 100 ] || { echo "no broker_full within 10 s"; ` + r + ` config set maxmemory 0; exit 1; }; sleep 0.1; done && ` +
		`sleep 3 && ` + r + ` config set maxmemory 0 >/dev/null`
}

// shellQuoteDir quotes a directory for sh, leaving the glob after it
// outside the quotes.
func shellQuoteDir(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// checkSlow: a publish ends within PUBLISH_TIMEOUT (5 s, the node's
// default) and a margin, answered 200 or 503 publish_outcome_unknown
// (never a hang, never a client timeout); streams stay open with their
// heartbeats, however slow Redis is.
func checkSlow(t *testing.T, o *outcome) {
	const publishTimeout, margin = 5 * time.Second, time.Second
	r := o.r
	checkStreamsOpen(t, o, "while Redis was slow")
	if max := r.Publish.Request.Max(); max > publishTimeout+margin {
		t.Errorf("a publish took %v, beyond PUBLISH_TIMEOUT %v + %v", max, publishTimeout, margin)
	}
	for e := range r.Publish.Errors {
		if e != "http_503" {
			t.Errorf("publish errors %v: want only 503 answers (no timeout, no cut connection)", r.Publish.Errors)
			break
		}
	}
	rej := rejected(t, o.cl)
	for k, n := range rej {
		if strings.HasPrefix(k, "5") && k != "503 publish_outcome_unknown" && k != "503 not_ready" {
			t.Errorf("the nodes answered %s %d times: a slow Redis must give 200 or 503 publish_outcome_unknown", k, n)
		}
	}
	t.Logf("slow Redis: longest publish %v, publish errors %v, the nodes' error answers %v, delivery latency p99 %v",
		r.Publish.Request.Max().Round(time.Millisecond), r.Publish.Errors, rej, r.Latency.Quantile(0.99).Round(time.Millisecond))
}

// TestEvictionWarning: a node on a Redis whose maxmemory-policy may evict
// its keys says so in its report (GET /admin/v1/node, broker.warnings),
// and one on noeviction (the default) says nothing.
func TestEvictionWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("a real cluster")
	}
	c := clustertest.Start(t, append(nodeEnv(clustertest.BuildNode(t)), "LOG_LEVEL=error"), "-n", "1", "--no-lb")
	env := c.Env(t, "REDIS_PORT", "NODE_ADMIN_URLS")
	report := func() (topology string, warnings []string) {
		var rep struct {
			Broker struct {
				Topology string   `json:"topology"`
				Warnings []string `json:"warnings"`
			} `json:"broker"`
		}
		adminGet(t, env["NODE_ADMIN_URLS"]+"/admin/v1/node", &rep)
		return rep.Broker.Topology, rep.Broker.Warnings
	}
	if top, w := report(); top != "single" || len(w) != 0 {
		t.Errorf("noeviction: topology %q, warnings %q; want single and none", top, w)
	}
	redisCLI(t, env["REDIS_PORT"], []string{"config", "set", "maxmemory-policy", "allkeys-lru"})
	// The node looks at first contact and then every ~20 s: a restart
	// makes it look now.
	c.Run(t, "restart-node", "1")
	top, w := report()
	if top != "single" || len(w) != 1 || !strings.Contains(w[0], "maxmemory-policy allkeys-lru") {
		t.Errorf("allkeys-lru: topology %q, warnings %q; want one warning naming the policy", top, w)
	}
}
