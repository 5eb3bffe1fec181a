package pubsubtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// failoverTimeout bounds one failover in these tests; here they take 2 to
// 3 s.
const failoverTimeout = 20 * time.Second

// mustDo runs one command on r and fails the test on an error.
func mustDo(t testing.TB, r *Redis, args ...string) any {
	t.Helper()
	v, err := r.Do(args...)
	if err != nil {
		t.Fatalf("%s: %v: %v", r.Addr, args, err)
	}
	return v
}

// waitGet polls GET key on r until it answers want. With readonly it sends
// READONLY first, so that a cluster replica answers instead of redirecting.
func waitGet(t testing.TB, r *Redis, readonly bool, key string, want any) {
	t.Helper()
	ok, state := pollUntil(10*time.Second, func() (bool, string) {
		c, err := dialRESP(r.Addr, 10*time.Second)
		if err != nil {
			return false, err.Error()
		}
		defer c.close()
		if readonly {
			if _, err := c.do("READONLY"); err != nil {
				return false, "READONLY: " + err.Error()
			}
		}
		v, err := c.do("GET", key)
		return err == nil && v == want, fmt.Sprintf("GET %s = %#v, %v", key, v, err)
	})
	if !ok {
		t.Fatalf("%s: %s; want %#v", r.Addr, state, want)
	}
}

// TestRedisWithArgs covers what the topology helpers build on: WithArgs,
// Do, Running and PID.
func TestRedisWithArgs(t *testing.T) {
	r := StartRedis(t, WithArgs("--maxmemory", "10mb"), WithArgs("--maxmemory-policy", "noeviction"))
	for name, want := range map[string]string{"maxmemory": "10485760", "maxmemory-policy": "noeviction", "appendonly": "no"} {
		if got := configGet(t, r.Addr, name); got != want {
			t.Errorf("CONFIG GET %s = %q, want %q", name, got, want)
		}
	}
	if v, err := r.Do("SET", "k", "v"); v != "OK" || err != nil {
		t.Fatalf("Do(SET) = %#v, %v", v, err)
	}
	var re respError
	if _, err := r.Do("NOSUCHCOMMAND"); !errors.As(err, &re) {
		t.Fatalf("Do(NOSUCHCOMMAND) error = %v, want an error reply", err)
	}
	if !r.Running() || r.PID() <= 0 {
		t.Fatalf("Running() = %v, PID() = %d after start", r.Running(), r.PID())
	}
	r.Kill()
	if r.Running() || r.PID() != 0 {
		t.Fatalf("Running() = %v, PID() = %d after Kill", r.Running(), r.PID())
	}
	if _, err := r.Do("PING"); err == nil {
		t.Fatal("Do(PING) answered after Kill")
	}
	r.Restart()
	if got := configGet(t, r.Addr, "maxmemory"); got != "10485760" {
		t.Fatalf("maxmemory after Restart = %q: WithArgs not reused", got)
	}
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := StartSentinel(t)
	t.Logf("StartSentinel took %v", time.Since(start))

	opt, err := redis.ParseFailoverURL(s.URL())
	if err != nil {
		t.Fatalf("ParseFailoverURL(%q): %v", s.URL(), err)
	}
	if want := addrs(s.Sentinels()); !slices.Equal(opt.SentinelAddrs, want) || opt.MasterName != "ssemaster" || s.MasterName() != "ssemaster" {
		t.Fatalf("ParseFailoverURL(%q) = addrs %v, master %q; want %v, ssemaster", s.URL(), opt.SentinelAddrs, opt.MasterName, want)
	}
	m := s.Master()
	if m != s.Servers()[0] {
		t.Fatalf("Master() = %s, want the first server %s", m.Addr, s.Servers()[0].Addr)
	}
	for i, r := range s.Servers() {
		want := "slave"
		if i == 0 {
			want = "master"
		}
		if role, err := roleOf(r); role != want || err != nil {
			t.Errorf("server %d ROLE = %q, %v; want %s", i, role, err, want)
		}
		if r.PID() == 0 || !r.Running() {
			t.Errorf("server %d: PID %d, running %v", i, r.PID(), r.Running())
		}
	}
	for _, sn := range s.Sentinels() {
		if role, err := roleOf(sn); role != "sentinel" || err != nil {
			t.Errorf("sentinel %s ROLE = %q, %v", sn.Addr, role, err)
		}
	}

	c := redis.NewFailoverClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through the failover client: %v", err)
	}
	for _, r := range s.Servers() {
		waitGet(t, r, false, "k", "v")
	}

	start = time.Now()
	nm := s.Failover()
	t.Logf("Failover took %v", time.Since(start))
	if nm == m {
		t.Fatalf("Failover kept master %s", m.Addr)
	}
	if got := s.Master(); got != nm {
		t.Fatalf("Master() = %s after Failover, want %s", got.Addr, nm.Addr)
	}
	if role, err := roleOf(m); role != "slave" || err != nil {
		t.Fatalf("old master ROLE = %q, %v; want slave", role, err)
	}
	if v := mustDo(t, m, "CONFIG", "GET", "min-replicas-to-write"); fmt.Sprint(v) != "[min-replicas-to-write 0]" {
		t.Errorf("old master's min-replicas-to-write = %v, want it restored to 0", v)
	}
	if v := mustDo(t, nm, "GET", "k"); v != "v" {
		t.Fatalf("GET k on the new master = %#v, want v", v)
	}
	// The client follows the switch (+switch-master); until it has,
	// writes to the old master fail (READONLY), none is lost.
	ok, state := pollUntil(10*time.Second, func() (bool, string) {
		err := c.Set(ctx, "k2", "v2", 0).Err()
		return err == nil, fmt.Sprint(err)
	})
	if !ok {
		t.Fatalf("SET through the failover client after Failover: %s", state)
	}
	for _, r := range s.Servers() {
		waitGet(t, r, false, "k2", "v2")
	}
}

