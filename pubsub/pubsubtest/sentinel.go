package pubsubtest

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sentinel is a Redis Sentinel deployment owned by one test: three
// redis-server processes, started as one master and two replicas, watched by
// three redis-sentinel processes (quorum 2). Its methods must be called from
// the test's goroutine.
type Sentinel struct {
	tb        testing.TB
	name      string
	servers   []*Redis // servers[0] started as the master
	sentinels []*Redis
	paused    []*Redis // by PauseReplicas, until ResumeReplicas
}

// SentinelOption changes how StartSentinel runs the deployment.
type SentinelOption func(*sentinelConfig)

type sentinelConfig struct {
	name    string
	servers []RedisOption
}

// WithMasterName sets the name the sentinels monitor the master under
// (default "ssemaster").
func WithMasterName(name string) SentinelOption {
	return func(c *sentinelConfig) { c.name = name }
}

// WithSentinelServers adds options to the three data servers, such as
// WithPersistence(); by default they keep nothing on disk.
func WithSentinelServers(opts ...RedisOption) SentinelOption {
	return func(c *sentinelConfig) { c.servers = append(c.servers, opts...) }
}

const (
	// sentinelDownAfter (down-after-milliseconds) is how long an instance
	// may leave a PING unanswered before a sentinel deems it down.
	sentinelDownAfter = time.Second
	// sentinelFailoverTimeout (failover-timeout) also spaces two failover
	// attempts of the same master: 2 × 5 s.
	sentinelFailoverTimeout = 5 * time.Second
	// topologyReadyTimeout bounds how long StartSentinel and StartCluster
	// wait for the deployment to settle, and Failover and Reshard for it
	// to settle again.
	topologyReadyTimeout = 30 * time.Second
)

// StartSentinel starts three redis-server processes on free 127.0.0.1
// ports, one master and two replicas (--replicaof), and waits until both
// replicas are in sync; then three redis-sentinel processes on free ports,
// each with its own directory and generated configuration
// (down-after-milliseconds 1000, failover-timeout 5000, parallel-syncs 1,
// quorum 2), and waits until every sentinel knows the master, both replicas
// and the two other sentinels. Every process is killed (SIGKILL to its
// process group) and waited for when the test ends, and its output logged
// if the test failed.
func StartSentinel(t testing.TB, opts ...SentinelOption) *Sentinel {
	t.Helper()
	cfg := sentinelConfig{name: "ssemaster"}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Sentinel{tb: t, name: cfg.name}
	// Diskless full syncs wait 5 s for more replicas by default.
	base := slices.Concat([]RedisOption{WithArgs("--repl-diskless-sync-delay", "0")}, cfg.servers)
	master := StartRedis(t, base...)
	s.servers = []*Redis{master}
	host, port, _ := net.SplitHostPort(master.Addr)
	for range 2 {
		s.servers = append(s.servers, StartRedis(t, slices.Concat(base, []RedisOption{WithArgs("--replicaof", host, port)})...))
	}
	s.waitReplicas(t, master, topologyReadyTimeout)

	conf := fmt.Sprintf(`sentinel resolve-hostnames no
sentinel monitor %[1]s %[2]s %[3]s 2
sentinel down-after-milliseconds %[1]s %[4]d
sentinel failover-timeout %[1]s %[5]d
sentinel parallel-syncs %[1]s 1
`, cfg.name, host, port, sentinelDownAfter.Milliseconds(), sentinelFailoverTimeout.Milliseconds())
	for range 3 {
		s.sentinels = append(s.sentinels, StartRedis(t, withSentinelConfig(conf)))
	}
	s.waitSentinels(t, topologyReadyTimeout)
	return s
}

// URL returns the go-redis failover URL of the deployment (for
// redis.ParseFailoverURL): redis://<sentinel1>?addr=<sentinel2>&addr=<sentinel3>&master_name=<name>.
func (s *Sentinel) URL() string {
	var b strings.Builder
	b.WriteString("redis://" + s.sentinels[0].Addr + "?")
	for _, sn := range s.sentinels[1:] {
		b.WriteString("addr=" + sn.Addr + "&")
	}
	b.WriteString("master_name=" + url.QueryEscape(s.name))
	return b.String()
}

// MasterName returns the name the sentinels monitor the master under.
func (s *Sentinel) MasterName() string { return s.name }

// Servers returns the three data servers, in start order (the first started
// as the master; which one is master now is Master's question).
func (s *Sentinel) Servers() []*Redis { return slices.Clone(s.servers) }

// Sentinels returns the three redis-sentinel processes; Do sends them
// SENTINEL commands.
func (s *Sentinel) Sentinels() []*Redis { return slices.Clone(s.sentinels) }

