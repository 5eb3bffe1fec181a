package pubsub_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/pubsub"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// TestTopologyFigures measures what BENCHMARKS.md reports for the Redis
// topologies. On demand only (it takes about two minutes and prints
// figures; nothing is asserted about speed):
//
//	SSE_TOPOLOGY_FIGURES=1 go test -run TestTopologyFigures -v -timeout 10m ./pubsub
//
// Brokers stand in for nodes (each one Run, as a node has): the Redis side
// of the cost is the same, and Redis CPU is read from INFO cpu of every
// primary before and after each run.
func TestTopologyFigures(t *testing.T) {
	if os.Getenv("SSE_TOPOLOGY_FIGURES") == "" {
		t.Skip("set SSE_TOPOLOGY_FIGURES=1 to measure")
	}
	t.Run("wait", figuresWait)
	t.Run("single_vs_cluster", figuresSingleVsCluster)
	t.Run("nodes", figuresNodes)
	t.Run("failover", figuresFailover)
}

// countLog is a Handler that only counts deliveries.
type countLog struct {
	n       atomic.Int64
	started atomic.Int64
	last    atomic.Int64 // Unix ns of the last Deliver
}

func (c *countLog) Start(_ pubsub.ID, reason string) {
	if reason == "" {
		c.started.Add(1)
	}
}
func (c *countLog) Deliver(_ int, evs []pubsub.Event) {
	c.n.Add(int64(len(evs)))
	c.last.Store(time.Now().UnixNano())
}

func runCounting(t *testing.T, b *pubsub.Redis) *countLog {
	t.Helper()
	c := &countLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx, c); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = b.Close() })
	waitFor(t, "start", func() bool { return c.started.Load() == int64(b.Partitions()) })
	return c
}

// redisCPU sums used_cpu_user and used_cpu_sys (s) of servers.
func redisCPU(t *testing.T, servers []*pubsubtest.Redis) float64 {
	t.Helper()
	var sum float64
	for _, s := range servers {
		v, err := s.Do("INFO", "cpu")
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(fmt.Sprint(v), "\n") {
			k, val, _ := strings.Cut(strings.TrimSpace(line), ":")
			if k == "used_cpu_user" || k == "used_cpu_sys" {
				f, _ := strconv.ParseFloat(val, 64)
				sum += f
			}
		}
	}
	return sum
}

// load publishes single events on topics from workers goroutines, at most
// rate per second in all (0: as fast as they go), for d; it returns the
// latencies of the confirmed publishes and the errors.
func load(b *pubsub.Redis, workers, topics int, rate float64, d time.Duration) (lat []time.Duration, errs int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	var every time.Duration
	if rate > 0 {
		every = time.Duration(float64(workers) * float64(time.Second) / rate)
	}
	for w := range workers {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			next := time.Now()
			for i := 0; time.Now().Before(end); i++ {
				if every > 0 {
					if wait := time.Until(next); wait > 0 {
						time.Sleep(wait)
					}
					next = next.Add(every)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				t0 := time.Now()
				_, err := b.Publish(ctx, []pubsub.Message{{Topic: fmt.Sprintf("topic-%d", (w*7919+i)%topics), Data: []byte(`{"n":1}`)}})
				el := time.Since(t0)
				cancel()
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, el)
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return lat, errs
}

func pct(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(q*float64(len(lat))))]
}

