package loadtest

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestShares(t *testing.T) {
	addrs, _ := LoopbackAddrs(4)
	sh := shares(Config{Subs: 7, First: 3, Ramp: 100, SourceAddrs: addrs, Workers: 2}, 2)
	if sh[0].Subs != 4 || sh[1].Subs != 3 || sh[0].First != 3 || sh[1].First != 7 {
		t.Errorf("subs/first %d/%d %d/%d, want 4/3 3/7", sh[0].Subs, sh[0].First, sh[1].Subs, sh[1].First)
	}
	if sh[0].Ramp != 50 || sh[0].Workers != 0 {
		t.Errorf("ramp %g workers %d, want 50 and 0", sh[0].Ramp, sh[0].Workers)
	}
	want := [][]netip.Addr{addrs[:2], addrs[2:]}
	for k := range sh {
		if len(sh[k].SourceAddrs) != 2 || sh[k].SourceAddrs[0] != want[k][0] || sh[k].SourceAddrs[1] != want[k][1] {
			t.Errorf("worker %d source addresses %v, want %v", k, sh[k].SourceAddrs, want[k])
		}
	}
}

// TestRunWorkers runs two worker processes (this test binary, see
// TestMain) against a real node and checks the merged report.
func TestRunWorkers(t *testing.T) {
	url := startNode(t)
	cfg := Config{URL: url, Subs: 30, Topics: 3, Rate: 500, Count: 90, Drain: 2 * time.Second, Workers: 2}
	r, err := RunWorkers(context.Background(), cfg, func(int) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"=1")
		cmd.Stderr = os.Stderr
		return cmd
	})
	if err != nil {
		t.Fatalf("RunWorkers: %v", err)
	}
	const want = 30 * 30 // 30 events per topic, 10 streams per topic
	d := r.Delivery
	if d.Expected != want || d.Unique != want || d.Loss != 0 || d.Duplicates != 0 || d.Gaps != 0 || d.Reordered != 0 {
		t.Errorf("delivery %+v, want %d expected and delivered once each", d, want)
	}
	if r.Connect.Established != 30 || r.Streams.AliveAtEnd != 30 || r.Latency.Count() != want || r.Workers != 2 {
		t.Errorf("established %d alive %d latencies %d workers %d", r.Connect.Established, r.Streams.AliveAtEnd, r.Latency.Count(), r.Workers)
	}
	if r.Connect.TimeToHeaders.Count() != 30 {
		t.Errorf("time-to-headers samples %d, want 30 (merged from both workers)", r.Connect.TimeToHeaders.Count())
	}
}