// Master returns the server that the first running sentinel to answer
// reports as the master. During a failover the sentinels may disagree, and
// right after KillMaster they still name the dead server: use WaitMaster to
// wait for the new one.
func (s *Sentinel) Master() *Redis {
	s.tb.Helper()
	var errs []string
	for _, sn := range s.sentinels {
		if !sn.Running() {
			continue
		}
		addr, err := s.masterAddr(sn)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if r := s.server(addr); r != nil {
			return r
		}
		s.tb.Fatalf("pubsubtest: sentinel %s reports master %s, which is none of %v", sn.Addr, addr, addrs(s.servers))
	}
	s.tb.Fatalf("pubsubtest: no sentinel names the master: %s", strings.Join(errs, "; "))
	return nil
}

// WaitMaster polls until every running sentinel reports the same master,
// other than notAddr, and that server answers ROLE with master; it returns
// that server. It fails tb with the last state seen after timeout. A
// failover after KillMaster takes about 2 s here (1 s to be deemed down, a
// leader election, a promotion); pass notAddr "" to accept any master.
func (s *Sentinel) WaitMaster(tb testing.TB, notAddr string, timeout time.Duration) *Redis {
	tb.Helper()
	var found *Redis
	ok, state := pollUntil(timeout, func() (bool, string) {
		var b strings.Builder
		addr, agree := "", true
		for _, sn := range s.sentinels {
			if !sn.Running() {
				continue
			}
			a, err := s.masterAddr(sn)
			if err != nil {
				fmt.Fprintf(&b, "sentinel %s: %v; ", sn.Addr, err)
				return false, b.String()
			}
			fmt.Fprintf(&b, "sentinel %s: master %s; ", sn.Addr, a)
			agree = agree && (addr == "" || a == addr)
			addr = a
		}
		r := s.server(addr)
		if !agree || addr == notAddr || r == nil {
			return false, b.String()
		}
		role, err := roleOf(r)
		fmt.Fprintf(&b, "%s ROLE: %s %v", addr, role, err)
		if role != "master" {
			return false, b.String()
		}
		found = r
		return true, b.String()
	})
	if !ok {
		tb.Fatalf("pubsubtest: sentinel: no agreed master other than %q within %v: %s", notAddr, timeout, state)
	}
	return found
}

// KillMaster kills the current master (SIGKILL) and returns it; the
// sentinels then fail over to a replica (WaitMaster). On Restart the killed
// server comes back as a master (empty without persistence), and the
// sentinels turn it into a replica of the new master only about 10 s later
// (they wait 4 hello periods before such a +convert-to-slave); send it
// REPLICAOF with Do to be quicker.
func (s *Sentinel) KillMaster() (old *Redis) {
	s.tb.Helper()
	old = s.Master()
	old.Kill()
	return old
}

// PauseReplicas freezes (SIGSTOP) the running servers other than the
// current master and cuts their replication links on the master (CLIENT
// KILL TYPE replica), so that no write made from now on reaches them until
// ResumeReplicas: they reconnect then and catch up from the master's
// backlog, unless the master is gone. SIGSTOP alone is not enough: the
// kernel keeps receiving the replication stream into a stopped process's
// socket buffer, and the replica applies it when it continues.
func (s *Sentinel) PauseReplicas() {
	s.tb.Helper()
	if len(s.paused) > 0 {
		s.tb.Fatal("pubsubtest: PauseReplicas twice; call ResumeReplicas first")
	}
	m := s.Master()
	for _, r := range s.servers {
		if r != m && r.Running() {
			r.Pause()
			s.paused = append(s.paused, r)
		}
	}
	if _, err := m.Do("CLIENT", "KILL", "TYPE", "replica"); err != nil {
		s.tb.Fatalf("pubsubtest: master %s: CLIENT KILL TYPE replica: %v", m.Addr, err)
	}
}

// ResumeReplicas continues (SIGCONT) the servers PauseReplicas froze.
func (s *Sentinel) ResumeReplicas() {
	s.tb.Helper()
	for _, r := range s.paused {
		r.Resume()
	}
	s.paused = nil
}

