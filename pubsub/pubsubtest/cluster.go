package pubsubtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cluster is a Redis Cluster owned by one test: six redis-server processes,
// created as three masters with one replica each. Its methods must be called
// from the test's goroutine.
type Cluster struct {
	tb    testing.TB
	cli   string // redis-cli
	nodes []*Redis
	ids   map[*Redis]string // node ids, which survive Restart (nodes.conf)
}

// ClusterOption changes how StartCluster runs the cluster.
type ClusterOption func(*clusterConfig)

type clusterConfig struct {
	nodes []RedisOption
}

// WithClusterNodes adds options to the six nodes, such as WithPersistence()
// or WithArgs("--cluster-node-timeout", "2000"); by default they keep
// nothing on disk but their cluster configuration.
func WithClusterNodes(opts ...RedisOption) ClusterOption {
	return func(c *clusterConfig) { c.nodes = append(c.nodes, opts...) }
}

const (
	// clusterNodeTimeout (cluster-node-timeout) is how long a node may
	// be unreachable before it is flagged as failing; a replica is
	// promoted about 1 to 2 s after that.
	clusterNodeTimeout = time.Second
	// clusterCLITimeout bounds one redis-cli run (create, reshard, check).
	clusterCLITimeout = 2 * time.Minute
	// clusterSlots is the number of hash slots.
	clusterSlots = 16384
)

// StartCluster starts six redis-server processes with cluster mode on, each
// on a free 127.0.0.1 port with a free cluster bus port (--cluster-port) and
// its own directory holding its nodes.conf, cluster-node-timeout 1000 and no
// persistence; joins them with redis-cli --cluster create
// --cluster-replicas 1 (three masters owning 0-5460, 5461-10922,
// 10923-16383, one replica each); and waits until every node reports
// cluster_state:ok, all agree on CLUSTER SLOTS and every replica's link is
// up. Every process is killed (SIGKILL to its process group) and waited for
// when the test ends, and its output logged if the test failed.
func StartCluster(t testing.TB, opts ...ClusterOption) *Cluster {
	t.Helper()
	var cfg clusterConfig
	for _, o := range opts {
		o(&cfg)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("pubsubtest: redis-cli not found (%v); run the README test command ./.ci/test.sh, which installs it", err)
	}
	c := &Cluster{tb: t, cli: cli, ids: make(map[*Redis]string)}
	base := slices.Concat([]RedisOption{withClusterBus(), WithArgs(
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf", // in the node's --dir
		"--cluster-node-timeout", strconv.FormatInt(clusterNodeTimeout.Milliseconds(), 10),
		// Diskless full syncs wait 5 s for more replicas by default.
		"--repl-diskless-sync-delay", "0",
		// CLUSTER SLOTS leaves out a replica whose replication offset is
		// 0, and an idle master moves its offset only with the PING it
		// sends its replicas: every 10 s by default, so replicas would
		// show up (and the nodes agree) only 10 s after the sync.
		"--repl-ping-replica-period", "1",
	)}, cfg.nodes)
	for range 6 {
		r := StartRedis(t, base...)
		v, err := r.Do("CLUSTER", "MYID")
		id, _ := v.(string)
		if err != nil || id == "" {
			t.Fatalf("pubsubtest: %s: CLUSTER MYID = %#v, %v", r.Addr, v, err)
		}
		c.nodes = append(c.nodes, r)
		c.ids[r] = id
	}
	args := slices.Concat([]string{"--cluster", "create"}, addrs(c.nodes), []string{"--cluster-replicas", "1", "--cluster-yes"})
	if out, err := c.runCLI(args...); err != nil {
		t.Fatalf("pubsubtest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	c.waitStable(t, topologyReadyTimeout)
	return c
}

// URL returns the go-redis cluster URL of the cluster (for
// redis.ParseClusterURL), listing every node as a seed:
// redis://<node1>?addr=<node2>&...&addr=<node6>.
func (c *Cluster) URL() string {
	return "redis://" + c.nodes[0].Addr + "?addr=" + strings.Join(addrs(c.nodes[1:]), "&addr=")
}

// Nodes returns the six nodes in start order (redis-cli made the first
// three masters, but failovers move that role: see Masters).
func (c *Cluster) Nodes() []*Redis { return slices.Clone(c.nodes) }

// NodeID returns r's cluster node id.
func (c *Cluster) NodeID(r *Redis) string { return c.ids[r] }

// Slot returns the hash slot of key, as CLUSTER KEYSLOT does (CRC16 of the
// key, or of its hash tag: the part between the first '{' and the next '}',
// if not empty).
func (c *Cluster) Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key)) % clusterSlots
}