func TestSentinelKillMaster(t *testing.T) {
	skipIfShort(t)
	t.Parallel()
	s := StartSentinel(t, WithMasterName("other"))
	if !strings.HasSuffix(s.URL(), "&master_name=other") {
		t.Errorf("URL() = %q, want master_name=other", s.URL())
	}
	m := s.Master()
	mustDo(t, m, "SET", "k", "v")
	for _, r := range s.Servers() {
		waitGet(t, r, false, "k", "v")
	}
	start := time.Now()
	old := s.KillMaster()
	if old != m || old.Running() || old.PID() != 0 {
		t.Fatalf("KillMaster() = %s (running %v), want %s killed", old.Addr, old.Running(), m.Addr)
	}
	nm := s.WaitMaster(t, old.Addr, failoverTimeout)
	t.Logf("failover after KillMaster took %v", time.Since(start))
	if v := mustDo(t, nm, "GET", "k"); v != "v" {
		t.Fatalf("GET k on the new master = %#v, want v", v)
	}
	if v := mustDo(t, nm, "SET", "k2", "v2"); v != "OK" {
		t.Fatalf("SET on the new master = %#v", v)
	}
}

func TestSentinelFailoverLosingWrites(t *testing.T) {
	skipIfShort(t)
	t.Parallel()
	s := StartSentinel(t)
	m := s.Master()
	mustDo(t, m, "SET", "kept", "v")
	for _, r := range s.Servers() {
		waitGet(t, r, false, "kept", "v")
	}
	start := time.Now()
	nm := s.FailoverLosingWrites(t, func(master *Redis) {
		if master != m {
			t.Errorf("write called with %s, want the master %s", master.Addr, m.Addr)
		}
		// Acknowledged by the master...
		if v := mustDo(t, master, "SET", "lost", "v"); v != "OK" {
			t.Fatalf("SET lost = %#v", v)
		}
	}, failoverTimeout)
	t.Logf("FailoverLosingWrites took %v", time.Since(start))
	if nm == m || m.Running() {
		t.Fatalf("new master %s, old %s (running %v)", nm.Addr, m.Addr, m.Running())
	}
	// ...but lost: neither survivor has it, while both have what was
	// replicated before.
	for _, r := range s.Servers() {
		if r == m {
			continue
		}
		if v := mustDo(t, r, "GET", "kept"); v != "v" {
			t.Errorf("%s: GET kept = %#v, want v", r.Addr, v)
		}
		if v := mustDo(t, r, "GET", "lost"); v != nil {
			t.Errorf("%s: GET lost = %#v, want nil: the write was not lost", r.Addr, v)
		}
	}
}

var nodeID = regexp.MustCompile(`^[0-9a-f]{40}$`)

