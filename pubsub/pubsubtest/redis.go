package pubsubtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server process owned by one test. Its methods must be
// called from the test's goroutine.
type Redis struct {
	// Addr is "127.0.0.1:<port>"; it stays the same across Restart.
	Addr string

	tb      testing.TB
	bin     string
	dir     string
	persist bool
	extra   []string // WithArgs, after ours
	out     *cappedBuffer

	// sentinel holds the initial configuration of a redis-sentinel
	// (withSentinelConfig); empty for a redis-server.
	sentinel string
	// clusterBus makes StartRedis pick busPort, the cluster bus port
	// (--cluster-port), with the client port (withClusterBus).
	clusterBus bool
	busPort    int

	proc *redisProc // nil when not running
}

// redisProc is one run of the server.
type redisProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	err    error         // cmd.Wait's result, valid once exited is closed
}

// RedisOption changes how StartRedis runs the server.
type RedisOption func(*Redis)

// WithPersistence turns on the append-only file with an fsync per write
// (--appendonly yes --appendfsync always) in the server's directory, so that
// every acknowledged write survives Stop and Restart (and even Kill).
func WithPersistence() RedisOption {
	return func(r *Redis) { r.persist = true }
}

// WithArgs appends arguments to the redis-server command line, after the
// helper's own (later ones win), e.g. WithArgs("--replicaof", "127.0.0.1",
// "6380") or WithArgs("--maxmemory", "10mb"). They are used again on Restart.
func WithArgs(args ...string) RedisOption {
	return func(r *Redis) { r.extra = append(r.extra, args...) }
}

// withSentinelConfig runs redis-sentinel instead of redis-server, on a
// sentinel.conf in the server's directory that starts as conf (without
// port, bind, dir: the helper adds them on the command line). Sentinel
// rewrites that file as it learns; Restart reuses it.
func withSentinelConfig(conf string) RedisOption {
	return func(r *Redis) { r.sentinel = conf }
}

// withClusterBus gives the server a cluster bus port of its own
// (--cluster-port), picked free with the client port: the default, port +
// 10000, can be above 65535 or taken.
func withClusterBus() RedisOption {
	return func(r *Redis) { r.clusterBus = true }
}

const (
	// redisReadyTimeout bounds how long a start waits for PING to answer.
	redisReadyTimeout = 15 * time.Second
	// redisExitTimeout bounds how long Kill and Stop wait for the process.
	redisExitTimeout = 15 * time.Second
	// redisOutputCap bounds the captured server output.
	redisOutputCap = 1 << 20
	// redisDoTimeout bounds dialing, writing and reading one Do.
	redisDoTimeout = 15 * time.Second
)

// StartRedis starts redis-server on a free 127.0.0.1 port, with its own
// temporary directory and no configuration file, waits until it answers
// PING, and kills it (and waits for it) when the test ends. Without
// WithPersistence it runs with --save "" --appendonly no: nothing survives a
// restart. If the test fails, the server's output is logged.
func StartRedis(t testing.TB, opts ...RedisOption) *Redis {
	t.Helper()
	r := &Redis{tb: t, dir: t.TempDir(), out: &cappedBuffer{max: redisOutputCap}}
	for _, o := range opts {
		o(r)
	}
	bin, err := exec.LookPath(r.program())
	if err != nil {
		t.Fatalf("pubsubtest: %s not found (%v); run the README test command ./.ci/test.sh, which installs it", r.program(), err)
	}
	r.bin = bin
	if r.sentinel != "" {
		if err := os.WriteFile(r.sentinelConf(), []byte(r.sentinel), 0o600); err != nil {
			t.Fatalf("pubsubtest: %v", err)
		}
	}
	t.Cleanup(r.cleanup)
	// A free port can be taken by someone else between our probe and the
	// server's bind: try a few.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("pubsubtest: %v", err)
		}
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if r.clusterBus {
			if r.busPort, err = freePort(); err != nil {
				t.Fatalf("pubsubtest: %v", err)
			}
		}
		err = r.start()
		if err == nil {
			return r
		}
		if attempt == 3 || !strings.Contains(r.out.String(), "Address already in use") {
			t.Fatalf("pubsubtest: start %s: %v\n%s", r.program(), err, r.out.String())
		}
	}
}