// Masters returns the running nodes that a running node's CLUSTER NODES
// flags as master and not failing, in start order; a master may own no
// slot (after a reshard moved them all).
func (c *Cluster) Masters() []*Redis {
	c.tb.Helper()
	r := c.live()
	nodes, err := clusterNodes(r)
	if err != nil {
		c.tb.Fatalf("pubsubtest: %s: CLUSTER NODES: %v", r.Addr, err)
	}
	masters := map[string]bool{}
	for _, n := range nodes {
		if n.has("master") && !n.failing() {
			masters[n.addr] = true
		}
	}
	var out []*Redis
	for _, r := range c.nodes {
		if masters[r.Addr] && r.Running() {
			out = append(out, r)
		}
	}
	return out
}

// MasterOfSlot returns the master serving slot according to a running
// node's CLUSTER SLOTS. Right after KillMaster that is still the dead one:
// use WaitSlotServed.
func (c *Cluster) MasterOfSlot(slot int) *Redis {
	c.tb.Helper()
	r := c.live()
	ranges, err := clusterSlotRanges(r)
	if err != nil {
		c.tb.Fatalf("pubsubtest: %s: CLUSTER SLOTS: %v", r.Addr, err)
	}
	addr := masterOf(ranges, slot)
	m := c.node(addr)
	if m == nil {
		c.tb.Fatalf("pubsubtest: %s: slot %d is served by %q, none of %v", r.Addr, slot, addr, addrs(c.nodes))
	}
	return m
}

// KillMaster kills (SIGKILL) the master serving slot and returns it; its
// replica takes over after about 2 to 3 s (WaitSlotServed).
func (c *Cluster) KillMaster(slot int) *Redis {
	c.tb.Helper()
	m := c.MasterOfSlot(slot)
	m.Kill()
	return m
}

// WaitSlotServed polls until every running node reports cluster_state:ok
// and agrees that slot is served by the same master, other than notAddr,
// which answers ROLE with master; it returns that master. It fails tb with
// the last state seen after timeout. Pass notAddr "" to accept any master.
func (c *Cluster) WaitSlotServed(tb testing.TB, slot int, notAddr string, timeout time.Duration) *Redis {
	tb.Helper()
	var found *Redis
	ok, state := pollUntil(timeout, func() (bool, string) {
		var b strings.Builder
		addr, agree := "", true
		for _, r := range c.nodes {
			if !r.Running() {
				continue
			}
			st, err := clusterState(r)
			if err != nil || st != "ok" {
				fmt.Fprintf(&b, "%s: cluster_state %q %v", r.Addr, st, err)
				return false, b.String()
			}
			ranges, err := clusterSlotRanges(r)
			if err != nil {
				fmt.Fprintf(&b, "%s: CLUSTER SLOTS %v", r.Addr, err)
				return false, b.String()
			}
			a := masterOf(ranges, slot)
			fmt.Fprintf(&b, "%s: slot %d on %s; ", r.Addr, slot, a)
			agree = agree && (addr == "" || a == addr)
			addr = a
		}
		m := c.node(addr)
		if !agree || addr == notAddr || m == nil {
			return false, b.String()
		}
		role, err := roleOf(m)
		fmt.Fprintf(&b, "%s ROLE: %s %v", addr, role, err)
		if role != "master" {
			return false, b.String()
		}
		found = m
		return true, b.String()
	})
	if !ok {
		tb.Fatalf("pubsubtest: cluster: slot %d not served by a master other than %q within %v: %s", slot, notAddr, timeout, state)
	}
	return found
}

// Reshard moves slots hash slots (the lowest numbered ones that from owns)
// from master from to master to, with their keys, by running redis-cli
// --cluster reshard, then waits until redis-cli --cluster check passes and
// every node agrees on the new layout. It fails tb with redis-cli's output
// on an error. Clients may keep writing meanwhile: keys move with MIGRATE and
// clients are redirected with ASK and MOVED.
func (c *Cluster) Reshard(tb testing.TB, from, to *Redis, slots int) {
	tb.Helper()
	c.ReshardAsync(tb, from, to, slots)()
}