func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t)
	t.Logf("StartCluster took %v", time.Since(start))

	opt, err := redis.ParseClusterURL(c.URL())
	if err != nil {
		t.Fatalf("ParseClusterURL(%q): %v", c.URL(), err)
	}
	if want := addrs(c.Nodes()); !slices.Equal(opt.Addrs, want) {
		t.Fatalf("ParseClusterURL(%q).Addrs = %v, want %v", c.URL(), opt.Addrs, want)
	}
	ids := map[string]bool{}
	for _, r := range c.Nodes() {
		id := c.NodeID(r)
		if !nodeID.MatchString(id) || ids[id] || mustDo(t, r, "CLUSTER", "MYID") != id {
			t.Errorf("NodeID(%s) = %q: not a fresh 40-hex id or not its CLUSTER MYID", r.Addr, id)
		}
		ids[id] = true
	}
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("Masters() = %v, want 3", addrs(masters))
	}
	for _, key := range []string{"", "foo", "{user1000}.following", "{user1000}.followers", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{}", "k\x00\xff"} {
		if want := mustDo(t, c.Nodes()[0], "CLUSTER", "KEYSLOT", key); int64(c.Slot(key)) != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %v", key, c.Slot(key), want)
		}
	}

	cc := redis.NewClusterClient(opt)
	t.Cleanup(func() { _ = cc.Close() })
	ctx := context.Background()
	ranges, err := clusterSlotRanges(c.Nodes()[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 3 {
		t.Fatalf("CLUSTER SLOTS = %s, want 3 ranges", formatRanges(ranges))
	}
	for _, rg := range ranges {
		m := c.MasterOfSlot(rg.start)
		if m != c.MasterOfSlot(rg.end) || !slices.Contains(masters, m) || len(rg.replicas) != 1 {
			t.Fatalf("range %d-%d: MasterOfSlot %s / %s, replicas %v", rg.start, rg.end, m.Addr, c.MasterOfSlot(rg.end).Addr, rg.replicas)
		}
		// A key of the range, written through its master and read
		// through go-redis and on the replica.
		key := keyInSlots(c, rg.start, rg.end)
		if v := mustDo(t, m, "SET", key, "v"); v != "OK" {
			t.Fatalf("SET %s on %s = %#v", key, m.Addr, v)
		}
		if v, err := cc.Get(ctx, key).Result(); v != "v" || err != nil {
			t.Fatalf("GET %s through the cluster client = %q, %v", key, v, err)
		}
		waitGet(t, c.node(rg.replicas[0]), true, key, "v")
		// Any other master redirects.
		other := masters[(slices.Index(masters, m)+1)%len(masters)]
		if _, err := other.Do("GET", key); err == nil || !strings.HasPrefix(err.Error(), "redis: MOVED ") {
			t.Fatalf("GET %s on %s: %v, want MOVED", key, other.Addr, err)
		}
	}
}

// askingCalls returns how many ASKING commands r has run: one per request
// redirected with ASK during a migration.
func askingCalls(t testing.TB, r *Redis) int {
	t.Helper()
	inf, err := r.info("commandstats")
	if err != nil {
		t.Fatal(err)
	}
	// cmdstat_asking:calls=12,usec=...
	calls, _, _ := strings.Cut(strings.TrimPrefix(inf["cmdstat_asking"], "calls="), ",")
	n, _ := strconv.Atoi(calls)
	return n
}

// skipIfShort skips a test that waits for a failure to be detected (down-
// after, node timeout), which takes seconds by design.
func skipIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: waits for a failover")
	}
}

// keyInSlots returns a key whose slot is in [lo, hi].
func keyInSlots(c *Cluster, lo, hi int) string {
	for i := 0; ; i++ {
		if k := "key:" + strconv.Itoa(i); lo <= c.Slot(k) && c.Slot(k) <= hi {
			return k
		}
	}
}

