package node

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

// BenchmarkFanout measures the encode-and-fan-out hot path: hub.Deliver
// encoding a broker batch once and writing each stream's share to a real
// loopback TCP socket (a real write syscall per stream and batch), with a
// reader goroutine per socket draining the client side. It reports the
// cost per delivered event (one event written to one stream) and the
// allocations per delivery; allocs/op are per Deliver call, which encodes
// each event of the batch once (its shared frame and replay cache entry).
//
// Every byte written is read by the client goroutines before the timer
// stops, so no work is left in socket buffers; their read syscalls run on
// the same cores and are part of ns/delivery.
func BenchmarkFanout(b *testing.B) {
	cases := []struct {
		topics, subs, batch int
	}{
		{1, 1000, 1},     // one topic, 1,000 subscribers, one event per broker batch
		{1, 1000, 10},    // the same, ten events per broker batch (coalesced into one write)
		{1000, 1000, 10}, // 1,000 topics with one subscriber each, ten events per batch
	}
	for _, bc := range cases {
		b.Run(fmt.Sprintf("topics=%d/subs=%d/batch=%d", bc.topics, bc.subs, bc.batch), func(b *testing.B) {
			benchFanout(b, bc.topics, bc.subs, bc.batch)
		})
	}
}

func benchFanout(b *testing.B, nTopics, nSubs, batch int) {
	const part = 0
	broker, err := pubsub.NewMemory(pubsub.MemoryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Close()
	s, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, broker)
	if err != nil {
		b.Fatal(err)
	}
	topics := topicsInPartition(part, broker.Partitions(), nTopics)
	s.hub.Start(pubsub.ID{Partition: part, Epoch: "bench"}, "")

	fx := newFanoutFixture(b, s, topics, nSubs)
	defer fx.close()

	// Positions with a constant number of digits keep every frame the same
	// size, so the bytes the readers must receive are known exactly.
	const base = 1_000_000_000_000
	payload := []byte(`{"topic":"bench","seq":123456,"sent_ns":1767225600000000000,"pad":"xxxxxxxxxxxxxxxxxxxx"}`)
	evs := make([]pubsub.Event, batch)
	next := 0
	fill := func(op int) {
		for j := range evs {
			evs[j] = pubsub.Event{
				ID:    pubsub.ID{Partition: part, Epoch: "bench", Pos: pubsub.Pos{Ms: base + uint64(op), Seq: uint64(j)}},
				Topic: topics[next%len(topics)],
				Data:  payload,
			}
			next++
		}
	}
	fill(0)
	frame, _, _ := encodeEvent(&evs[0])
	frameLen := len(frame)
	chunk := func(n int) int { return len(sse.AppendChunkHeader(nil, n)) + n + 2 }
	// Bytes all readers receive per Deliver, and deliveries per Deliver.
	var perOpBytes, perOpDeliveries int64
	if nTopics == 1 {
		perOpBytes = int64(nSubs * chunk(batch*frameLen))
		perOpDeliveries = int64(nSubs * batch)
	} else {
		if nSubs != nTopics || batch > nTopics {
			b.Fatal("multi-topic cases need one subscriber per topic and batch <= topics")
		}
		perOpBytes = int64(batch * chunk(frameLen))
		perOpDeliveries = int64(batch)
	}

	// Warm up: grow the fan-out scratch, the cache rings and the sockets.
	for op := range 100 {
		fill(op)
		s.hub.Deliver(part, evs)
	}
	fx.waitRead(b, 100*perOpBytes)

	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	delivered0 := s.stats.Deliveries.Load()
	b.ReportAllocs()
	b.ResetTimer()
	op := 100
	for range b.N {
		fill(op)
		s.hub.Deliver(part, evs)
		op++
	}
	fx.waitRead(b, int64(op)*perOpBytes) // drained before the timer stops
	b.StopTimer()
	runtime.ReadMemStats(&ms1)

	n := int64(op - 100)
	deliveries := s.stats.Deliveries.Load() - delivered0
	if deliveries != n*perOpDeliveries {
		b.Fatalf("%d deliveries, want %d", deliveries, n*perOpDeliveries)
	}
	if closed := fx.closedStreams(); closed > 0 {
		b.Fatalf("%d streams closed during the benchmark (slow consumer?)", closed)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(deliveries), "ns/delivery")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(deliveries), "allocs/delivery")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(deliveries), "B/delivery")
	b.ReportMetric(float64(deliveries)/b.Elapsed().Seconds(), "deliveries/s")
}

// topicsInPartition returns n topic names that hash to partition p.
func topicsInPartition(p, partitions, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		t := fmt.Sprintf("bench-%d", i)
		if pubsub.PartitionOf(t, partitions) == p {
			out = append(out, t)
		}
	}
	return out
}

// fanoutFixture is nSubs hijacked-like streams: the server side of a
// loopback TCP connection wrapped in a *conn registered with the hub, the
// client side drained by a goroutine.
type fanoutFixture struct {
	srv     *Server
	conns   []*conn
	clients []net.Conn
	read    atomic.Int64
	readers sync.WaitGroup
}

func newFanoutFixture(b *testing.B, s *Server, topics []string, nSubs int) *fanoutFixture {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	fx := &fanoutFixture{srv: s}
	for i := range nSubs {
		cl, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			fx.close()
			b.Fatal(err)
		}
		sv, err := ln.Accept()
		if err != nil {
			_ = cl.Close()
			fx.close()
			b.Fatal(err)
		}
		rc, err := sv.(syscall.Conn).SyscallConn()
		if err != nil {
			b.Fatal(err)
		}
		topic := topics[i%len(topics)]
		c := &conn{
			id: uint64(i + 1), srv: s, nc: sv, rc: rc, chunked: true, since: time.Now(),
			parts: []connPart{{p: pubsub.PartitionOf(topic, s.broker.Partitions()), topics: []string{topic}}},
		}
		if _, ok := s.hub.register(c, make([]regFloor, len(c.parts))); !ok {
			b.Fatal("partition not started")
		}
		fx.conns = append(fx.conns, c)
		fx.clients = append(fx.clients, cl)
		fx.readers.Go(func() {
			buf := make([]byte, 16<<10)
			for {
				n, err := cl.Read(buf)
				fx.read.Add(int64(n))
				if err != nil {
					return
				}
			}
		})
	}
	return fx
}

// waitRead waits until the readers have received want bytes in total.
func (fx *fanoutFixture) waitRead(b *testing.B, want int64) {
	deadline := time.Now().Add(30 * time.Second)
	for fx.read.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("readers got %d bytes, want %d", fx.read.Load(), want)
		}
		runtime.Gosched()
	}
	if got := fx.read.Load(); got != want {
		b.Fatalf("readers got %d bytes, want exactly %d", got, want)
	}
}

func (fx *fanoutFixture) closedStreams() int {
	n := 0
	for _, c := range fx.conns {
		c.mu.Lock()
		if c.closed {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

func (fx *fanoutFixture) close() {
	for _, c := range fx.conns {
		c.close(ReasonClientGone)
	}
	for _, cl := range fx.clients {
		_ = cl.Close()
	}
	fx.readers.Wait()
	fx.srv.flushers.Wait()
}
