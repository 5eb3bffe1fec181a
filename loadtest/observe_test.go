package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDueOffset(t *testing.T) {
	const ms = float64(time.Millisecond)
	tests := []struct {
		k     int64
		burst int
		want  time.Duration
	}{
		{0, 0, 0}, {1, 0, time.Millisecond}, {7, 1, 7 * time.Millisecond},
		{0, 5, 0}, {4, 5, 0}, {5, 5, 5 * time.Millisecond}, {9, 5, 5 * time.Millisecond}, {10, 5, 10 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := dueOffset(tc.k, tc.burst, ms); got != tc.want {
			t.Errorf("dueOffset(%d, burst %d) = %s, want %s", tc.k, tc.burst, got, tc.want)
		}
	}
}

// TestProcSample reads this process's memory and CPU, and says when a
// process is gone.
func TestProcSample(t *testing.T) {
	rss, cpu, err := procSample(os.Getpid())
	if err != nil || rss <= 0 || cpu < 0 {
		t.Errorf("procSample(self) = %d KiB, %g s, %v", rss, cpu, err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := procSample(cmd.Process.Pid); err == nil {
		t.Errorf("procSample of an ended process: no error")
	}
	ns := newNodeSampler([]int{os.Getpid(), cmd.Process.Pid})
	ns.up()
	ns.loaded(10)
	st := ns.stats(0)
	if len(st.Processes) != 2 || st.Processes[0].RSSLoadedKiB <= 0 || st.Processes[1].Error == "" || st.RSSPerStreamKiB != 0 {
		t.Errorf("node stats %+v: want the first process sampled, the second's error, no per-stream figure", st)
	}
	var b strings.Builder
	st.writeText(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) })
	if !strings.Contains(b.String(), "RSS per stream not measured") {
		t.Errorf("text:\n%s", b.String())
	}
}

// TestAdminProbe reads the nodes' figures from an admin API, and reports a
// target without one as not measured.
func TestAdminProbe(t *testing.T) {
	const body = `{"nodes":[{"node_id":"n1","connections":{"current":7,"opened":9},
		"push_latency":{"since_start":{"count":70,"p50_us":800,"p90_us":900,"p99_us":1500,"p999_us":2000,"max_us":2100}},
		"survival":{"opened":9,"failed":1,"failure_ratio":0.111,"s":{"1m":0.9}},"extra":{"ignored":true}}],
		"cluster":{"connections":{"current":7},"push_latency":{"since_start":{"count":70,"p99_us":1500}}}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/v1/nodes" || r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	ctx := context.Background()

	a := newAdminProbe(ctx, srv.URL, "s3cret").end(ctx)
	if a.Start == nil || a.End == nil || a.End.Nodes[0].NodeID != "n1" || a.End.Nodes[0].PushLatency.SinceStart.P99Us != 1500 ||
		a.End.Nodes[0].Survival.S["1m"] != 0.9 || a.End.Cluster.Connections.Current != 7 {
		t.Fatalf("admin stats %+v", a)
	}
	var b strings.Builder
	a.writeText(func(f string, args ...any) { fmt.Fprintf(&b, f, args...) })
	if !strings.Contains(b.String(), "p99 1.500ms") || !strings.Contains(b.String(), "S(1m) 0.9000") {
		t.Errorf("text:\n%s", b.String())
	}

	bad := newAdminProbe(ctx, srv.URL, "wrong").end(ctx)
	if bad.End != nil || !strings.Contains(bad.EndError, "HTTP 401") {
		t.Errorf("wrong token: %+v", bad)
	}
	b.Reset()
	bad.writeText(func(f string, args ...any) { fmt.Fprintf(&b, f, args...) })
	if !strings.Contains(b.String(), "not measured: GET /admin/v1/nodes: HTTP 401") || strings.Contains(b.String(), "wrong") {
		t.Errorf("text (must say why, never the token):\n%s", b.String())
	}
}

// TestPublishRetry: a publish whose answer is lost is sent again with the
// same idempotency keys, and counted once.
func TestPublishRetry(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{} // body -> attempts
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var msgs []struct {
			Key string `json:"idempotency_key"`
		}
		if err := json.Unmarshal(b, &msgs); err != nil || len(msgs) == 0 || msgs[0].Key == "" {
			http.Error(w, "no idempotency key", http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen[string(b)]++
		n := seen[string(b)]
		mu.Unlock()
		switch n {
		case 1: // the answer is lost: the connection breaks
			c, _, _ := http.NewResponseController(w).Hijack()
			_ = c.Close()
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			ids := make([]string, len(msgs))
			for i := range ids {
				ids[i] = "x"
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"ids": ids})
		}
	}))
	defer srv.Close()
	pub, err := NewPublisher(Config{URL: srv.URL, Rate: 1000, Count: 5, Topics: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats()
	if st.Published != 5 || st.Failed != 0 || st.Retried != 10 || st.Errors["conn_error"] != 5 || st.Errors["http_503"] != 5 {
		t.Errorf("stats %+v: want 5 confirmed after two retries each", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 5 {
		t.Errorf("%d distinct bodies, want 5: a retry must resend the same bytes", len(seen))
	}
}

// TestPublishRetryFor: with Config.PublishRetry a batch is sent again for
// as long as it says, where the default gives up after 6 attempts.
func TestPublishRetryFor(t *testing.T) {
	for _, tc := range []struct {
		name          string
		retry         time.Duration
		published     int64
		failed, tries int64
	}{
		// 10 answers of 503, then 200s. Default: the first event fails
		// after 6 attempts, the second is confirmed at the 11th request,
		// the third at the 12th.
		{"default", 0, 2, 1, 12},
		{"retry for a minute", time.Minute, 3, 0, 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			requests := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				requests++
				n := requests
				mu.Unlock()
				if n <= 10 {
					http.Error(w, "no broker", http.StatusServiceUnavailable)
					return
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"ids": []string{"x"}})
			}))
			defer srv.Close()
			pub, err := NewPublisher(Config{URL: srv.URL, Rate: 1000, Count: 3, PublishConns: 1, PublishRetry: tc.retry})
			if err != nil {
				t.Fatal(err)
			}
			pub.backoff = time.Millisecond
			if err := pub.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := pub.Stats()
			if st.Published != tc.published || st.Failed != tc.failed || st.Errors["http_503"] != 10 || st.Requests != tc.tries {
				t.Errorf("stats %+v: want %d confirmed, %d failed, 10 answers of 503 in %d requests", st, tc.published, tc.failed, tc.tries)
			}
		})
	}
}
