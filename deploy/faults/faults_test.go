package faults

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/deploy/cluster/clustertest"
	"github.com/ssecluster/ssecluster/loadtest"
)

// Node settings of every case. Small retry hints keep the cases short
// (the node draws each hint from [0, min(cap, base*2^attempt)]); a short
// heartbeat shows that streams stay open while Redis is away.
const (
	retryCap  = 2 * time.Second
	heartbeat = time.Second
	// lbHintMax is the widest hint HAProxy gives with its own answers on
	// /v1/events (retry: 1000 + rand(4000) ms, haproxy.cfg.tmpl).
	lbHintMax = 5 * time.Second
	// hintsToResume is how many hints a dropped stream may wait before it
	// is back: its last hint, one shed (a draining node, a load balancer
	// without a node), one more for the margin.
	hintsToResume = 3
)

func nodeEnv(bin string) []string {
	return []string{
		bin, "LOG_LEVEL=warn",
		"RETRY_BASE=500ms", "RETRY_CAP=" + retryCap.String(),
		"HEARTBEAT_INTERVAL=" + heartbeat.String(),
		"DRAIN_WINDOW=1s", // rolling restart: each node drains over 1 s
	}
}

// scale sizes the runs: the suite's is small enough for every go test, the
// soak's larger.
type scale struct {
	streams int     // subscribers
	topics  int     // topics of the one-topic-per-stream cases
	rate    float64 // events/s over all topics
	// the many-topics case: topics, topics per stream, rate
	manyTopics, perStream int
	manyRate              float64
	// after is how long publishing goes on after the fault's planned end
	after time.Duration
}

var (
	suiteScale = scale{streams: 200, topics: 10, rate: 100, manyTopics: 1000, perStream: 8, manyRate: 400, after: 5 * time.Second}
	soakScale  = scale{streams: 3000, topics: 50, rate: 500, manyTopics: 1000, perStream: 8, manyRate: 1000, after: 15 * time.Second}
)

// faultCase is one fault and what it allows.
type faultCase struct {
	name string
	what string // for the soak's table
	args []string
	// lasts is how long the fault command runs, planned; it sizes the run.
	lasts time.Duration
	// cmd is the fault (run with sh -c by the storm); o.cl is the cluster.
	cmd func(o *outcome) string
	// many: 1,000 topics, several per stream.
	many bool
	// kills node1: it is started again before the cluster must serve again.
	kills bool
	// historyGone: resets expected; losses allowed before them.
	historyGone bool
	// lost is what a Redis failover may lose (lostNone, lostUnconfirmed,
	// lostAcked; see observer_test.go and the package doc); loses: the
	// fault surely loses history, and a node must find it.
	lost  lostMode
	loses bool
	// observe holds observer streams, one per node and topic (at most
	// maxObserved topics), whose blocks are checked in order
	// (checkObserved).
	observe bool
	// env is node settings of this case on top of nodeEnv's.
	env []string
	// topics, rate and publishConns, when set, replace the scale's (one
	// topic per stream) and the 4 publish connections.
	topics, publishConns int
	rate                 float64
	// setup runs before the cluster starts and returns more start
	// arguments; prepare runs once it is up, before the load. Both may
	// keep state for cmd and check in o.prep.
	setup   func(t *testing.T, o *outcome) []string
	prepare func(t *testing.T, o *outcome)
	// outage: no node can take a stream while the fault lasts (the load
	// balancer is down), which adds to the time a stream may take to
	// come back.
	outage bool
	// extra checks of this case.
	check func(t *testing.T, o *outcome)
}

// cases is the suite: the faults of one node, one Redis and the load
// balancer, then those of Redis topologies (redis_ha_test.go).
var cases = slices.Concat(coreCases, redisCases)

