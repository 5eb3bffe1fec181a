package loadtest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node/sse"
)

// rawServer accepts connections on loopback and answers each with writes
// (each written separately), then holds the connection open until the test
// ends unless closeAfter is set.
func rawServer(t *testing.T, writes []string, closeAfter bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(done)
		_ = ln.Close()
		wg.Wait()
	})
	wg.Go(func() { // accept loop: ends when the listener closes
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { // one connection: ends when the test does
				defer c.Close()
				buf := make([]byte, 4096)
				_, _ = c.Read(buf) // the request head
				for _, w := range writes {
					if _, err := c.Write([]byte(w)); err != nil {
						return
					}
				}
				if !closeAfter {
					<-done
				}
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// sseEvent is one ssecluster event of topic load-0 as a node frames it.
func sseEvent(seq int64) string {
	return "id: c" + strconv.FormatInt(seq, 10) + "\ndata: " +
		string(AppendPayload(nil, "load-0", seq, time.Now().UnixNano())) + "\n\n"
}

func chunk(s string) string { return string(sse.AppendChunk(nil, []byte(s))) }

// TestReadBodies checks each way a response body can be framed and end,
// read by the poller and by the stream's own goroutine.
func TestReadBodies(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
	const chunked = head + "Transfer-Encoding: chunked\r\n\r\n"
	e1, e2 := sseEvent(1), sseEvent(2)
	tests := []struct {
		name      string
		writes    []string
		close     bool
		delivered int64
		drop      string
	}{
		{"chunked, ends cleanly", []string{chunked + chunk(e1), chunk(e2[:9]) + chunk(e2[9:]), sse.ChunkEnd}, false, 2, "eof"},
		{"chunked, head and body in one write", []string{chunked + chunk(e1) + chunk(e2) + sse.ChunkEnd}, false, 2, "eof"},
		{"chunked, cut inside a chunk", []string{chunked + chunk(e1), chunk(e2)[:20]}, true, 1, "reset"},
		{"chunked, cut between chunks", []string{chunked + chunk(e1)}, true, 1, "reset"},
		{"chunked, malformed", []string{chunked + chunk(e1), "zz\r\n"}, false, 1, "protocol_error"},
		{"content-length", []string{head + "Content-Length: " + strconv.Itoa(len(e1+e2)) + "\r\n\r\n" + e1, e2}, false, 2, "eof"},
		{"content-length, cut", []string{head + "Content-Length: " + strconv.Itoa(len(e1+e2)) + "\r\n\r\n" + e1}, true, 1, "reset"},
		{"until close", []string{head + "Connection: close\r\n\r\n" + e1, e2}, true, 2, "eof"},
	}
	for _, tt := range tests {
		for _, noPoll := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/noPoll=%v", tt.name, noPoll), func(t *testing.T) {
				url := rawServer(t, tt.writes, tt.close)
				pool := runPoolUntil(t, Config{URL: url, Subs: 1, Idle: true, Duration: time.Second}, func(p *Pool) { p.noPoll = noPoll }, func(pool *Pool) error {
					pool.mu.Lock()
					defer pool.mu.Unlock()
					if n := pool.totals.connectOK; n != 1 { // folded: the stream has ended
						return fmt.Errorf("streams ended %d, want 1", n)
					}
					return nil
				})
				r := newReport(Config{})
				pool.fill(r)
				if r.Delivery.Delivered != tt.delivered || r.Streams.Drops[tt.drop] != 1 || r.Latency.Count() != tt.delivered {
					t.Errorf("delivered %d, drops %v, latencies %d; want %d, one %s", r.Delivery.Delivered, r.Streams.Drops, r.Latency.Count(), tt.delivered, tt.drop)
				}
				if pool.Delivered() != tt.delivered || pool.Connected() != 0 {
					t.Errorf("live counters: delivered %d connected %d", pool.Delivered(), pool.Connected())
				}
			})
		}
	}
}

// TestPollerReadCancel ends one stream's read through its own context while
// the poller goes on, then stops the poller with a stream still open.
func TestPollerReadCancel(t *testing.T) {
	pl, err := newPoller(1)
	if err != nil {
		t.Skip("no poller:", err)
	}
	url := rawServer(t, nil, false)
	pool, err := NewPool(Config{URL: url, Subs: 2, Idle: true, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { pl.run(runCtx, pool) })
	defer func() {
		stopRun()
		wg.Wait()
	}()

	read := func(ctx context.Context, key int) <-chan Reason {
		nc, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		s := &stream{pool: pool, key: key, topic: "load-0"}
		s.in.reset(&respBody{chunked: true}, "", 0)
		out := make(chan Reason, 1)
		wg.Go(func() { out <- pl.read(ctx, s, nc) })
		return out
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := read(ctx, 0)
	second := read(context.Background(), 1)
	cancel()
	if r := <-first; r != ReasonReset {
		t.Errorf("cancelled read ended with %v, want reset (closed)", r)
	}
	select {
	case r := <-second:
		t.Fatalf("the other read ended too (%v)", r)
	default:
	}
	stopRun()
	if r := <-second; r != ReasonReset {
		t.Errorf("read open at the poller's stop ended with %v, want reset (closed)", r)
	}
}
