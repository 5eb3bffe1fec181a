package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// waitFor polls f until it returns nil or the deadline passes.
// runPoolUntil runs a pool of cfg until until(pool) is nil (polled for up
// to 10 s), then stops it and returns it with its goroutines ended.
// prepare, when not nil, adjusts the pool before it runs.
func runPoolUntil(t *testing.T, cfg Config, prepare func(*Pool), until func(*Pool) error) *Pool {
	t.Helper()
	pool, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(pool)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = pool.Run(ctx) })
	waitFor(t, 10*time.Second, func() error { return until(pool) })
	return pool
}

func waitFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a synchroniser
	}
}

// TestPoolDetectsBadSequences serves a stream that duplicates, reorders
// and skips events on purpose, with heartbeats and a reset, and checks what
// the pool counts.
func TestPoolDetectsBadSequences(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topic := r.URL.Query().Get("topic")
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 1500\n\nid: c0\n\n:\n\n")
		event := func(seq int64) {
			fmt.Fprintf(w, "id: c%d\ndata: %s\n\n", seq, AppendPayload(nil, topic, seq, time.Now().UnixNano()))
		}
		for _, seq := range []int64{1, 2, 2, 4, 3, 7} {
			event(seq)
		}
		fmt.Fprint(w, "event: reset\ndata: {}\n\ndata: not a payload\n\nevent: other\ndata: x\n\n")
		fmt.Fprintf(w, "data: %s\n\n", AppendPayload(nil, "elsewhere", 1, time.Now().UnixNano()))
		event(8) // last: once it is counted, everything before it is
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	pool := runPoolUntil(t, Config{URL: srv.URL, Subs: 2, Topics: 2, Idle: true, Duration: time.Second}, nil, func(pool *Pool) error {
		if n := pool.Delivered(); n != 2*7 {
			return fmt.Errorf("delivered %d, want 14", n)
		}
		return nil
	})
	r := newReport(Config{})
	pool.fill(r)
	r.finalize(&PublishStats{perTopic: []int64{8, 8}})

	d := r.Delivery
	if d.Delivered != 14 || d.Unique != 12 || d.Duplicates != 2 || d.Reordered != 2 || d.Gaps != 4 || d.Missing != 4 {
		t.Errorf("delivery %+v; want per stream 7 delivered, 6 unique, 1 duplicate, 1 reordered, 2 gaps, 2 missing (5, 6)", d)
	}
	if d.Expected != 16 || d.Loss != 4 {
		t.Errorf("expected %d loss %d, want 16 and 4", d.Expected, d.Loss)
	}
	if d.BadPayload != 2 || d.Foreign != 2 || d.Events != 18 {
		t.Errorf("bad payload %d foreign %d events %d, want 2, 2, 18", d.BadPayload, d.Foreign, d.Events)
	}
	s := r.Streams
	if s.Resets != 2 || s.OtherEvents != 2 || s.Comments != 2 || s.IDOnly != 2 || s.RetryHints != 2 || s.RetryMinMs != 1500 {
		t.Errorf("streams %+v", s)
	}
	if s.AliveAtEnd != 2 || r.Connect.Established != 2 || r.Latency.Count() != 14 {
		t.Errorf("alive %d established %d latencies %d", s.AliveAtEnd, r.Connect.Established, r.Latency.Count())
	}
}

// TestPoolReconnect checks that a dropped stream waits the retry hint and
// resumes with Last-Event-ID, and that a non-200 answer is not retried.
func TestPoolReconnect(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("topic") == "load-1" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "retry: 20\n\nid: c%d\ndata: %s\n\n", n, AppendPayload(nil, "load-0", int64(n), time.Now().UnixNano()))
		// and end the stream: the client must reconnect
	}))
	defer srv.Close()

	pool := runPoolUntil(t, Config{URL: srv.URL, Subs: 2, Topics: 2, Reconnect: true, Idle: true, Duration: time.Second}, nil, func(pool *Pool) error {
		if n := pool.Delivered(); n < 3 {
			return fmt.Errorf("delivered %d, want >= 3", n)
		}
		return nil
	})
	r := newReport(Config{})
	pool.fill(r)
	mu.Lock()
	defer mu.Unlock()
	if lastIDs[0] != "" || lastIDs[1] != "c1" || lastIDs[2] != "c2" {
		t.Errorf("Last-Event-ID sent %q, want \"\", c1, c2, ...", lastIDs[:3])
	}
	if r.Connect.HTTPStatus["503"] != 1 || r.Connect.FailReasons["http_status"] != 1 {
		t.Errorf("non-200 answers: status %v reasons %v, want one 503, not retried", r.Connect.HTTPStatus, r.Connect.FailReasons)
	}
	if r.Delivery.Duplicates != 0 || r.Delivery.Gaps != 0 || r.Streams.Drops["eof"] < 2 || r.Connect.Reconnects < 2 {
		t.Errorf("delivery %+v drops %v reconnects %d", r.Delivery, r.Streams.Drops, r.Connect.Reconnects)
	}
}
