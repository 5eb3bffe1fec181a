package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// BenchmarkSocketRead runs the read path over real loopback sockets, as
// in a fan-out run at a low rate: a writer process (this test binary, see
// benchWriter) writes each event to 1,000 connections in turn, as a node
// does, and waits until every stream has it before the next. The streams
// are read by the poller, or by a goroutine each as before it. The writer
// writes as fast as it can ("burst") or one connection every 5 µs
// ("paced", about the pace of a node's fan-out on this machine), so that
// the reader mostly finds one socket ready at a time. One op is one event
// received; cpu-ns/event is this process's CPU time (user + system) per
// event: the reader alone, with the kernel's receive path and the ACK that
// every read sends (on loopback the ACK is also received in the reader's
// context).
func BenchmarkSocketRead(b *testing.B) {
	const conns = 1000
	for _, bench := range []struct {
		mode string
		pace time.Duration
	}{{"poller", 0}, {"goroutine", 0}, {"poller", 5 * time.Microsecond}, {"goroutine", 5 * time.Microsecond}} {
		name := bench.mode + "/burst"
		if bench.pace > 0 {
			name = bench.mode + "/paced"
		}
		b.Run(name, func(b *testing.B) {
			mode := bench.mode
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			p := benchPool(b, conns)
			var pl *poller
			if mode == "poller" {
				if pl, err = newPoller(0); err != nil {
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

			cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%d", benchWriterEnv, ln.Addr(), conns, bench.pace))
			cmd.Stderr = os.Stderr
			toWriter, err := cmd.StdinPipe()
			if err != nil {
				b.Fatal(err)
			}
			fromWriter, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() {
				_ = toWriter.Close() // the writer exits on EOF
				_ = cmd.Wait()
			}()
			for i := range conns {
				nc, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				s := &stream{pool: p, key: i, topic: "load-0", onTime: true}
				s.in.reset(&respBody{chunked: true, length: -1}, "", i)
				if pl != nil {
					wg.Go(func() { pl.read(ctx, s, nc) })
				} else {
					wg.Go(func() { s.readConn(ctx, nc) })
				}
			}

			rounds := max(b.N/conns, 1)
			acks := bufio.NewReader(fromWriter)
			var cpu time.Duration
			b.ResetTimer()
			for round := range rounds {
				cpu0 := cpuTime()
				if _, err := toWriter.Write([]byte{'\n'}); err != nil { // write the next event
					b.Fatal(err)
				}
				if _, err := acks.ReadByte(); err != nil { // written
					b.Fatal(err)
				}
				want := int64((round + 1) * conns)
				for p.Delivered() < want {
					time.Sleep(500 * time.Microsecond) // polling: a spin would add its own CPU time
				}
				cpu += cpuTime() - cpu0
			}
			b.StopTimer()
			events := float64(rounds * conns)
			b.ReportMetric(float64(b.Elapsed())/events, "ns/event")
			b.ReportMetric(float64(cpu)/events, "cpu-ns/event")
		})
	}
}

// benchWriterEnv makes the test binary the writer of BenchmarkSocketRead:
// "address,connections,pace" (pace: nanoseconds from one write to the next).
const benchWriterEnv = "LOADTEST_BENCH_WRITER"

// benchWriter dials n connections to addr, then for each byte on stdin
// writes the next event to every connection, a pace apart (by a busy wait,
// as a node busy with its fan-out), and answers one byte on stdout. It
// returns at EOF on stdin.
func benchWriter(spec string) error {
	var addr string
	var n int
	var pace time.Duration
	if f := strings.Split(spec, ","); len(f) == 3 {
		addr = f[0]
		n, _ = strconv.Atoi(f[1])
		p, _ := strconv.ParseInt(f[2], 10, 64)
		pace = time.Duration(p)
	}
	if n <= 0 {
		return fmt.Errorf("writer spec %q: want address,connections,pace", spec)
	}
	var err error
	conns := make([]net.Conn, n)
	for i := range conns {
		if conns[i], err = net.Dial("tcp", addr); err != nil {
			return err
		}
		defer conns[i].Close()
	}
	in := bufio.NewReader(os.Stdin)
	var frame []byte
	for seq := int64(1); ; seq++ {
		if _, err := in.ReadByte(); err != nil {
			return nil
		}
		frame = sse.AppendChunk(frame[:0], benchEvent(nil, seq, time.Now().UnixNano()))
		start := time.Now()
		for i, c := range conns {
			for pace > 0 && time.Since(start) < time.Duration(i)*pace {
			}
			if _, err := c.Write(frame); err != nil {
				return err
			}
		}
		if _, err := os.Stdout.Write([]byte{'\n'}); err != nil {
			return err
		}
	}
}

// cpuTime returns the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
