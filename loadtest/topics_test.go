package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node/sse"
)

// TestTopicsPerStream holds streams of three topics each on a generic
// target and checks the request (one query parameter per topic, the
// consecutive topics from (i*3) % topics), that each topic's sequence is
// checked on its own although the topics' events interleave, and the
// expected deliveries per topic.
func TestTopicsPerStream(t *testing.T) {
	var mu sync.Mutex
	var got []string // the topics of each request, joined
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topics := r.URL.Query()["ch"]
		mu.Lock()
		got = append(got, strings.Join(topics, ","))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		// Interleaved: a, b, c, a, b, c. One checker for the whole stream
		// would see 1, 1, 1, 2, 2, 2: duplicates and reorders.
		for seq := int64(1); seq <= 2; seq++ {
			for _, topic := range topics {
				fmt.Fprintf(w, "data: %s\n\n", AppendPayload(nil, topic, seq, time.Now().UnixNano()))
			}
		}
		fmt.Fprintf(w, "data: %s\n\n", AppendPayload(nil, "load-99", 1, time.Now().UnixNano())) // not the stream's
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	cfg := Config{URL: srv.URL, EventsURL: srv.URL + "/sse?x=1&ch={topic}", Subs: 4, Topics: 6, TopicsPerStream: 3, Idle: true, Duration: time.Second}
	pool := runPoolUntil(t, cfg, nil, func(pool *Pool) error {
		if n := pool.Delivered(); n != 4*3*2 {
			return fmt.Errorf("delivered %d, want 24", n)
		}
		return nil
	})
	r := newReport(cfg.withDefaults())
	pool.fill(r)
	r.finalize(&PublishStats{perTopic: []int64{2, 2, 2, 2, 2, 2}})

	mu.Lock()
	slices.Sort(got)
	want := []string{"load-0,load-1,load-2", "load-0,load-1,load-2", "load-3,load-4,load-5", "load-3,load-4,load-5"}
	if !slices.Equal(got, want) {
		t.Errorf("requests asked for %q, want %q", got, want)
	}
	mu.Unlock()
	d := r.Delivery
	if d.Expected != 24 || d.Unique != 24 || d.Loss != 0 || d.Duplicates != 0 || d.Reordered != 0 || d.Gaps != 0 || d.Foreign != 4 {
		t.Errorf("delivery %+v; want 24 expected and unique (2 streams x 2 events per topic), 4 foreign, no sequence errors", d)
	}
	if r.TopicsPerStream != 3 {
		t.Errorf("report topics per stream %d, want 3", r.TopicsPerStream)
	}
}

// TestTopicsPerStreamWraps checks the assignment when the streams' topics
// wrap around the topic count: every topic gets its share.
func TestTopicsPerStreamWraps(t *testing.T) {
	var mu sync.Mutex
	subs := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		for _, topic := range r.URL.Query()["topic"] {
			subs[topic]++
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent) // and no reconnect
	}))
	defer srv.Close()
	// 7 streams x 4 topics over 10 topics: 28 subscriptions, in blocks
	// from 0, 4, 8 (8, 9, 0, 1), 2, 6, 0, 4.
	cfg := Config{URL: srv.URL, Subs: 7, Topics: 10, TopicsPerStream: 4, Idle: true, Duration: time.Second}
	pool, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = pool.Run(ctx) })
	<-pool.Ready()
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{"load-0": 3, "load-1": 3, "load-2": 3, "load-3": 3, "load-4": 3, "load-5": 3, "load-6": 3, "load-7": 3, "load-8": 2, "load-9": 2}
	for topic, n := range want {
		if subs[topic] != n {
			t.Errorf("subscriptions per topic %v, want %v", subs, want)
			break
		}
	}
}

func TestTopicsPerStreamValidate(t *testing.T) {
	base := Config{URL: "http://127.0.0.1:1", Topics: 4, Idle: true, Duration: time.Second}
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"default events url", func(c *Config) { c.TopicsPerStream = 4 }, ""},
		{"query parameter", func(c *Config) { c.TopicsPerStream = 2; c.EventsURL = "http://h/sse?a=b&ch={topic}&c=d" }, ""},
		{"more than the topics", func(c *Config) { c.TopicsPerStream = 5 }, "topics per stream 5 out of range"},
		{"negative", func(c *Config) { c.TopicsPerStream = -1 }, "topics per stream -1 out of range"},
		{"topic in the path", func(c *Config) { c.TopicsPerStream = 2; c.EventsURL = "http://h/sse/{topic}" }, "must hold the topic as a query parameter"},
		{"topic in a value", func(c *Config) { c.TopicsPerStream = 2; c.EventsURL = "http://h/sse?ch=x{topic}" }, "must hold the topic as a query parameter"},
		{"one topic in the path", func(c *Config) { c.Topics = 1; c.EventsURL = "http://h/sse/{topic}" }, ""},
		{"negative publish retry", func(c *Config) { c.PublishRetry = -time.Second }, "publish retry -1s is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			err := c.withDefaults().Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate: %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestTopicsPerStreamReadDoesNotAllocate: an event of a stream's further
// topic costs no allocation, as one of its first topic does (see
// BenchmarkStreamRead).
func TestTopicsPerStreamReadDoesNotAllocate(t *testing.T) {
	p, err := NewPool(Config{URL: "http://127.0.0.1:1", Topics: 8, TopicsPerStream: 8, Idle: true, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{pool: p, topic: "load-0", onTime: true}
	for i := 1; i < 8; i++ {
		s.more = append(s.more, topicSeq{idx: i, name: p.cfg.Topic(i)})
	}
	s.in.reset(&respBody{chunked: true, length: -1}, "", 0)
	var seq int64
	var body, read []byte
	if n := testing.AllocsPerRun(100, func() {
		seq++
		body = append(body[:0], "id: 1\ndata: "...)
		body = AppendPayload(body, "load-7", seq, time.Now().UnixNano())
		body = append(body, "\n\n"...)
		read = sse.AppendChunk(read[:0], body)
		if r, end := s.feed(read, time.Now().UnixNano()); end {
			t.Fatalf("stream ended: %v", r)
		}
	}); n != 0 {
		t.Errorf("an event of the stream's 8th topic allocates %v times", n)
	}
	if got := s.more[6].seq.Unique; got != seq || s.seq.Unique != 0 || s.c.foreign != 0 {
		t.Errorf("load-7 has %d distinct events, load-0 %d, foreign %d; want %d, 0, 0", got, s.seq.Unique, s.c.foreign, seq)
	}
}
