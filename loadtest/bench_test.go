package loadtest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node/sse"
)

// benchEvent appends one ssecluster event of topic load-0 as a node frames
// it: an id line (the node's cursor) and the payload as data.
func benchEvent(dst []byte, seq, sentNs int64) []byte {
	dst = append(dst, "id: 7.1b2rnjs2juyzc.1795246899974-"...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, "\ndata: "...)
	dst = AppendPayload(dst, "load-0", seq, sentNs)
	return append(dst, "\n\n"...)
}

// benchReads returns n events as the reads of a socket would return them:
// perRead events per read, each read one HTTP chunk (a node writes what it
// has queued for a connection as one chunk).
func benchReads(n, perRead int) [][]byte {
	sent := time.Now().UnixNano()
	var reads [][]byte
	var body []byte
	for seq := int64(1); seq <= int64(n); seq++ {
		body = benchEvent(body, seq, sent)
		if seq%int64(perRead) == 0 || seq == int64(n) {
			reads = append(reads, sse.AppendChunk(nil, body))
			body = body[:0]
		}
	}
	return reads
}

// benchPool is a pool that is never run: what a stream records into.
func benchPool(tb testing.TB, subs int) *Pool {
	tb.Helper()
	p, err := NewPool(Config{URL: "http://127.0.0.1:1", Subs: subs, Idle: true, Duration: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkStreamRead is the user-space read path of one stream without
// sockets: chunked framing removed, SSE decoded, payload parsed, latency
// recorded, sequence checked, live counters added, as the poller does per
// read. One op is one event; allocs/op is allocations per event.
func BenchmarkStreamRead(b *testing.B) {
	for _, perRead := range []int{1, 10} {
		b.Run(fmt.Sprintf("events_per_read=%d", perRead), func(b *testing.B) {
			p := benchPool(b, 1)
			s := &stream{pool: p, topic: "load-0", onTime: true}
			s.in.reset(&respBody{chunked: true, length: -1}, "", 0)
			reads := benchReads(b.N, perRead)
			b.ReportAllocs()
			b.ResetTimer()
			for _, rd := range reads {
				if r, end := s.feed(rd, time.Now().UnixNano()); end {
					b.Fatalf("stream ended: %v", r)
				}
				s.in.live.flush(&p.delivered, &p.onTimeUniq)
			}
			b.StopTimer()
			if s.c.delivered != int64(b.N) || s.seq.Unique != int64(b.N) || p.Delivered() != int64(b.N) {
				b.Fatalf("delivered %d unique %d live %d, want %d", s.c.delivered, s.seq.Unique, p.Delivered(), b.N)
			}
		})
	}
}

// BenchmarkSocketRead runs the read path over real loopback sockets: one
// writer goroutine writes each event to 1,000 connections in turn (as a
// node fans out) while they are read by the poller, or by a goroutine per
// stream as before it. One op is one event received. ns/op includes the
// writer; cpu-ns/event is the whole process's CPU time (user + system,
// writer included) per event, so the difference between the two modes is
// the reader's.
func BenchmarkSocketRead(b *testing.B) {
	const conns = 1000
	for _, mode := range []string{"poller", "goroutine"} {
		b.Run(mode, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			p := benchPool(b, conns)
			var pl *poller
			if mode == "poller" {
				if pl, err = newPoller(2); err != nil {
					b.Skip("no poller:", err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() {
				cancel()
				wg.Wait()
			}()
			if pl != nil {
				wg.Go(func() { pl.run(ctx, p) })
			}
			writers := make([]net.Conn, conns)
			for i := range writers {
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				if writers[i], err = ln.Accept(); err != nil {
					b.Fatal(err)
				}
				defer writers[i].Close()
				s := &stream{pool: p, key: i, topic: "load-0", onTime: true}
				s.in.reset(&respBody{chunked: true, length: -1}, "", i)
				if pl != nil {
					wg.Go(func() { pl.read(ctx, s, nc) })
				} else {
					wg.Go(func() { s.readConn(ctx, nc) })
				}
			}
			rounds := max(b.N/conns, 1)
			frame := make([]byte, 0, 256)
			cpu0 := cpuTime()
			b.ResetTimer()
			for seq := int64(1); seq <= int64(rounds); seq++ {
				frame = sse.AppendChunk(frame[:0], benchEvent(nil, seq, time.Now().UnixNano()))
				for _, w := range writers {
					if _, err := w.Write(frame); err != nil {
						b.Fatal(err)
					}
				}
			}
			start, events := time.Now(), int64(rounds*conns)
			for p.Delivered() < events {
				if time.Since(start) > time.Minute {
					b.Fatalf("delivered %d of %d", p.Delivered(), events)
				}
				time.Sleep(100 * time.Microsecond) // polling for the readers to catch up
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed())/float64(events), "ns/event")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(events), "cpu-ns/event")
		})
	}
}

// cpuTime returns the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
