package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

// TestParallelFanOut forces every batch through the multi-goroutine
// fan-out (one stream per worker minimum, four workers) and checks that
// every stream, single- and multi-partition, gets every event of its
// topics exactly once and in order.
func TestParallelFanOut(t *testing.T) {
	broker, err := pubsub.NewMemory(pubsub.MemoryConfig{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Heartbeat: time.Second}, broker)
	if err != nil {
		t.Fatal(err)
	}
	s.hub.fanOutMin = 1
	for _, part := range s.hub.parts {
		for len(part.ws) < 4 {
			part.ws = append(part.ws, newWctx())
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
		_ = broker.Close()
	}()
	base := "http://" + ln.Addr().String()
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("node not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}

	hot, other := "hot", ""
	for i := 0; other == ""; i++ {
		if c := fmt.Sprintf("other-%d", i); pubsub.PartitionOf(c, 4) != pubsub.PartitionOf(hot, 4) {
			other = c
		}
	}
	type stream struct {
		p      *sse.Parser
		conn   net.Conn
		topics []string
	}
	var streams []stream
	for i := range 40 {
		topics := []string{hot}
		if i%4 == 0 {
			topics = append(topics, other)
		}
		q := "topic=" + strings.Join(topics, "&topic=")
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /v1/events?%s HTTP/1.1\r\nHost: x\r\n\r\n", q)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("subscribe: %v %v", resp, err)
		}
		p := sse.NewParser(resp.Body)
		for { // up to the id-only block that follows the retry hint
			ev, err := p.Next()
			if err != nil {
				t.Fatal(err)
			}
			if ev.HasID {
				break
			}
		}
		streams = append(streams, stream{p: p, conn: conn, topics: topics})
	}

	const n = 60
	for i := range n / 3 {
		var batch []map[string]any
		for j := range 3 {
			seq := i*3 + j
			batch = append(batch, map[string]any{"topic": hot, "data": fmt.Sprint(seq)}, map[string]any{"topic": other, "data": fmt.Sprint(seq)})
		}
		body, _ := json.Marshal(batch)
		resp, err := http.Post(base+"/v1/publish", "application/json", bytes.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("publish: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	for si, st := range streams {
		_ = st.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		next := map[string]int{}
		for got := 0; got < n*len(st.topics); {
			ev, err := st.p.Next()
			if err != nil {
				t.Fatalf("stream %d after %d events: %v", si, got, err)
			}
			if !ev.Dispatch {
				continue
			}
			if _, err := pubsub.ParseCursor(ev.ID, 4); err != nil {
				t.Fatalf("stream %d: id %q: %v", si, ev.ID, err)
			}
			// Each topic's data counts 0..n-1; two topics interleave.
			seq := fmt.Sprint(next[hot])
			topic := hot
			if ev.Data != seq {
				topic = other
				seq = fmt.Sprint(next[other])
			}
			if ev.Data != seq {
				t.Fatalf("stream %d: got %q, want %q (next %v)", si, ev.Data, seq, next)
			}
			next[topic]++
			got++
		}
	}
}