var coreCases = []faultCase{
	{
		name: "sigkill-node", what: "SIGKILL node1", kills: true,
		cmd: func(o *outcome) string { return o.cl.Command("kill-node", "1") },
	},
	{
		name: "freeze-node", what: "SIGSTOP node1 for 20 s, then SIGCONT", lasts: 20 * time.Second,
		cmd: func(o *outcome) string {
			return o.cl.Command("freeze-node", "1") + " && sleep 20 && " + o.cl.Command("thaw-node", "1")
		},
		check: func(t *testing.T, o *outcome) {
			// HAProxy marks the frozen node DOWN after 2 checks that time
			// out (timeout check 2 s, ~5 s) and closes its sessions; its
			// streams come back elsewhere within their hints (<= 2 s).
			// So they are all back long before the thaw at 20 s.
			rc := o.r.Reconnects
			if rc.Resumed == 0 {
				t.Errorf("no stream moved off the frozen node: its clients would wait for the thaw (or for ever)")
			} else if rc.LastResumeUnixNs >= o.faultEnd {
				t.Errorf("last stream back %.2fs after the freeze began, after the thaw (%.2fs): clients waited for the frozen node",
					o.waveS, o.faultS)
			}
		},
	},
	{
		name: "rolling-restart", what: "SIGTERM (drain 1 s), start again, wait ready: node1, node2, node3", lasts: 8 * time.Second,
		cmd: func(o *outcome) string {
			return o.cl.Command("restart-node", "1") + " && " + o.cl.Command("restart-node", "2") + " && " + o.cl.Command("restart-node", "3")
		},
	},
	{
		name: "redis-restart-aof", what: "Redis (append-only file) SIGTERM, 2 s down, started again", args: []string{"--aof"}, lasts: 2 * time.Second,
		cmd: func(o *outcome) string {
			return o.cl.Command("stop-redis") + " && sleep 2 && " + o.cl.Command("start-redis")
		},
	},
	{
		name: "redis-restart-empty", what: "Redis (no persistence) SIGTERM, 2 s down, started again empty", lasts: 2 * time.Second,
		historyGone: true,
		cmd: func(o *outcome) string {
			return o.cl.Command("stop-redis") + " && sleep 2 && " + o.cl.Command("start-redis")
		},
	},
	{
		name: "redis-unreachable", what: "Redis frozen (SIGSTOP) for 10 s, then SIGCONT", lasts: 10 * time.Second,
		cmd: func(o *outcome) string {
			return o.cl.Command("freeze-redis") + " && sleep 10 && " + o.cl.Command("thaw-redis")
		},
		check: func(t *testing.T, o *outcome) {
			r := o.r
			checkStreamsOpen(t, o, "while Redis was away")
			if r.Publish.Errors["http_503"] == 0 {
				t.Errorf("no publish got 503 while Redis was away: errors %v", r.Publish.Errors)
			}
		},
	},
	{
		name: "lb-restart", what: "HAProxy SIGTERM (all its connections closed), started again", outage: true,
		cmd: func(o *outcome) string { return o.cl.Command("restart-lb") },
	},
	{
		name: "many-topics", what: "SIGKILL node1; 1,000 topics, 8 per stream", many: true, kills: true,
		cmd: func(o *outcome) string { return o.cl.Command("kill-node", "1") },
	},
}

// outcome is one case's run and its figures.
type outcome struct {
	c   *faultCase
	cl  *clustertest.Cluster
	cfg loadtest.Config
	r   *loadtest.Report
	obs *observer
	// prep is what the case's setup and prepare kept.
	prep any
	// killedNs is when the fault command killed a Redis master and
	// promotedNs when the new one served (its "master-killed" and
	// "master-promoted" lines, Unix ns); 0 when it did not.
	killedNs, promotedNs int64
	killedPort           string
	// faultEnd is when the fault command ended (Unix ns); faultS how long
	// it ran.
	faultEnd int64
	faultS   float64
	// From the fault's start: the last stream back (Storm.WaveS), the end
	// of the last stall of confirmed publishes and of deliveries (0: none).
	waveS, publishBackS, deliveryBackS float64
	recoveryS                          float64
}

func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: real clusters, about 2 minutes")
	}
	runSuite(t, suiteScale)
}

// runSuite runs every case at scale sc, one after the other (they share
// two cores: in parallel they would measure each other).
func runSuite(t *testing.T, sc scale) []*outcome {
	bin := clustertest.BuildNode(t)
	var out []*outcome
	for i := range cases {
		fc := &cases[i]
		t.Run(fc.name, func(t *testing.T) {
			out = append(out, runCase(t, bin, sc, fc)) // not reached when the case stops (t.Fatal)
		})
	}
	return out
}

