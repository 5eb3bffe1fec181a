package loadtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestResumeOutcomes serves one stream that ends after each connection and
// answers each resume differently on purpose: exact, duplicate, gap, reset,
// then nothing. The pool must judge every resume, honour the hint, and
// count the waits.
func TestResumeOutcomes(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := conns.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 10\n\n")
		event := func(seq int64) {
			fmt.Fprintf(w, "id: c%d\ndata: %s\n\n", seq, AppendPayload(nil, "load-0", seq, time.Now().UnixNano()))
		}
		switch n {
		case 1:
			event(1)
		case 2:
			event(2) // exact
		case 3:
			event(2) // duplicate
		case 4:
			event(5) // gap
		case 5:
			fmt.Fprint(w, "event: reset\ndata: {}\n\n")
		default: // hold the stream, send nothing: unverified
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	defer srv.Close()

	pool := runPoolUntil(t, Config{URL: srv.URL, Subs: 1, Reconnect: true, Idle: true, Duration: time.Second}, nil, func(pool *Pool) error {
		if n := conns.Load(); n < 6 || pool.Connected() != 1 {
			return fmt.Errorf("%d connections, %d connected: want the sixth, held", n, pool.Connected())
		}
		return nil
	})
	r := newReport(Config{Reconnect: true})
	pool.fill(r)
	r.finalize(nil)

	rc := r.Reconnects
	want := map[string]int64{"exact": 1, "duplicate": 1, "gap": 1, "reset": 1, "unverified": 1}
	if fmt.Sprint(rc.Outcomes) != fmt.Sprint(want) || rc.Resumed != 5 {
		t.Errorf("outcomes %v resumed %d, want %v and 5", rc.Outcomes, rc.Resumed, want)
	}
	if rc.Hint.Count() != 5 || rc.Wait.Count() != 5 || rc.TimeToResume.Count() != 5 || rc.Early != 0 {
		t.Errorf("hints %d waits %d resumes %d early %d, want 5, 5, 5, 0", rc.Hint.Count(), rc.Wait.Count(), rc.TimeToResume.Count(), rc.Early)
	}
	if h := rc.Hint.Max(); h < 9*time.Millisecond || h > 11*time.Millisecond {
		t.Errorf("hint %s, want the server's 10 ms", h)
	}
	if w := rc.Wait.Quantile(0); w < rc.Hint.Quantile(0)*999/1000 {
		t.Errorf("shortest wait %s is below the hint %s", w, rc.Hint.Quantile(0))
	}
	if rc.FirstDropUnixNs == 0 || rc.LastResumeUnixNs <= rc.FirstDropUnixNs {
		t.Errorf("drop/resume bounds %d..%d", rc.FirstDropUnixNs, rc.LastResumeUnixNs)
	}
}

// TestShedIsNotAResume: a reconnect the target sheds (a 200 stream with a
// hint and no id or event) is counted as shed, and the resume is measured
// from the original drop to the stream that finally serves.
func TestShedIsNotAResume(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := conns.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		switch n {
		case 1:
			fmt.Fprintf(w, "retry: 10\n\nid: c1\ndata: %s\n\n", AppendPayload(nil, "load-0", 1, time.Now().UnixNano()))
		case 2, 3:
			fmt.Fprint(w, "retry: 10\n: capacity\n\n")
		default:
			fmt.Fprintf(w, "retry: 10\n\nid: c2\ndata: %s\n\n", AppendPayload(nil, "load-0", 2, time.Now().UnixNano()))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	pool := runPoolUntil(t, Config{URL: srv.URL, Subs: 1, Reconnect: true, Idle: true, Duration: time.Second}, nil, func(pool *Pool) error {
		if n := pool.Delivered(); n < 2 {
			return fmt.Errorf("delivered %d, want 2", n)
		}
		return nil
	})
	r := newReport(Config{Reconnect: true})
	pool.fill(r)
	r.finalize(nil)
	rc := r.Reconnects
	if rc.Resumed != 1 || rc.Outcomes["exact"] != 1 || r.Streams.Drops["shed"] != 2 || r.Streams.Drops["eof"] != 1 {
		t.Errorf("resumed %d outcomes %v drops %v: want one exact resume after two sheds", rc.Resumed, rc.Outcomes, r.Streams.Drops)
	}
	if ttr, waits := rc.TimeToResume.Quantile(1), rc.Wait.Count(); waits != 3 || ttr < 3*rc.Hint.Quantile(0)*999/1000 {
		t.Errorf("time to resume %s over %d waits: it must span every wait since the drop", ttr, waits)
	}
}

// TestRetryZero: "retry: 0" is a hint like any other, come back at once;
// it must not fall back to DefaultRetry (here an hour) as if none came.
func TestRetryZero(t *testing.T) {
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "retry: 0\n\nid: c%d\ndata: %s\n\n", n, AppendPayload(nil, "load-0", int64(n), time.Now().UnixNano()))
	}))
	defer srv.Close()
	runPoolUntil(t, Config{URL: srv.URL, Reconnect: true, DefaultRetry: time.Hour, Idle: true, Duration: time.Second}, nil, func(*Pool) error {
		mu.Lock()
		defer mu.Unlock()
		if requests < 3 {
			return fmt.Errorf("%d requests: the stream waits instead of coming back at once", requests)
		}
		return nil
	})
}
