//go:build unix

package admin_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// TestDashboardInBrowser loads the dashboard in headless Chromium from a
// live cluster: three node.Servers on a real redis-server, each with its
// admin server on a shared Redis registry, streams open on every node,
// events published while the page is open, a stream closed, node-c
// draining and a stream refused there. The page must show every node and,
// for each node and the cluster, a push-latency chart with the points it
// gathered, and node-c's drain; a screenshot at 1280×900 is kept (under
// $SSE_ARTIFACTS when set) for a human to look at.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	browser := chromiumBinary(t)
	r := pubsubtest.StartRedis(t)
	const prefix = "dash"
	ids := []string{"node-a", "node-b", "node-c"}
	var nodes []*testNode
	var admins []*testAdmin
	for _, id := range ids {
		n := startNode(t, id, newRedisBroker(t, r, prefix))
		nodes = append(nodes, n)
		admins = append(admins, startAdmin(t, n, newRedisRegistry(t, r, prefix), fastConfig(t)))
	}
	// 3, 2 and 1 streams: each node's figure is its own.
	var streams [][]*stream
	for i, n := range nodes {
		var ss []*stream
		for range len(nodes) - i {
			ss = append(ss, openStream(t, n, "dash"))
		}
		streams = append(streams, ss)
	}

	// Publish through every node until the browser is done, so the
	// latency windows keep filling while the page samples them.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { publishUntil(ctx, t, nodes) })

	checkFor(t, waitTimeout, func() error {
		var v struct {
			Nodes []node.Report `json:"nodes"`
		}
		admins[0].decode(http.StatusOK, &v, "GET", "/admin/v1/nodes", "")
		if len(v.Nodes) != len(ids) {
			return fmt.Errorf("cluster view has %d nodes, want %d", len(v.Nodes), len(ids))
		}
		for i, rep := range v.Nodes {
			if rep.NodeID != ids[i] || rep.Connections.Current != int64(len(ids)-i) || rep.PushLatency.Last1m.Count == 0 {
				return fmt.Errorf("node %s: %d streams, %d pushes in the last minute; want %s with %d streams and pushes",
					rep.NodeID, rep.Connections.Current, rep.PushLatency.Last1m.Count, ids[i], len(ids)-i)
			}
		}
		return nil
	})

	// Some figures beyond the steady state: a stream of node-b closes,
	// node-c drains (over a window longer than the test, so it is still in
	// progress) and refuses a stream.
	_ = streams[1][0].body.Close()
	admins[0].decode(http.StatusAccepted, new(map[string]any), "POST", "/admin/v1/nodes/node-c/drain", `{"window_s":120}`)
	checkFor(t, waitTimeout, func() error {
		var rep node.Report
		admins[2].decode(http.StatusOK, &rep, "GET", "/admin/v1/node", "")
		if !rep.Drain.Draining {
			return fmt.Errorf("node-c is not draining")
		}
		return nil
	})
	resp, err := httpClient.Get(nodes[2].url + "/v1/events?topic=dash")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	checkFor(t, waitTimeout, func() error {
		var v struct {
			Nodes []node.Report `json:"nodes"`
		}
		admins[0].decode(http.StatusOK, &v, "GET", "/admin/v1/nodes", "")
		if len(v.Nodes) != len(ids) {
			return fmt.Errorf("cluster view has %d nodes, want %d", len(v.Nodes), len(ids))
		}
		b, c := v.Nodes[1], v.Nodes[2]
		if b.Connections.Current != 1 || sum(b.Connections.Closed) == 0 {
			return fmt.Errorf("node-b: %d streams, closes %v; want 1 stream and a close", b.Connections.Current, b.Connections.Closed)
		}
		if !c.Drain.Draining || sum(c.Connections.Refused) == 0 {
			return fmt.Errorf("node-c: draining %v, refusals %v; want draining and a refusal", c.Drain.Draining, c.Connections.Refused)
		}
		return nil
	})

	// Any node's admin server answers for the cluster; use the second one.
	page := admins[1].base + "/admin/#token=" + url.QueryEscape(token)
	dom := string(runChromium(t, browser, "--dump-dom", page))

	if m := statusRe.FindStringSubmatch(dom); m != nil {
		t.Errorf("the page shows an error: %q", m[1])
	}
	for _, id := range ids {
		if !strings.Contains(dom, `<article class="node" data-node="`+id+`"`) {
			t.Errorf("no card for node %s", id)
		}
	}
	if card := regexp.MustCompile(`(?s)<article class="node" data-node="node-c".*?</article>`).FindString(dom); !strings.Contains(card, ">draining<") ||
		!strings.Contains(card, "draining: 0 of 1 closed") {
		t.Errorf("node-c's card does not show its drain:\n%s", card)
	}
	charts := latencyCharts(dom)
	for _, id := range append([]string{"cluster"}, ids...) {
		c, ok := charts[id]
		switch {
		case !ok:
			t.Errorf("no latency chart for %s", id)
		case c.points < 2 || c.circles < 2*3 || c.lines == 0:
			// Several refreshes (one every 2 s of the 8 s virtual time
			// budget), each a point of p50, p99 and p99.9.
			t.Errorf("latency chart of %s: %d samples, %d dots, %d lines; want at least 2 samples of 3 series",
				id, c.points, c.circles, c.lines)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	// A wrong token: the page says so and shows nothing.
	wrong := string(runChromium(t, browser, "--dump-dom", admins[1].base+"/admin/#token=not-the-token"))
	if m := statusRe.FindStringSubmatch(wrong); m == nil || m[1] != "wrong token" {
		t.Errorf("with a wrong token the status line is %q, want \"wrong token\"", m)
	}
	if strings.Contains(wrong, `<article class="node"`) {
		t.Error("the page shows nodes with a wrong token")
	}

	dir := os.Getenv("SSE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "dashboard.png")
	_ = os.Remove(shot) // a stale one must not pass for this run's
	runChromium(t, browser, "--screenshot="+shot, "--window-size=1280,900", page)
	if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("dashboard screenshot: %s", shot)
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// publishUntil publishes a few events through each node in turn until ctx
// ends.
func publishUntil(ctx context.Context, t *testing.T, nodes []*testNode) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	body := `[{"topic":"dash","data":"a"},{"topic":"dash","data":"b"}]`
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, nodes[i%len(nodes)].url+"/v1/publish", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("publish: %v", err)
			}
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("publish: %d", resp.StatusCode)
			return
		}
	}
}