// ReshardAsync is Reshard that returns once redis-cli has started (after
// waiting for the cluster to be stable, which redis-cli requires), so
// that the test can write during the migration; the returned wait, which
// must be called from the test's goroutine, waits for redis-cli and what
// Reshard waits for, and fails tb on an error. If wait is never called,
// redis-cli is killed when the test ends.
func (c *Cluster) ReshardAsync(tb testing.TB, from, to *Redis, slots int) (wait func()) {
	tb.Helper()
	c.waitStable(tb, topologyReadyTimeout)
	args := []string{
		"--cluster", "reshard", from.Addr,
		"--cluster-from", c.NodeID(from),
		"--cluster-to", c.NodeID(to),
		"--cluster-slots", strconv.Itoa(slots),
		"--cluster-yes",
	}
	run, err := c.startCLI(args...)
	if err != nil {
		tb.Fatalf("pubsubtest: redis-cli %s: %v", strings.Join(args, " "), err)
	}
	tb.Cleanup(func() {
		if !run.waited {
			run.cancel() // kills redis-cli's process group
		}
		if run.wait() != nil && tb.Failed() {
			tb.Logf("redis-cli %s output:\n%s", strings.Join(args, " "), run.out.String())
		}
	})
	return func() {
		tb.Helper()
		if err := run.wait(); err != nil {
			tb.Fatalf("pubsubtest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, run.out.String())
		}
		c.waitCheck(tb, topologyReadyTimeout)
		c.waitStable(tb, topologyReadyTimeout)
	}
}

// live returns the first running node.
func (c *Cluster) live() *Redis {
	c.tb.Helper()
	for _, r := range c.nodes {
		if r.Running() {
			return r
		}
	}
	c.tb.Fatal("pubsubtest: no cluster node is running")
	return nil
}

// node returns the node listening on addr, or nil.
func (c *Cluster) node(addr string) *Redis {
	for _, r := range c.nodes {
		if r.Addr == addr {
			return r
		}
	}
	return nil
}

// waitStable waits until every running node reports cluster_state:ok,
// returns the same CLUSTER SLOTS covering all slots, flags no running node
// as failing, and every running replica is in sync with its master and
// listed in CLUSTER SLOTS.
func (c *Cluster) waitStable(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	ok, state := pollUntil(timeout, func() (bool, string) {
		var ref, refAddr string
		var refRanges []slotRange
		running := map[string]bool{}
		for _, r := range c.nodes {
			running[r.Addr] = r.Running()
		}
		for _, r := range c.nodes {
			if !r.Running() {
				continue
			}
			st, err := clusterState(r)
			if err != nil || st != "ok" {
				return false, fmt.Sprintf("%s: cluster_state %q %v", r.Addr, st, err)
			}
			ranges, err := clusterSlotRanges(r)
			if err != nil {
				return false, fmt.Sprintf("%s: CLUSTER SLOTS %v", r.Addr, err)
			}
			view := formatRanges(ranges)
			if refAddr == "" {
				ref, refAddr, refRanges = view, r.Addr, ranges
			} else if view != ref {
				return false, fmt.Sprintf("CLUSTER SLOTS disagree: %s says %s; %s says %s", refAddr, ref, r.Addr, view)
			}
			nodes, err := clusterNodes(r)
			if err != nil {
				return false, fmt.Sprintf("%s: CLUSTER NODES %v", r.Addr, err)
			}
			for _, n := range nodes {
				if running[n.addr] && n.failing() {
					return false, fmt.Sprintf("%s flags running node %s %s", r.Addr, n.addr, strings.Join(n.flags, ","))
				}
			}
			inf, err := r.info("replication")
			if err != nil {
				return false, fmt.Sprintf("%s: INFO replication %v", r.Addr, err)
			}
			if inf["role"] == "slave" {
				master := net.JoinHostPort(inf["master_host"], inf["master_port"])
				if inf["master_link_status"] != "up" {
					return false, fmt.Sprintf("replica %s: link to %s %s", r.Addr, master, inf["master_link_status"])
				}
				if !listedReplica(refRanges, master, r.Addr) && ownsSlots(refRanges, master) {
					return false, fmt.Sprintf("replica %s of %s not in CLUSTER SLOTS %s", r.Addr, master, ref)
				}
			}
		}
		covered := 0
		for _, rg := range refRanges {
			covered += rg.end - rg.start + 1
		}
		if covered != clusterSlots {
			return false, fmt.Sprintf("%d of %d slots covered: %s", covered, clusterSlots, ref)
		}
		return true, ref
	})
	if !ok {
		tb.Fatalf("pubsubtest: cluster not stable within %v: %s", timeout, state)
	}
}

// waitCheck waits until redis-cli --cluster check, on a running node,
// succeeds (it fails while nodes still disagree or a slot is open).
func (c *Cluster) waitCheck(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	ok, state := pollUntil(timeout, func() (bool, string) {
		out, err := c.runCLI("--cluster", "check", c.live().Addr)
		if err != nil {
			return false, fmt.Sprintf("%v\n%s", err, out)
		}
		return true, out
	})
	if !ok {
		tb.Fatalf("pubsubtest: redis-cli --cluster check did not pass within %v: %s", timeout, state)
	}
}

// runCLI runs redis-cli to the end and returns its output.
func (c *Cluster) runCLI(args ...string) (string, error) {
	run, err := c.startCLI(args...)
	if err != nil {
		return "", err
	}
	err = run.wait()
	return run.out.String(), err
}

// cliRun is one redis-cli process.
type cliRun struct {
	cmd    *exec.Cmd
	ctx    context.Context
	cancel context.CancelFunc
	out    *cappedBuffer
	waited bool
	err    error
}

// startCLI starts redis-cli in its own process group, killed (the whole
// group) after clusterCLITimeout.
func (c *Cluster) startCLI(args ...string) (*cliRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterCLITimeout)
	cmd := exec.CommandContext(ctx, c.cli, args...)
	cmd.Env = append(os.Environ(), "TERM=dumb") // no colour codes in the output
	out := &cappedBuffer{max: redisOutputCap}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = redisExitTimeout
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	return &cliRun{cmd: cmd, ctx: ctx, cancel: cancel, out: out}, nil
}