// URL returns the go-redis URL of database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// Do sends one command on a new connection and returns the reply: a string
// (simple or bulk), an int64, nil (null), []any (array), or an error (a
// reply such as "-ERR ..." or a network error; a paused server times out
// after 15 s). It is meant for tests (ROLE, INFO, CONFIG SET, DEBUG SLEEP)
// and, unlike the other methods, may be called from any goroutine.
func (r *Redis) Do(args ...string) (any, error) {
	c, err := dialRESP(r.Addr, redisDoTimeout)
	if err != nil {
		return nil, err
	}
	defer c.close()
	return c.do(args...)
}

// Running reports whether the process is started and has not exited (a
// paused process is running).
func (r *Redis) Running() bool {
	if r.proc == nil {
		return false
	}
	select {
	case <-r.proc.exited:
		return false
	default:
		return true
	}
}

// PID returns the process id (which is also its process group id), or 0
// when the server is not running.
func (r *Redis) PID() int {
	if !r.Running() {
		return 0
	}
	return r.proc.cmd.Process.Pid
}

// info returns the "field:value" lines of INFO section.
func (r *Redis) info(section string) (map[string]string, error) {
	v, err := r.Do("INFO", section)
	if err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("INFO %s answered %#v", section, v)
	}
	fields := make(map[string]string)
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			fields[k] = v
		}
	}
	return fields, nil
}

// Kill sends SIGKILL (to the whole process group, so a forked child dies
// too) and waits for the process. Without persistence all data is lost. It
// does nothing when the server is not running.
func (r *Redis) Kill() {
	r.tb.Helper()
	if r.proc == nil {
		return
	}
	r.signal(syscall.SIGKILL)
	r.waitExit()
}

// Stop asks the server to SHUTDOWN, which flushes and fsyncs the
// append-only file when persistence is on, and waits for it to exit. A
// paused server is resumed first. It does nothing when the server is not
// running.
func (r *Redis) Stop() {
	r.tb.Helper()
	if r.proc == nil {
		return
	}
	r.signal(syscall.SIGCONT) // SHUTDOWN needs a running process
	c, err := dialRESP(r.Addr, redisExitTimeout)
	if err == nil {
		// On success the server closes the connection without a reply;
		// an error reply means it refused (then we kill it).
		var v any
		v, err = c.do("SHUTDOWN")
		c.close()
		if err == nil {
			err = fmt.Errorf("SHUTDOWN answered %v", v)
		} else if isConnClosed(err) {
			err = nil
		}
	}
	if err != nil {
		r.tb.Errorf("pubsubtest: redis SHUTDOWN: %v; killing it", err)
		r.signal(syscall.SIGKILL)
	}
	r.waitExit()
}

// Restart starts the server again on the same port and directory, after
// Kill or Stop, and waits until it answers PING (with persistence, until it
// has loaded its data).
func (r *Redis) Restart() {
	r.tb.Helper()
	if r.proc != nil {
		r.tb.Fatal("pubsubtest: Restart of a running redis-server; call Kill or Stop first")
	}
	fmt.Fprintf(r.out, "--- pubsubtest: restart ---\n")
	if err := r.start(); err != nil {
		r.tb.Fatalf("pubsubtest: restart redis-server: %v\n%s", err, r.out.String())
	}
}

// Pause stops the process with SIGSTOP: connections stay open and requests
// hang, as with a server stalled by the kernel or a long fork.
func (r *Redis) Pause() {
	r.tb.Helper()
	r.signal(syscall.SIGSTOP)
}

// Resume continues a paused process with SIGCONT.
func (r *Redis) Resume() {
	r.tb.Helper()
	r.signal(syscall.SIGCONT)
}

// program is the executable StartRedis runs.
func (r *Redis) program() string {
	if r.sentinel != "" {
		return "redis-sentinel"
	}
	return "redis-server"
}

func (r *Redis) sentinelConf() string { return filepath.Join(r.dir, "sentinel.conf") }

