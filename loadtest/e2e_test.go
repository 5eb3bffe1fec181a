package loadtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/pubsub"
)

// startNode runs a real node on an in-memory broker on 127.0.0.1:0 and
// returns its base URL once /readyz answers 200. It stops when the test
// ends.
func startNode(t *testing.T) string {
	t.Helper()
	b, err := pubsub.NewMemory(pubsub.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := node.New(node.Config{NodeID: "loadtest", Logger: log}, b)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		_ = b.Close()
	})
	url := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	waitFor(t, 15*time.Second, func() error {
		resp, err := client.Get(url + "/readyz")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	return url
}

// TestRunAgainstNode runs the whole tool against a real node: every
// published event reaches every subscriber of its topic exactly once, in
// order. No timing is asserted.
func TestRunAgainstNode(t *testing.T) {
	url := startNode(t)
	var ready int64 = -1
	cfg := Config{
		URL: url, Subs: 50, Topics: 4, Rate: 1000, Count: 300, Batch: 4, Drain: 10 * time.Second,
		SourceAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")},
		OnReady:     func(n int64) { ready = n },
	}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ready != 50 {
		t.Errorf("OnReady got %d established streams, want 50", ready)
	}
	// 300 events round-robin over 4 topics: 75 each; 50 streams: 13,13,12,12.
	const want = 75 * 50
	d := r.Delivery
	if d.Expected != want || d.Delivered != want || d.Unique != want || d.Loss != 0 {
		t.Errorf("expected %d delivered %d unique %d loss %d, want %d, %d, %d, 0", d.Expected, d.Delivered, d.Unique, d.Loss, want, want, want)
	}
	if d.Duplicates != 0 || d.Reordered != 0 || d.Gaps != 0 || d.Missing != 0 || d.BadPayload != 0 || d.Foreign != 0 {
		t.Errorf("sequence errors: %+v", d)
	}
	if p := r.Publish; p.Published != 300 || p.Failed != 0 || len(p.Errors) != 0 {
		t.Errorf("publish %+v", p)
	}
	if c := r.Connect; c.Established != 50 || c.Failed != 0 || c.Late != 0 {
		t.Errorf("connect %+v", c)
	}
	if s := r.Streams; s.AliveAtEnd != 50 || s.RetryHints < 50 || s.IDOnly < 50 || len(s.Drops) != 0 {
		t.Errorf("streams %+v (every stream starts with a retry block and an id-only block)", s)
	}
	if r.Latency.Count() != want {
		t.Errorf("latency samples %d, want %d", r.Latency.Count(), want)
	}
}

// TestRunAgainstNodeTopicsPerStream: streams on several topics at once
// (one request with a topic parameter each) get every event of each of
// their topics once, in order per topic.
func TestRunAgainstNodeTopicsPerStream(t *testing.T) {
	url := startNode(t)
	// 20 streams x 5 topics over 50 topics: every topic has 2 streams.
	cfg := Config{URL: url, Subs: 20, Topics: 50, TopicsPerStream: 5, Rate: 2000, Count: 500, Batch: 10, Drain: 10 * time.Second}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	const want = 500 * 2
	d := r.Delivery
	if d.Expected != want || d.Delivered != want || d.Unique != want || d.Loss != 0 {
		t.Errorf("expected %d delivered %d unique %d loss %d, want %d, %d, %d, 0", d.Expected, d.Delivered, d.Unique, d.Loss, want, want, want)
	}
	if d.Duplicates != 0 || d.Reordered != 0 || d.Gaps != 0 || d.Foreign != 0 || d.BadPayload != 0 {
		t.Errorf("sequence errors: %+v", d)
	}
	if r.TopicsPerStream != 5 || r.Streams.AliveAtEnd != 20 {
		t.Errorf("topics per stream %d, alive %d; want 5 and 20", r.TopicsPerStream, r.Streams.AliveAtEnd)
	}
}