func TestClusterKillMaster(t *testing.T) {
	skipIfShort(t)
	t.Parallel()
	c := StartCluster(t)
	const key = "k"
	slot := c.Slot(key)
	m := c.MasterOfSlot(slot)
	ranges, err := clusterSlotRanges(m)
	if err != nil {
		t.Fatal(err)
	}
	var replica *Redis
	for _, rg := range ranges {
		if rg.master == m.Addr {
			replica = c.node(rg.replicas[0])
		}
	}
	mustDo(t, m, "SET", key, "v")
	waitGet(t, replica, true, key, "v")

	start := time.Now()
	if old := c.KillMaster(slot); old != m || old.Running() {
		t.Fatalf("KillMaster(%d) = %s (running %v), want %s killed", slot, old.Addr, old.Running(), m.Addr)
	}
	nm := c.WaitSlotServed(t, slot, m.Addr, failoverTimeout)
	t.Logf("failover after KillMaster took %v", time.Since(start))
	if nm != replica {
		t.Fatalf("slot %d now on %s, want its replica %s", slot, nm.Addr, replica.Addr)
	}
	if v := mustDo(t, nm, "GET", key); v != "v" {
		t.Fatalf("GET %s on the promoted replica = %#v, want v", key, v)
	}
	if got := c.Masters(); len(got) != 3 || slices.Contains(got, m) || !slices.Contains(got, nm) {
		t.Fatalf("Masters() = %v after the failover, want 3 with %s and without %s", addrs(got), nm.Addr, m.Addr)
	}
}

func TestClusterReshard(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)
	opt, err := redis.ParseClusterURL(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	cc := redis.NewClusterClient(opt)
	t.Cleanup(func() { _ = cc.Close() })
	ctx := context.Background()

	const moved = 100 // redis-cli moves the lowest slots: 0..99
	from, to := c.MasterOfSlot(0), c.MasterOfSlot(clusterSlots-1)
	// One hash tag per moved slot; keys "{tag}:n" land in it.
	tags := make([]string, moved)
	for i, found := 0, 0; found < moved; i++ {
		tag := "t" + strconv.Itoa(i)
		if s := c.Slot(tag); s < moved && tags[s] == "" {
			tags[s] = tag
			found++
		}
	}
	// acked holds the last value each key was acknowledged with.
	acked := map[string]string{}
	for s, tag := range tags {
		for n := range 10 {
			key := fmt.Sprintf("{%s}:old%d", tag, n)
			if err := cc.Set(ctx, key, "0", 0).Err(); err != nil {
				t.Fatalf("SET %s (slot %d): %v", key, s, err)
			}
			acked[key] = "0"
		}
	}
	old := slices.Sorted(maps.Keys(acked))

	// The writer adds new keys and overwrites migrating ones until the
	// reshard is over. It uses context.Background: cancelling a SET
	// would leave unknown whether it was applied.
	stop := make(chan struct{})
	var (
		wg        sync.WaitGroup
		writerErr error
		writes    int
		written   = map[string]string{}
	)
	wg.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("{%s}:new%d", tags[i%moved], i)
			if i%2 == 0 {
				key = old[i%len(old)]
			}
			val := strconv.Itoa(i)
			if err := cc.Set(ctx, key, val, 0).Err(); err != nil {
				writerErr = fmt.Errorf("SET %s (slot %d): %w", key, c.Slot(key), err)
				return
			}
			written[key] = val
			writes++
		}
	})
	asked := askingCalls(t, to)
	start := time.Now()
	wait := c.ReshardAsync(t, from, to, moved)
	func() {
		defer func() { close(stop); wg.Wait() }()
		wait()
	}()
	// Logged, not asserted: how many writes met a migrating slot
	// depends on timing.
	t.Logf("reshard of %d slots took %v, with %d writes meanwhile, %d redirected with ASK", moved, time.Since(start), writes, askingCalls(t, to)-asked)
	if writerErr != nil {
		t.Fatalf("writer: %v", writerErr)
	}
	if writes == 0 {
		t.Fatal("the writer wrote nothing during the reshard")
	}
	for k, v := range written {
		acked[k] = v
	}

	for s := range moved {
		if m := c.MasterOfSlot(s); m != to {
			t.Fatalf("slot %d on %s after Reshard, want %s", s, m.Addr, to.Addr)
		}
	}
	if m := c.MasterOfSlot(moved); m != from {
		t.Fatalf("slot %d on %s after Reshard, want it left on %s", moved, m.Addr, from.Addr)
	}
	lost := 0
	for k, want := range acked {
		got, err := cc.Get(ctx, k).Result()
		if got != want || err != nil {
			lost++
			if lost <= 10 {
				t.Errorf("GET %s (slot %d) = %q, %v; want %q", k, c.Slot(k), got, err, want)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged keys lost or stale after the reshard", lost, len(acked))
	}
	// Keys moved, not copied: the source has none left in those slots.
	for s := range moved {
		if n := mustDo(t, from, "CLUSTER", "COUNTKEYSINSLOT", strconv.Itoa(s)); n != int64(0) {
			t.Fatalf("slot %d: %v keys left on the source", s, n)
		}
	}
}