func figuresWait(t *testing.T) {
	s := pubsubtest.StartSentinel(t)
	for _, wait := range []int{0, 1} {
		b := newRedis(t, pubsub.RedisConfig{SentinelURL: s.URL(), WaitReplicas: wait})
		runCounting(t, b)
		const d = 8 * time.Second
		lat, errs := load(b, 32, 1000, 0, d)
		t.Logf("FIGURE wait=%d: %d publishes in %v = %.0f/s, p50 %.2f ms, p99 %.2f ms, errors %d (Sentinel, 32 in flight, 1000 topics)",
			wait, len(lat), d, float64(len(lat))/d.Seconds(), ms(pct(lat, 0.5)), ms(pct(lat, 0.99)), errs)
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func figuresSingleVsCluster(t *testing.T) {
	single := pubsubtest.StartRedis(t)
	cluster := pubsubtest.StartCluster(t)
	for _, tc := range []struct {
		name    string
		cfg     pubsub.RedisConfig
		servers func() []*pubsubtest.Redis
	}{
		{"single", pubsub.RedisConfig{URL: single.URL(), Partitions: 48}, func() []*pubsubtest.Redis { return []*pubsubtest.Redis{single} }},
		{"cluster-3-masters", pubsub.RedisConfig{ClusterURL: cluster.URL(), Partitions: 48}, cluster.Masters},
	} {
		nodes := make([]*countLog, 3)
		var pub *pubsub.Redis
		tc.cfg.Prefix = uniquePrefix() // one cluster of 3 nodes
		for i := range nodes {
			b := newRedis(t, tc.cfg)
			nodes[i] = runCounting(t, b)
			if i == 0 {
				pub = b
			}
		}
		cpu0 := redisCPU(t, tc.servers())
		var before int64
		for _, n := range nodes {
			before += n.n.Load()
		}
		const d = 8 * time.Second
		lat, errs := load(pub, 32, 1000, 0, d)
		time.Sleep(500 * time.Millisecond) // let the readers finish the tail
		var after int64
		for _, n := range nodes {
			after += n.n.Load()
		}
		cpu := redisCPU(t, tc.servers()) - cpu0
		delivered := after - before
		t.Logf("FIGURE %s: %d published (%.0f/s, p99 %.2f ms, errors %d), %d delivered by 3 nodes (%.0f/s), Redis CPU %.2f s = %.1f µs per published event, %.1f µs per delivered",
			tc.name, len(lat), float64(len(lat))/d.Seconds(), ms(pct(lat, 0.99)), errs, delivered, float64(delivered)/d.Seconds(),
			cpu, cpu/float64(len(lat))*1e6, cpu/float64(delivered)*1e6)
	}
}

func figuresNodes(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	for _, n := range []int{1, 3, 9} {
		cfg := pubsub.RedisConfig{URL: srv.URL(), Prefix: uniquePrefix()}
		var pub *pubsub.Redis
		for i := range n {
			b := newRedis(t, cfg)
			runCounting(t, b)
			if i == 0 {
				pub = b
			}
		}
		cpu0 := redisCPU(t, []*pubsubtest.Redis{srv})
		const d = 8 * time.Second
		lat, errs := load(pub, 16, 1000, 2000, d)
		cpu := redisCPU(t, []*pubsubtest.Redis{srv}) - cpu0
		t.Logf("FIGURE nodes=%d: %d published at a steady 2000/s (errors %d), Redis CPU %.2f s = %.1f µs per event, %.1f µs per event per node",
			n, len(lat), errs, cpu, cpu/float64(len(lat))*1e6, cpu/float64(len(lat))/float64(n)*1e6)
	}
}

func figuresFailover(t *testing.T) {
	s := pubsubtest.StartSentinel(t)
	cfg := pubsub.RedisConfig{SentinelURL: s.URL(), Prefix: uniquePrefix(), WaitReplicas: 1}
	var nodes []*countLog
	var pub *pubsub.Redis
	for i := range 3 {
		b := newRedis(t, cfg)
		nodes = append(nodes, runCounting(t, b))
		if i == 0 {
			pub = b
		}
	}
	var firstOK atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var killedAt time.Time
	var killMu sync.Mutex
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := pub.Publish(ctx, []pubsub.Message{{Topic: fmt.Sprintf("t%d", i%100), Data: []byte("x"), IdempotencyKey: strconv.Itoa(i)}})
			cancel()
			killMu.Lock()
			k := killedAt
			killMu.Unlock()
			if err == nil && !k.IsZero() && firstOK.Load() == 0 {
				firstOK.Store(time.Now().UnixNano())
			}
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				i-- // the same key again
			} else {
				time.Sleep(5 * time.Millisecond)
			}
		}
	})
	time.Sleep(time.Second)
	killMu.Lock()
	old := s.Master()
	killedAt = time.Now()
	killMu.Unlock()
	old.Kill()
	s.WaitMaster(t, old.Addr, 30*time.Second)
	promoted := time.Since(killedAt)
	old.Restart() // back as a replica, so WAIT 1 can be met again
	waitFor(t, "a confirmed publish", func() bool { return firstOK.Load() != 0 })
	waitFor(t, "every node delivering", func() bool {
		for _, n := range nodes {
			if n.last.Load() < firstOK.Load() {
				return false
			}
		}
		return true
	})
	var all int64
	for _, n := range nodes {
		all = max(all, n.last.Load())
	}
	close(stop)
	wg.Wait()
	k := killedAt.UnixNano()
	t.Logf("FIGURE failover (Sentinel, down-after 1 s, WAIT 1): master killed -> promoted %.2f s -> first 200 publish %.2f s -> every node delivering %.2f s",
		promoted.Seconds(), float64(firstOK.Load()-k)/1e9, float64(all-k)/1e9)
}