// FailoverLosingWrites produces a failover that loses acknowledged writes:
// it pauses the replicas (PauseReplicas), calls write with the master, which
// acknowledges what write does but replicates none of it, kills the master,
// resumes the replicas and waits (WaitMaster, timeout) for the sentinels to
// promote one of them, which lacks every write made by write. It returns
// the new master. Writes must go to the master given, or to a client that
// follows the sentinels (they still name it).
//
// No setting beyond the defaults is needed for the promotion to be
// reliable: a sentinel promotes only a replica that is not down, answered a
// PING and an INFO in the last 5 s and lost its master link less than
// 10 × down-after ago. The replicas answer again right after the kill (their
// pending PING and INFO too), the master is deemed down 1 s later, and from
// then on the sentinels send the replicas INFO every second, before they
// have elected the leader that picks one.
func (s *Sentinel) FailoverLosingWrites(tb testing.TB, write func(master *Redis), timeout time.Duration) (newMaster *Redis) {
	tb.Helper()
	old := s.Master()
	s.PauseReplicas()
	write(old)
	old.Kill()
	s.ResumeReplicas()
	return s.WaitMaster(tb, old.Addr, timeout)
}

// Failover moves the master role to a replica without losing an
// acknowledged write, and waits until the new master is agreed on and every
// other running server replicates from it; it returns the new master. It
// first makes the master refuse writes (min-replicas-to-write above its
// replica count: clients get NOREPLICAS errors, not silent loss), waits
// until the replicas have everything the master acknowledged, then sends
// SENTINEL FAILOVER, and finally turns the old master into a replica itself
// (REPLICAOF, as the sentinels would about 8 s later) and restores its
// min-replicas-to-write.
func (s *Sentinel) Failover() (newMaster *Redis) {
	s.tb.Helper()
	old := s.Master()
	prev, err := old.Do("CONFIG", "GET", "min-replicas-to-write")
	kv, ok := prev.([]any)
	if err != nil || !ok || len(kv) != 2 {
		s.tb.Fatalf("pubsubtest: master %s: CONFIG GET min-replicas-to-write = %#v, %v", old.Addr, prev, err)
	}
	s.do(old, "CONFIG", "SET", "min-replicas-to-write", strconv.Itoa(len(s.servers)))
	// No write is accepted from here on; the offset stays put (except for
	// the master's pings to its replicas, which they receive too).
	inf, err := old.info("replication")
	if err != nil {
		s.tb.Fatalf("pubsubtest: master %s: INFO replication: %v", old.Addr, err)
	}
	want, _ := strconv.ParseInt(inf["master_repl_offset"], 10, 64)
	ok, state := pollUntil(topologyReadyTimeout, func() (bool, string) {
		var b strings.Builder
		done := true
		for _, r := range s.servers {
			if r == old || !r.Running() {
				continue
			}
			inf, err := r.info("replication")
			off, _ := strconv.ParseInt(inf["slave_repl_offset"], 10, 64)
			fmt.Fprintf(&b, "%s: offset %d of %d %v; ", r.Addr, off, want, err)
			done = done && err == nil && off >= want
		}
		return done, b.String()
	})
	if !ok {
		s.tb.Fatalf("pubsubtest: sentinel: replicas did not catch up with %s within %v: %s", old.Addr, topologyReadyTimeout, state)
	}
	s.do(s.runningSentinel(), "SENTINEL", "FAILOVER", s.name)
	nm := s.WaitMaster(s.tb, old.Addr, topologyReadyTimeout)
	host, port, _ := net.SplitHostPort(nm.Addr)
	s.do(old, "REPLICAOF", host, port)
	s.do(old, "CONFIG", "SET", "min-replicas-to-write", fmt.Sprint(kv[1]))
	s.waitReplicas(s.tb, nm, topologyReadyTimeout)
	return nm
}

// do runs one command and fails the test on an error.
func (s *Sentinel) do(r *Redis, args ...string) any {
	s.tb.Helper()
	v, err := r.Do(args...)
	if err != nil {
		s.tb.Fatalf("pubsubtest: %s: %v: %v", r.Addr, args, err)
	}
	return v
}

func (s *Sentinel) runningSentinel() *Redis {
	s.tb.Helper()
	for _, sn := range s.sentinels {
		if sn.Running() {
			return sn
		}
	}
	s.tb.Fatal("pubsubtest: no sentinel is running")
	return nil
}

// server returns the data server listening on addr, or nil.
func (s *Sentinel) server(addr string) *Redis {
	for _, r := range s.servers {
		if r.Addr == addr {
			return r
		}
	}
	return nil
}

// masterAddr asks sn for the master's address.
func (s *Sentinel) masterAddr(sn *Redis) (string, error) {
	v, err := sn.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.name)
	if err != nil {
		return "", err
	}
	hp, ok := v.([]any)
	if !ok || len(hp) != 2 {
		return "", fmt.Errorf("GET-MASTER-ADDR-BY-NAME answered %#v", v)
	}
	return net.JoinHostPort(fmt.Sprint(hp[0]), fmt.Sprint(hp[1])), nil
}