// statusRe finds the error the status line shows.
var statusRe = regexp.MustCompile(`<div id="status"[^>]*class="status error"[^>]*>([^<]*)`)

// latencyChart is what the DOM shows of one latency chart.
type latencyChart struct {
	points  int // samples with a value (data-points)
	circles int // dots drawn
	lines   int // polylines drawn
}

// latencyCharts finds the latency charts of a dumped DOM, by data-node.
func latencyCharts(dom string) map[string]latencyChart {
	out := make(map[string]latencyChart)
	svgRe := regexp.MustCompile(`(?s)<svg\b([^>]*\bdata-chart="latency"[^>]*)>(.*?)</svg>`)
	attr := func(attrs, name string) string {
		m := regexp.MustCompile(`\b` + name + `="([^"]*)"`).FindStringSubmatch(attrs)
		if m == nil {
			return ""
		}
		return m[1]
	}
	for _, m := range svgRe.FindAllStringSubmatch(dom, -1) {
		points, _ := strconv.Atoi(attr(m[1], "data-points"))
		out[attr(m[1], "data-node")] = latencyChart{
			points:  points,
			circles: strings.Count(m[2], "<circle"),
			lines:   strings.Count(m[2], "<polyline"),
		}
	}
	return out
}

// chromiumBinary returns the path of Chromium. The test does not skip
// without it: .ci/test.sh installs it (Debian package chromium).
func chromiumBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found on PATH: the dashboard test loads the page in headless Chromium; " +
		"install it (apt-get install -y chromium; .ci/test.sh installs it when missing)")
	return ""
}

// runChromium runs headless Chromium with args after the common flags and
// returns its standard output. The virtual time budget lets the page run
// 8 s of its own timers (four refreshes) as fast as the network allows.
func runChromium(t *testing.T, browser string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	common := []string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=8000",
	}
	cmd := exec.CommandContext(ctx, browser, append(common, args...)...)
	// Chromium forks helpers (zygote, renderer); a timeout kills the whole
	// process group so none outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", browser, strings.Join(args, " "), err, lastLines(stderr.String(), 30))
	}
	return stdout.Bytes()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
