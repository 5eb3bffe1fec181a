package pubsubtest

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// redisDo runs one command on a new connection to addr.
func redisDo(t testing.TB, addr string, args ...string) any {
	t.Helper()
	c, err := dialRESP(addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.close()
	v, err := c.do(args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

func configGet(t testing.TB, addr, name string) string {
	t.Helper()
	v, ok := redisDo(t, addr, "CONFIG", "GET", name).([]any)
	if !ok || len(v) != 2 {
		t.Fatalf("CONFIG GET %s = %#v", name, v)
	}
	return fmt.Sprint(v[1])
}

func TestStartRedis(t *testing.T) {
	r := StartRedis(t)
	host, _, err := net.SplitHostPort(r.Addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr = %q, want 127.0.0.1:<port>", r.Addr)
	}
	if want := "redis://" + r.Addr + "/0"; r.URL() != want {
		t.Fatalf("URL() = %q, want %q", r.URL(), want)
	}
	if v := redisDo(t, r.Addr, "SET", "k", "v\x00\r\n"); v != "OK" {
		t.Fatalf("SET = %#v", v)
	}
	if v := redisDo(t, r.Addr, "GET", "k"); v != "v\x00\r\n" {
		t.Fatalf("GET = %#v", v)
	}
	if v := redisDo(t, r.Addr, "GET", "missing"); v != nil {
		t.Fatalf("GET missing = %#v, want nil", v)
	}
	for name, want := range map[string]string{"save": "", "appendonly": "no", "bind": "127.0.0.1"} {
		if got := configGet(t, r.Addr, name); got != want {
			t.Errorf("CONFIG GET %s = %q, want %q", name, got, want)
		}
	}
}

func TestRedisKillRestartLosesData(t *testing.T) {
	r := StartRedis(t)
	addr := r.Addr
	redisDo(t, r.Addr, "SET", "k", "v")
	r.Kill()
	if err := ping(addr); err == nil {
		t.Fatal("PING answered after Kill")
	}
	r.Kill() // no-op when not running
	r.Restart()
	if r.Addr != addr {
		t.Fatalf("Addr changed across Restart: %s -> %s", addr, r.Addr)
	}
	if v := redisDo(t, r.Addr, "GET", "k"); v != nil {
		t.Fatalf("GET after Kill+Restart without persistence = %#v, want nil", v)
	}
}

func TestRedisPersistence(t *testing.T) {
	r := StartRedis(t, WithPersistence())
	if got := configGet(t, r.Addr, "appendonly"); got != "yes" {
		t.Fatalf("appendonly = %q, want yes", got)
	}
	if got := configGet(t, r.Addr, "appendfsync"); got != "always" {
		t.Fatalf("appendfsync = %q, want always", got)
	}
	redisDo(t, r.Addr, "SET", "k1", "v1")
	r.Stop()
	r.Stop() // no-op when not running
	r.Restart()
	if v := redisDo(t, r.Addr, "GET", "k1"); v != "v1" {
		t.Fatalf("GET after Stop+Restart with persistence = %#v, want v1", v)
	}
	// appendfsync always: an acknowledged write survives even SIGKILL.
	redisDo(t, r.Addr, "SET", "k2", "v2")
	r.Kill()
	r.Restart()
	for k, want := range map[string]string{"k1": "v1", "k2": "v2"} {
		if v := redisDo(t, r.Addr, "GET", k); v != want {
			t.Fatalf("GET %s after Kill+Restart with persistence = %#v, want %s", k, v, want)
		}
	}
}

func TestRedisStopWithoutPersistence(t *testing.T) {
	r := StartRedis(t)
	redisDo(t, r.Addr, "SET", "k", "v")
	r.Stop()
	r.Restart()
	if v := redisDo(t, r.Addr, "GET", "k"); v != nil {
		t.Fatalf("GET after Stop+Restart without persistence = %#v, want nil", v)
	}
}

func TestRedisPauseResume(t *testing.T) {
	r := StartRedis(t)
	c, err := dialRESP(r.Addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	r.Pause()
	// A stopped process never answers; the short deadline only bounds how
	// long we look, it does not decide the outcome.
	if err := c.conn.SetDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := c.send("PING"); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if v, err := c.read(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING to a paused server = %#v, %v; want a timeout", v, err)
	}
	r.Resume()
	if err := c.conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if v, err := c.read(); err != nil || v != "PONG" {
		t.Fatalf("pending PING after Resume = %#v, %v; want PONG", v, err)
	}
	// Stop resumes a paused server before SHUTDOWN.
	r.Pause()
	r.Stop()
}

// fatalRecorder is a testing.TB whose Fatal ends only the calling goroutine
// and keeps the message.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartRedisMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	f := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartRedis(f)
		f.msg = "StartRedis returned"
	}()
	<-done
	if !strings.Contains(f.msg, "./.ci/test.sh") {
		t.Fatalf("message %q does not point to ./.ci/test.sh", f.msg)
	}
}
