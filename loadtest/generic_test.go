package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// genericServer is a minimal SSE server that is not ssecluster: clients
// subscribe at /sse?ch=NAME, publishers POST {"ch":NAME,"msg":STRING} to
// /pub, and each message goes out as {"channel":NAME,"message":STRING}, so
// the tool's payload arrives as a JSON string inside another document.
type genericServer struct {
	mu    sync.Mutex
	subs  map[string][]chan string
	subed sync.WaitGroup
}

func (g *genericServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/pub":
		var in struct{ Ch, Msg string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Ch == "" {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		out, _ := json.Marshal(map[string]string{"channel": in.Ch, "message": in.Msg})
		g.mu.Lock()
		for _, c := range g.subs[in.Ch] {
			c <- string(out) // buffered for the whole test
		}
		g.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	case "/sse":
		ch := r.URL.Query().Get("ch")
		c := make(chan string, 1000)
		g.mu.Lock()
		g.subs[ch] = append(g.subs[ch], c)
		g.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		fmt.Fprint(w, ": hello\n\n")
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case m := <-c:
				fmt.Fprintf(w, "data: %s\n\n", m)
				w.(http.Flusher).Flush()
			}
		}
	default:
		http.NotFound(w, r)
	}
}

// TestGenericTarget drives a non-ssecluster server through the generic
// URL and body templates, in bursts, and checks the counts exactly: the
// sequence numbers in the payload are the only way to know what arrived.
func TestGenericTarget(t *testing.T) {
	g := &genericServer{subs: make(map[string][]chan string)}
	srv := httptest.NewServer(g)
	defer srv.Close()
	cfg := Config{
		URL:         srv.URL,
		EventsURL:   srv.URL + "/sse?ch={topic}",
		PublishURL:  srv.URL + "/pub",
		PublishBody: `{"ch":"{topic}","msg":{payload_str}}`,
		Subs:        6, Topics: 3, Rate: 500, Count: 60, Burst: 10, Drain: 10 * time.Second,
	}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	d := r.Delivery
	// 60 events over 3 topics: 20 each, 2 streams per topic.
	if r.Publish.Published != 60 || d.Expected != 120 || d.Delivered != 120 || d.Unique != 120 || d.Loss != 0 {
		t.Errorf("published %d expected %d delivered %d unique %d loss %d; want 60, 120, 120, 120, 0",
			r.Publish.Published, d.Expected, d.Delivered, d.Unique, d.Loss)
	}
	if d.Duplicates != 0 || d.Gaps != 0 || d.Reordered != 0 || d.BadPayload != 0 || d.Foreign != 0 {
		t.Errorf("delivery %+v", d)
	}
	if r.Streams.Comments != 6 {
		t.Errorf("comments %d, want the 6 hellos", r.Streams.Comments)
	}
}

// TestFindPayload: the payload as the whole data, as a JSON string, or
// inside another document.
func TestFindPayload(t *testing.T) {
	p := string(AppendPayload(nil, "t-1", 7, 99))
	q, _ := json.Marshal(p)
	tests := []struct {
		data string
		ok   bool
	}{
		{p, true},
		{string(q), true},
		{`{"channel":"t-1","message":` + string(q) + `}`, true},
		{`{"wrapped":{"deeper":[1,` + p + `]}}`, true},
		{`{"topic":"t-1","seq":7,"sent_ns":99,"extra":1}`, true},
		{`{"message":"not json"}`, false},
		{`not json`, false},
		{`{"topic":"t-1","seq":0,"sent_ns":99}`, false},
		{strings.Repeat("[", 100) + p + strings.Repeat("]", 100), false}, // too deep to look
	}
	for _, tc := range tests {
		got, ok := ParsePayload(tc.data)
		if ok != tc.ok || ok && (got.Topic != "t-1" || got.Seq != 7 || got.SentNs != 99) {
			t.Errorf("ParsePayload(%.60q) = %+v, %v; want ok %v", tc.data, got, ok, tc.ok)
		}
	}
}