// faultEndRE is the line the storm command prints when the fault is over;
// the others are those of masterKill.
var (
	faultEndRE       = regexp.MustCompile(`(?m)^fault-end (\d+)$`)
	masterKilledRE   = regexp.MustCompile(`(?m)^master-killed (\d+) (\d+)$`)
	masterRestoredRE = regexp.MustCompile(`(?m)^master-restored$`)
	masterPromotedRE = regexp.MustCompile(`(?m)^master-promoted (\d+)$`)
)

// topicTotal is the number of the last event of topic i: the publisher
// goes round-robin over the topics and, as check requires, every
// scheduled event is confirmed in the end.
func (o *outcome) topicTotal(i int) int64 {
	n, topics := o.r.Publish.Events, int64(o.r.Topics)
	total := n / topics
	if int64(i) < n%topics {
		total++
	}
	return total
}

func runCase(t *testing.T, bin string, sc scale, fc *faultCase) *outcome {
	o := &outcome{c: fc}
	args := fc.args
	if fc.setup != nil {
		args = append(slices.Clone(args), fc.setup(t, o)...)
	}
	c := clustertest.Start(t, append(nodeEnv(bin), fc.env...), args...)
	o.cl = c
	lb := c.Env(t, "LB_URL")["LB_URL"]
	if lb == "" {
		t.Fatal("no load balancer in cluster.env")
	}
	const at = 2 * time.Second
	topics, perStream, rate := sc.topics, 1, sc.rate
	if fc.many {
		topics, perStream, rate = sc.manyTopics, sc.perStream, sc.manyRate
	}
	if fc.topics > 0 {
		topics = fc.topics
	}
	if fc.rate > 0 {
		rate = fc.rate
	}
	cfg := loadtest.Config{
		Scenario: "fault " + fc.name,
		URL:      lb, Subs: sc.streams, Topics: topics, TopicsPerStream: perStream,
		Ramp: 2000, Reconnect: true,
		Rate: rate, Duration: at + fc.lasts + sc.after, Warmup: 500 * time.Millisecond,
		Batch: 20, PublishConns: cmp.Or(fc.publishConns, 4),
		// Every event is confirmed in the end: a publish that got no
		// answer or a 503 is sent again, same idempotency keys, until the
		// fault is over.
		PublishRetry: fc.lasts + 30*time.Second,
		Drain:        15 * time.Second,
		SampleEvery:  100 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if fc.historyGone {
		cfg.Drain = 8 * time.Second // what was lost never comes: the drain runs to its end
	}
	if fc.prepare != nil {
		fc.prepare(t, o)
	}
	cfg.Storm = loadtest.Storm{At: at, Cmd: fc.cmd(o) + ` && echo "fault-end $(date +%s%N)"`}
	o.cfg = cfg
	if fc.observe {
		o.obs = startObserver(t, cfg, nodeURLs(t, c), min(topics, maxObserved))
	}
	r, err := loadtest.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	o.r = r
	if o.obs != nil {
		// What was in flight when the load generator stopped; then the
		// streams end, before the checks and the node restarts.
		o.obs.waitFor(5*time.Second, o.topicTotal)
		o.obs.stop()
	}
	st := r.Storm
	if st == nil || st.Error != "" {
		t.Fatalf("fault %q failed: %+v", cfg.Storm.Cmd, st)
	}
	m := faultEndRE.FindStringSubmatch(st.Output)
	if m == nil {
		t.Fatalf("fault command did not report its end:\n%s", st.Output)
	}
	o.faultEnd, _ = strconv.ParseInt(m[1], 10, 64)
	if m := masterKilledRE.FindStringSubmatch(st.Output); m != nil {
		o.killedNs, _ = strconv.ParseInt(m[1], 10, 64)
		o.killedPort = m[2]
	}
	if m := masterPromotedRE.FindStringSubmatch(st.Output); m != nil {
		o.promotedNs, _ = strconv.ParseInt(m[1], 10, 64)
	}
	o.faultS = float64(o.faultEnd-st.TriggeredUnixNs) / 1e9
	o.waveS = st.WaveS
	from := st.TriggeredUnixNs / 1e6
	o.publishBackS = backAfter(r.Timeline, from, func(s loadtest.Sample) (int64, bool) {
		if s.Published == nil {
			return 0, false
		}
		return *s.Published, true
	})
	o.deliveryBackS = backAfter(r.Timeline, from, func(s loadtest.Sample) (int64, bool) { return s.Delivered, true })
	o.recoveryS = max(o.waveS, o.publishBackS, o.deliveryBackS)

	check(t, o)
	if o.obs != nil || fc.lost != lostNone {
		checkHistory(t, o)
	}
	if fc.check != nil {
		fc.check(t, o)
	}
	if o.killedNs != 0 {
		logFailover(t, o)
	}
	// Whatever the fault, the cluster serves again afterwards: every node
	// ready and in rotation (a killed node is started again first).
	if fc.kills {
		c.Run(t, "restart-node", "1")
	}
	if o.killedPort != "" && !masterRestoredRE.MatchString(st.Output) {
		c.Run(t, "restart-redis-server", o.killedPort)
	}
	c.WaitReady(t, 30*time.Second)

	rc := r.Reconnects
	t.Logf("fault %s: recovery %.2fs (fault lasted %.2fs; from its start: streams back %.2fs, publishing back %.2fs, delivery back %.2fs); "+
		"%d streams on %d topics (%d per stream), %d events confirmed, publish errors %v, resumes %d %v (longest hint %v, longest drop %v), resets %d, loss %d, duplicates %d",
		fc.name, o.recoveryS, o.faultS, o.waveS, o.publishBackS, o.deliveryBackS,
		r.Subs, r.Topics, perStream, r.Publish.Published, r.Publish.Errors, rc.Resumed, rc.Outcomes,
		rc.Hint.Max().Round(time.Millisecond), rc.TimeToResume.Max().Round(time.Millisecond), r.Streams.Resets,
		r.Delivery.Loss, r.Delivery.Duplicates)
	if t.Failed() {
		var b strings.Builder
		_ = r.WriteText(&b)
		t.Logf("report:\n%s", b.String())
	}
	return o
}

// check is what every case must show (see the package doc).
func check(t *testing.T, o *outcome) {
	t.Helper()
	r, fc := o.r, o.c
	p, d, s, rc := r.Publish, r.Delivery, r.Streams, r.Reconnects
	if p == nil || p.Events == 0 || p.Published != p.Events || p.Failed != 0 {
		t.Errorf("publish %+v: want every scheduled event confirmed in the end", p)
	}
	if r.Connect.Established != int64(r.Subs) || r.Connect.Late != 0 || s.AliveAtEnd != int64(r.Subs) {
		t.Errorf("streams: %d established (%d late), %d alive at the end; want all %d, on time, all back",
			r.Connect.Established, r.Connect.Late, s.AliveAtEnd, r.Subs)
	}
	// Where only unconfirmed events were lost, a stream that received
	// some of them before the failover gets them again after its reset,
	// stored anew by the publisher's retry: at most one request's worth
	// (the one its topic's connection had in flight) per reset.
	allowedDup := int64(0)
	if fc.lost == lostUnconfirmed {
		allowedDup = int64(o.cfg.Batch) * s.Resets
	}
	if d.Expected == 0 || d.Duplicates > allowedDup || d.Reordered != 0 || d.BadPayload != 0 || d.Foreign != 0 {
		t.Errorf("delivery %+v: want no duplicate (at most %d: unconfirmed events again after a reset), nothing out of order", d, allowedDup)
	}
	bad := rc.Outcomes["gap"] + rc.Outcomes["duplicate"] + rc.Outcomes["reordered"]
	if fc.lost == lostUnconfirmed {
		bad -= rc.Outcomes["duplicate"]
	}
	if bad != 0 {
		t.Errorf("resume outcomes %v: want each exact (or a reset where history is gone)", rc.Outcomes)
	}
	switch {
	case fc.historyGone:
		// Every stream is told; what was lost lies before its reset, at
		// most one hole per stream and topic; everything after arrived.
		if s.Resets < int64(r.Subs) {
			t.Errorf("%d reset events over %d streams: every stream must be told that history is gone", s.Resets, r.Subs)
		}
		if d.Loss != d.Missing || d.Gaps > int64(r.Subs*max(r.TopicsPerStream, 1)) {
			t.Errorf("delivery %+v: loss must be holes before the reset (loss = missing, at most one gap per stream and topic), nothing lost after it", d)
		}
	case fc.lost == lostUnconfirmed:
		// Resets where a node found the history rolled back
		// (checkHistory); every confirmed event arrives all the same.
		if d.Loss != 0 || d.Unique != d.Expected || d.Gaps != 0 || d.Missing != 0 {
			t.Errorf("delivery %+v: want every confirmed event at every subscriber of its topic, none skipped", d)
		}
	default:
		if d.Loss != 0 || d.Unique != d.Expected || d.Gaps != 0 || d.Missing != 0 {
			t.Errorf("delivery %+v: want every confirmed event once at every subscriber of its topic", d)
		}
		if s.Resets != 0 || rc.Outcomes["reset"] != 0 {
			t.Errorf("%d resets (resume outcomes %v): the history was there to resume from", s.Resets, rc.Outcomes)
		}
	}
	// Retry hints: the node never hints beyond RETRY_CAP, HAProxy's own
	// answers beyond 5 s; a stream waits its hint and comes back within a
	// few of them (plus the outage, if no node could take it meanwhile).
	if s.RetryMaxMs > lbHintMax.Milliseconds() {
		t.Errorf("a stream was told to wait %d ms, beyond any hint the cluster gives (%v)", s.RetryMaxMs, lbHintMax)
	}
	bound := hintsToResume*lbHintMax + 5*time.Second
	if fc.outage {
		bound += time.Duration(o.faultS * float64(time.Second))
	}
	if back := rc.TimeToResume.Max(); back > bound {
		t.Errorf("a stream took %v from its drop to its return, beyond the hint bound %v", back, bound)
	}
}

// backAfter returns the time in seconds from the fault's start (from, Unix
// ms) to the end of the last stall of a cumulative figure that ended after
// it: samples without growth for at least half a second, ended by growth.
// 0 when the figure never stalled.
func backAfter(tl []loadtest.Sample, from int64, val func(loadtest.Sample) (int64, bool)) float64 {
	const stall = 500 // ms
	var back float64
	var last, lastGrowth int64
	seen := false
	for _, s := range tl {
		v, ok := val(s)
		if !ok {
			continue
		}
		if seen && v > last {
			if s.UnixMs-lastGrowth >= stall && s.UnixMs > from {
				back = float64(s.UnixMs-from) / 1e3
			}
			lastGrowth = s.UnixMs
		}
		if !seen {
			seen, lastGrowth = true, s.UnixMs
		}
		last = v
	}
	return back
}

// describe is a case's figures for a table row.
func (o *outcome) describe() []string {
	r, rc := o.r, o.r.Reconnects
	topics := strconv.Itoa(r.Topics)
	if r.TopicsPerStream > 1 {
		topics += fmt.Sprintf(" (%d per stream)", r.TopicsPerStream)
	}
	return []string{
		"`" + o.c.name + "`", o.c.what, strconv.Itoa(r.Subs), topics,
		fmt.Sprintf("%d", r.Publish.Published),
		fmt.Sprintf("%.1f", o.faultS),
		fmt.Sprintf("**%.2f**", o.recoveryS),
		fmt.Sprintf("%.2f", o.waveS), fmt.Sprintf("%.2f", o.publishBackS), fmt.Sprintf("%.2f", o.deliveryBackS),
		fmt.Sprintf("%d", rc.Resumed), fmtCounts(rc.Outcomes),
		fmt.Sprintf("%d", r.Publish.Errors["http_503"]+r.Publish.Errors["http_502"]),
		fmt.Sprintf("%d", r.Streams.Resets),
		fmt.Sprintf("%d", r.Delivery.Loss), fmt.Sprintf("%d", r.Delivery.Duplicates),
	}
}

func fmtCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range []string{"exact", "reset", "unverified", "gap", "duplicate", "reordered"} {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}