func (r *Redis) args() []string {
	port := r.Addr[strings.LastIndexByte(r.Addr, ':')+1:]
	if r.sentinel != "" {
		// Sentinel has no data to persist; it needs a writable config
		// file, which must come first.
		return append([]string{
			r.sentinelConf(),
			"--port", port,
			"--bind", "127.0.0.1",
			"--dir", r.dir,
			"--daemonize", "no",
			"--logfile", "",
		}, r.extra...)
	}
	args := []string{
		"--port", port,
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--save", "",
		"--daemonize", "no",
		"--logfile", "",
		// DEBUG SLEEP and friends help failure tests; only from loopback.
		"--enable-debug-command", "local",
	}
	if r.busPort != 0 {
		args = append(args, "--cluster-port", strconv.Itoa(r.busPort))
	}
	if r.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	return append(args, r.extra...)
}

// start runs the server and waits for PING; on failure the process is gone.
func (r *Redis) start() error {
	cmd := exec.Command(r.bin, r.args()...)
	cmd.Dir = r.dir
	cmd.Stdout = r.out // one writer for both: exec then uses one copying goroutine
	cmd.Stderr = r.out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &redisProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	r.proc = p
	if err := r.waitReady(); err != nil {
		r.signal(syscall.SIGKILL)
		<-p.exited // SIGKILL cannot be ignored
		r.proc = nil
		return err
	}
	return nil
}

// waitReady polls PING until it answers PONG (not LOADING), the process
// exits, or redisReadyTimeout passes.
func (r *Redis) waitReady() error {
	deadline := time.Now().Add(redisReadyTimeout)
	wait := time.Millisecond
	for {
		select {
		case <-r.proc.exited:
			return fmt.Errorf("%s exited: %v", r.program(), r.proc.err)
		default:
		}
		err := ping(r.Addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG after %v: %w", redisReadyTimeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

func ping(addr string) error {
	c, err := dialRESP(addr, time.Second)
	if err != nil {
		return err
	}
	defer c.close()
	v, err := c.do("PING")
	if err != nil {
		return err
	}
	if v != "PONG" {
		return fmt.Errorf("PING answered %v", v)
	}
	return nil
}

// signal sends sig to the server's process group.
func (r *Redis) signal(sig syscall.Signal) {
	if r.proc == nil {
		return
	}
	// The server leads its own group (Setpgid), so -pid reaches a forked
	// child (an AOF rewrite) too. ESRCH: it is already gone.
	if err := syscall.Kill(-r.proc.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		r.tb.Errorf("pubsubtest: signal %v to %s: %v", sig, r.program(), err)
	}
}

// waitExit waits for the process to exit and forgets it.
func (r *Redis) waitExit() {
	select {
	case <-r.proc.exited:
	case <-time.After(redisExitTimeout):
		r.tb.Errorf("pubsubtest: %s did not exit within %v; killing it", r.program(), redisExitTimeout)
		r.signal(syscall.SIGKILL)
		<-r.proc.exited
	}
	r.proc = nil
}

func (r *Redis) cleanup() {
	r.Kill()
	if r.tb.Failed() {
		r.tb.Logf("%s %s output:\n%s", r.program(), r.Addr, r.out.String())
	}
}

// pollUntil calls check until it reports done or timeout has passed, and
// returns whether it was done and the last state check described (for the
// failure message). Between calls it waits 1 ms, doubling up to 50 ms.
func pollUntil(timeout time.Duration, check func() (done bool, state string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		done, state := check()
		if done || time.Now().After(deadline) {
			return done, state
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cappedBuffer keeps the first max bytes written to it and counts the rest.
// os/exec writes to it from its own goroutine while tests read it.
type cappedBuffer struct {
	max     int
	mu      sync.Mutex
	buf     bytes.Buffer
	dropped int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(p), b.max-b.buf.Len())
	b.buf.Write(p[:n])
	b.dropped += len(p) - n
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return fmt.Sprintf("%s\n... %d more bytes dropped", b.buf.String(), b.dropped)
	}
	return b.buf.String()
}
