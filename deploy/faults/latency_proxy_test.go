package faults

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// latencyProxy is a loopback TCP proxy in front of a Redis that delays
// what clients send by a delay that can change while it runs: every chunk
// read from a client is written to the server delay after it arrived, in
// order (a delay line, so pipelined commands are not delayed once per
// command in a row). Replies pass through at once. With delay d every
// command answers about d later, which is what a slow network or a
// saturated Redis looks like to the nodes.
//
// Goroutines: an accept loop, and per connection a reader and a writer of
// the delay line and a copier of the replies, all started by
// startLatencyProxy and ended by the cleanup it registers (it closes the
// listener and every connection, then waits for them). At most
// maxProxyConns connections at once; more are closed at accept.
type latencyProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // ns
	// control is an HTTP server on loopback whose POST /delay?ms=N sets
	// the delay, so a storm command (curl) can turn the fault on and off.
	control *httptest.Server

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

const (
	maxProxyConns = 1024
	// proxyChunks bounds the chunks waiting in one connection's delay
	// line; a client that sends faster than that waits (TCP backpressure).
	proxyChunks = 256
)

// startLatencyProxy listens on a free loopback port and forwards to target
// (host:port), with no delay until one is set.
func startLatencyProxy(t testing.TB, target string) *latencyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("latency proxy: %v", err)
	}
	p := &latencyProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.control = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if r.Method != http.MethodPost || r.URL.Path != "/delay" || err != nil || ms < 0 {
			http.Error(w, "POST /delay?ms=N", http.StatusBadRequest)
			return
		}
		p.delay.Store(int64(ms) * int64(time.Millisecond))
	}))
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *latencyProxy) Addr() string { return p.ln.Addr().String() }

// DelayCommand returns a shell command setting the delay (curl).
func (p *latencyProxy) DelayCommand(d time.Duration) string {
	return "curl -fsS -X POST '" + p.control.URL + "/delay?ms=" + strconv.FormatInt(d.Milliseconds(), 10) + "'"
}

func (p *latencyProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			_ = c.Close()
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// track registers c; false when the proxy is closing or full.
func (p *latencyProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.conns) >= maxProxyConns {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

type chunk struct {
	b   []byte
	due time.Time
}

// serve forwards one client connection until either side ends.
func (p *latencyProxy) serve(client net.Conn) {
	defer p.untrack(client)
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	if !p.track(server) {
		_ = server.Close()
		return
	}
	defer p.untrack(server)
	// Whichever direction ends first closes both connections, which ends
	// the other two goroutines.
	var once sync.Once
	done := make(chan struct{})
	both := func() { once.Do(func() { close(done); _ = client.Close(); _ = server.Close() }) }
	line := make(chan chunk, proxyChunks)
	var wg sync.WaitGroup
	wg.Go(func() { // client -> delay line
		defer close(line)
		for {
			b := make([]byte, 32<<10)
			n, err := client.Read(b)
			if n > 0 {
				select {
				case line <- chunk{b: b[:n], due: time.Now().Add(time.Duration(p.delay.Load()))}:
				case <-done: // the writer is gone: nobody drains the line
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	wg.Go(func() { // delay line -> server
		defer both()
		for c := range line {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d) // the delay line's own pace: this goroutine only waits for its next chunk's time
			}
			if _, err := server.Write(c.b); err != nil {
				return
			}
		}
	})
	wg.Go(func() { // server -> client, undelayed
		defer both()
		_, _ = io.Copy(client, server)
	})
	wg.Wait()
}

func (p *latencyProxy) untrack(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *latencyProxy) close() {
	p.control.Close()
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestLatencyProxy checks the proxy against an echo server: undelayed, a
// round trip is fast; with 150 ms, each of three pipelined writes comes
// back about 150 ms after it was sent, not 150 ms after the previous one.
func TestLatencyProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var echoes sync.WaitGroup
	echoes.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			echoes.Go(func() { defer c.Close(); _, _ = io.Copy(c, c) })
		}
	})
	defer func() { _ = ln.Close(); echoes.Wait() }()
	p := startLatencyProxy(t, ln.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	roundTrip := func(msg string) time.Duration {
		start := time.Now()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, len(msg))); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	if d := roundTrip("ping"); d > 100*time.Millisecond {
		t.Errorf("undelayed round trip took %v", d)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Post(p.control.URL+"/delay?ms=150", "", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("setting the delay: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	start := time.Now()
	for range 3 {
		if _, err := c.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // three chunks, not one
	}
	if _, err := io.ReadFull(c, make([]byte, 9)); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	// ~170 ms (150 after the last write, 20 ms after the first); a delay
	// per chunk in a row would take ~450 ms.
	if d := time.Since(start); d < 150*time.Millisecond || d > 350*time.Millisecond {
		t.Errorf("three pipelined writes came back after %v, want about 170ms", d)
	}
}