// waitReplicas waits until every running server but master replicates from
// master with its link up, and master counts them all as online.
func (s *Sentinel) waitReplicas(tb testing.TB, master *Redis, timeout time.Duration) {
	tb.Helper()
	_, port, _ := net.SplitHostPort(master.Addr)
	ok, state := pollUntil(timeout, func() (bool, string) {
		var b strings.Builder
		done, n := true, 0
		for _, r := range s.servers {
			if r == master || !r.Running() {
				continue
			}
			n++
			inf, err := r.info("replication")
			fmt.Fprintf(&b, "%s: role %s of port %s link %s %v; ", r.Addr, inf["role"], inf["master_port"], inf["master_link_status"], err)
			done = done && err == nil && inf["role"] == "slave" && inf["master_port"] == port && inf["master_link_status"] == "up"
		}
		inf, err := master.info("replication")
		online := 0
		for k, v := range inf {
			if strings.HasPrefix(k, "slave") && strings.Contains(v, "state=online") {
				online++
			}
		}
		fmt.Fprintf(&b, "master %s: role %s, %d online replicas %v", master.Addr, inf["role"], online, err)
		return done && err == nil && inf["role"] == "master" && online == n, b.String()
	})
	if !ok {
		tb.Fatalf("pubsubtest: replicas of %s not in sync within %v: %s", master.Addr, timeout, state)
	}
}

// waitSentinels waits until every sentinel names servers[0] as the master,
// sees both replicas healthy, knows the two other sentinels and can reach
// the quorum.
func (s *Sentinel) waitSentinels(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	ok, state := pollUntil(timeout, func() (bool, string) {
		var b strings.Builder
		for _, sn := range s.sentinels {
			fmt.Fprintf(&b, "sentinel %s: ", sn.Addr)
			addr, err := s.masterAddr(sn)
			if err != nil || addr != s.servers[0].Addr {
				fmt.Fprintf(&b, "master %s %v", addr, err)
				return false, b.String()
			}
			replicas, err := sentinelList(sn, "REPLICAS", s.name)
			if err != nil || len(replicas) != len(s.servers)-1 {
				fmt.Fprintf(&b, "replicas %v %v", replicas, err)
				return false, b.String()
			}
			for _, r := range replicas {
				if r["flags"] != "slave" || r["master-link-status"] != "ok" {
					fmt.Fprintf(&b, "replica %s:%s flags %s link %s", r["ip"], r["port"], r["flags"], r["master-link-status"])
					return false, b.String()
				}
			}
			peers, err := sentinelList(sn, "SENTINELS", s.name)
			if err != nil || len(peers) != len(s.sentinels)-1 {
				fmt.Fprintf(&b, "%d other sentinels %v", len(peers), err)
				return false, b.String()
			}
			for _, p := range peers {
				if p["flags"] != "sentinel" {
					fmt.Fprintf(&b, "sentinel %s:%s flags %s", p["ip"], p["port"], p["flags"])
					return false, b.String()
				}
			}
			if _, err := sn.Do("SENTINEL", "CKQUORUM", s.name); err != nil {
				fmt.Fprintf(&b, "CKQUORUM %v", err)
				return false, b.String()
			}
			b.WriteString("ok; ")
		}
		return true, b.String()
	})
	if !ok {
		tb.Fatalf("pubsubtest: sentinels not ready within %v: %s", timeout, state)
	}
}

// sentinelList runs SENTINEL <what> <name> (REPLICAS, SENTINELS), whose
// reply is a list of flat field-value arrays, and returns them as maps.
func sentinelList(sn *Redis, what, name string) ([]map[string]string, error) {
	v, err := sn.Do("SENTINEL", what, name)
	if err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("SENTINEL %s answered %#v", what, v)
	}
	out := make([]map[string]string, 0, len(list))
	for _, e := range list {
		kv, ok := e.([]any)
		if !ok || len(kv)%2 != 0 {
			return nil, fmt.Errorf("SENTINEL %s entry %#v", what, e)
		}
		m := make(map[string]string, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = fmt.Sprint(kv[i+1])
		}
		out = append(out, m)
	}
	return out, nil
}

// roleOf returns the first element of r's ROLE reply: master, slave or
// sentinel.
func roleOf(r *Redis) (string, error) {
	v, err := r.Do("ROLE")
	if err != nil {
		return "", err
	}
	if a, ok := v.([]any); ok && len(a) > 0 {
		if role, ok := a[0].(string); ok {
			return role, nil
		}
	}
	return "", fmt.Errorf("ROLE answered %#v", v)
}

// addrs returns the addresses of rs.
func addrs(rs []*Redis) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Addr
	}
	return out
}