// wait waits for the process (once; later calls return the same error). A
// redis-cli that must not run on is killed first.
func (r *cliRun) wait() error {
	if r.waited {
		return r.err
	}
	r.err = r.cmd.Wait()
	if errors.Is(r.ctx.Err(), context.DeadlineExceeded) {
		r.err = fmt.Errorf("killed after %v: %w", clusterCLITimeout, r.err)
	}
	r.cancel()
	r.waited = true
	return r.err
}

// slotRange is one entry of CLUSTER SLOTS.
type slotRange struct {
	start, end int
	master     string
	replicas   []string // sorted
}

// clusterSlotRanges returns r's CLUSTER SLOTS, sorted by start.
func clusterSlotRanges(r *Redis) ([]slotRange, error) {
	v, err := r.Do("CLUSTER", "SLOTS")
	if err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("CLUSTER SLOTS answered %#v", v)
	}
	ranges := make([]slotRange, 0, len(list))
	for _, e := range list {
		a, ok := e.([]any)
		if !ok || len(a) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS entry %#v", e)
		}
		start, ok1 := a[0].(int64)
		end, ok2 := a[1].(int64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("CLUSTER SLOTS entry %#v", e)
		}
		rg := slotRange{start: int(start), end: int(end)}
		for i, n := range a[2:] {
			hp, ok := n.([]any)
			if !ok || len(hp) < 2 {
				return nil, fmt.Errorf("CLUSTER SLOTS node %#v", n)
			}
			addr := net.JoinHostPort(fmt.Sprint(hp[0]), fmt.Sprint(hp[1]))
			if i == 0 {
				rg.master = addr
			} else {
				rg.replicas = append(rg.replicas, addr)
			}
		}
		slices.Sort(rg.replicas)
		ranges = append(ranges, rg)
	}
	slices.SortFunc(ranges, func(a, b slotRange) int { return a.start - b.start })
	return ranges, nil
}

// formatRanges renders ranges as "0-5460 master [replicas]; ...", to compare
// two nodes' views and to show one.
func formatRanges(ranges []slotRange) string {
	var b strings.Builder
	for _, rg := range ranges {
		fmt.Fprintf(&b, "%d-%d %s %v; ", rg.start, rg.end, rg.master, rg.replicas)
	}
	return b.String()
}

// masterOf returns the master serving slot in ranges, or "".
func masterOf(ranges []slotRange, slot int) string {
	for _, rg := range ranges {
		if rg.start <= slot && slot <= rg.end {
			return rg.master
		}
	}
	return ""
}

func ownsSlots(ranges []slotRange, master string) bool {
	return slices.ContainsFunc(ranges, func(rg slotRange) bool { return rg.master == master })
}

func listedReplica(ranges []slotRange, master, replica string) bool {
	return slices.ContainsFunc(ranges, func(rg slotRange) bool {
		return rg.master == master && slices.Contains(rg.replicas, replica)
	})
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id    string
	addr  string // ip:port, without the bus port
	flags []string
}

func (n clusterNode) has(flag string) bool { return slices.Contains(n.flags, flag) }

// failing reports a node flagged fail, or fail? (suspected by this node).
func (n clusterNode) failing() bool { return n.has("fail") || n.has("fail?") }

func clusterNodes(r *Redis) ([]clusterNode, error) {
	v, err := r.Do("CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("CLUSTER NODES answered %#v", v)
	}
	var nodes []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		nodes = append(nodes, clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ",")})
	}
	return nodes, nil
}

// clusterState returns r's cluster_state (ok or fail).
func clusterState(r *Redis) (string, error) {
	v, err := r.Do("CLUSTER", "INFO")
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("CLUSTER INFO answered %#v", v)
	}
	for _, line := range strings.Split(s, "\r\n") {
		if st, ok := strings.CutPrefix(line, "cluster_state:"); ok {
			return st, nil
		}
	}
	return "", errors.New("CLUSTER INFO without cluster_state")
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), Redis Cluster's
// key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
