package pubsubtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
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
	out     *cappedBuffer

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

const (
	// redisReadyTimeout bounds how long a start waits for PING to answer.
	redisReadyTimeout = 15 * time.Second
	// redisExitTimeout bounds how long Kill and Stop wait for the process.
	redisExitTimeout = 15 * time.Second
	// redisOutputCap bounds the captured server output.
	redisOutputCap = 1 << 20
)

// StartRedis starts redis-server on a free 127.0.0.1 port, with its own
// temporary directory and no configuration file, waits until it answers
// PING, and kills it (and waits for it) when the test ends. Without
// WithPersistence it runs with --save "" --appendonly no: nothing survives a
// restart. If the test fails, the server's output is logged.
func StartRedis(t testing.TB, opts ...RedisOption) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("pubsubtest: redis-server not found (%v); run the README test command ./.ci/test.sh, which installs it", err)
	}
	r := &Redis{tb: t, bin: bin, dir: t.TempDir(), out: &cappedBuffer{max: redisOutputCap}}
	for _, o := range opts {
		o(r)
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
		err = r.start()
		if err == nil {
			return r
		}
		if attempt == 3 || !strings.Contains(r.out.String(), "Address already in use") {
			t.Fatalf("pubsubtest: start redis-server: %v\n%s", err, r.out.String())
		}
	}
}

// URL returns the go-redis URL of database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

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

func (r *Redis) args() []string {
	port := r.Addr[strings.LastIndexByte(r.Addr, ':')+1:]
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
	if r.persist {
		return append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	return append(args, "--appendonly", "no")
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
			return fmt.Errorf("redis-server exited: %v", r.proc.err)
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
		r.tb.Errorf("pubsubtest: signal %v to redis-server: %v", sig, err)
	}
}

// waitExit waits for the process to exit and forgets it.
func (r *Redis) waitExit() {
	select {
	case <-r.proc.exited:
	case <-time.After(redisExitTimeout):
		r.tb.Errorf("pubsubtest: redis-server did not exit within %v; killing it", redisExitTimeout)
		r.signal(syscall.SIGKILL)
		<-r.proc.exited
	}
	r.proc = nil
}

func (r *Redis) cleanup() {
	r.Kill()
	if r.tb.Failed() {
		r.tb.Logf("redis-server %s output:\n%s", r.Addr, r.out.String())
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
