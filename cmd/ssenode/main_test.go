package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseFlagsAndEnv(t *testing.T) {
	o, err := parse([]string{"-http-addr", "127.0.0.1:1", "-partitions", "8"},
		env(map[string]string{"HTTP_ADDR": "ignored:2", "REDIS_URL": "redis://x:1/0", "HEARTBEAT_INTERVAL": "3s", "NODE_ID": "n1", "TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1/32"}), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if o.node.Addr != "127.0.0.1:1" {
		t.Errorf("flag must win over env: http addr %q", o.node.Addr)
	}
	if o.redis.URL != "redis://x:1/0" || o.node.Heartbeat != 3*time.Second || o.node.NodeID != "n1" || o.partitions != 8 || len(o.node.TrustedProxies) != 2 {
		t.Errorf("env not applied: %+v", o)
	}
	o, err = parse(nil, env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if o.node.Addr != ":8080" || o.adminAddr != ":9090" || o.redis.URL != "" || o.node.NodeID == "" || o.node.Retry.Cap != time.Minute {
		t.Errorf("defaults: %+v", o)
	}
}

func TestParseBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
		{"bad int flag", []string{"-partitions", "x"}, nil, "invalid value"},
		{"bad duration env", nil, map[string]string{"HEARTBEAT_INTERVAL": "soon"}, "environment HEARTBEAT_INTERVAL"},
		{"bad proxies", nil, map[string]string{"TRUSTED_PROXIES": "10.0.0.0"}, "trusted proxies"},
		{"bad int env", nil, map[string]string{"MAX_TOPICS": "many"}, "environment MAX_TOPICS"},
		{"positional", []string{"extra"}, nil, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.args, env(tt.env), new(bytes.Buffer))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parse = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := parse([]string{"-h"}, env(nil), new(bytes.Buffer)); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, "log level"},
		{"node id", map[string]string{"NODE_ID": "bad id"}, "node id"},
		{"partitions", map[string]string{"PARTITIONS": "100000"}, "Partitions"},
		{"redis url", map[string]string{"REDIS_URL": "http://nope"}, "REDIS_URL"},
		{"redis url unparsable", map[string]string{"REDIS_URL": "redis://[::1"}, "REDIS_URL"},
		{"redis url unknown parameter", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0?frobnicate=1"}, "frobnicate"},
		{"redis url without host", map[string]string{"REDIS_URL": "redis:///0"}, "missing host"},
		{"redis url password not echoed", map[string]string{"REDIS_URL": "redis://u:s3cret@127.0.0.1:1/0?bogus=1"}, "xxxxx"},
		{"two topologies", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_CLUSTER_URL": "redis://127.0.0.1:2"}, "REDIS_URL and REDIS_CLUSTER_URL are both set"},
		{"three topologies", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_SENTINEL_URL": "redis://127.0.0.1:3?master_name=m", "REDIS_CLUSTER_URL": "redis://127.0.0.1:2"}, "both set"},
		{"sentinel without master name", map[string]string{"REDIS_SENTINEL_URL": "redis://127.0.0.1:26379?addr=127.0.0.1:26380"}, "master_name"},
		{"sentinel unknown parameter", map[string]string{"REDIS_SENTINEL_URL": "redis://127.0.0.1:26379?master_name=m&colour=red"}, "colour"},
		{"sentinel bad addr", map[string]string{"REDIS_SENTINEL_URL": "redis://127.0.0.1:26379?master_name=m&addr=nohostport"}, "addr"},
		{"cluster bad scheme", map[string]string{"REDIS_CLUSTER_URL": "tcp://127.0.0.1:7000"}, "REDIS_CLUSTER_URL"},
		{"cluster with database", map[string]string{"REDIS_CLUSTER_URL": "redis://127.0.0.1:7000/3"}, "database 0"},
		{"cluster bad addr", map[string]string{"REDIS_CLUSTER_URL": "redis://127.0.0.1:7000?addr=:7001"}, "addr"},
		{"ca file without tls", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_CA_FILE": "/etc/hostname"}, "rediss"},
		{"ca file without redis", map[string]string{"REDIS_CA_FILE": "/etc/hostname"}, "no Redis URL"},
		{"ca file missing", map[string]string{"REDIS_URL": "rediss://127.0.0.1:1/0", "REDIS_CA_FILE": "/nonexistent/ca.pem"}, "REDIS_CA_FILE"},
		{"ca file not PEM", map[string]string{"REDIS_URL": "rediss://127.0.0.1:1/0", "REDIS_CA_FILE": "/etc/hostname"}, "no PEM certificate"},
		{"wait replicas negative", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "PUBLISH_WAIT_REPLICAS": "-1"}, "PUBLISH_WAIT_REPLICAS -1 out of range"},
		{"wait replicas huge", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "PUBLISH_WAIT_REPLICAS": "1000"}, "out of range"},
		{"wait replicas not a number", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "PUBLISH_WAIT_REPLICAS": "two"}, "PUBLISH_WAIT_REPLICAS"},
		{"wait replicas in memory", map[string]string{"PUBLISH_WAIT_REPLICAS": "1"}, "needs Redis"},
		{"wait timeout zero", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "PUBLISH_WAIT_REPLICAS": "1", "PUBLISH_WAIT_TIMEOUT": "0s"}, "PUBLISH_WAIT_TIMEOUT"},
		{"wait timeout huge", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "PUBLISH_WAIT_TIMEOUT": "2h"}, "PUBLISH_WAIT_TIMEOUT"},
		{"retry range", map[string]string{"RETRY_BASE": "5s", "RETRY_CAP": "1s"}, "base 5s and cap 1s"},
		{"healthy below cap", map[string]string{"RETRY_HEALTHY_AFTER": "10s"}, "healthy-after"},
		{"short cookie key", map[string]string{"RETRY_COOKIE_KEY": "short"}, "cookie key"},
		{"admin ttl below interval", map[string]string{"ADMIN_REPORT_TTL": "1s", "ADMIN_REPORT_INTERVAL": "2s"}, "admin: ttl"},
		{"short jwt secret", map[string]string{"JWT_SECRET": "short"}, "32"},
		{"missing jwt key file", map[string]string{"JWT_PUBLIC_KEY_FILE": "/nonexistent/key.pem"}, "jwt public key"},
		{"jwt key file not PEM", map[string]string{"JWT_PUBLIC_KEY_FILE": "/etc/hostname"}, "PEM"},
		{"bad cors origin", map[string]string{"CORS_ORIGINS": "app.example.com"}, "CORS origin"},
		{"cors * with credentials", map[string]string{"CORS_ORIGINS": "*", "CORS_CREDENTIALS": "true"}, "credentials"},
		{"bad jwt cookie", map[string]string{"JWT_COOKIE": "a;b"}, "cookie name"},
		{"cursor limit below what the node writes", map[string]string{"MAX_CURSOR_BYTES": "100"}, "max cursor bytes"},
		{"data above body", map[string]string{"MAX_DATA_BYTES": "2000000"}, "max data bytes"},
		{"tiny url limit", map[string]string{"MAX_URL_BYTES": "10"}, "max URL bytes"},
		{"bad body timeout", map[string]string{"BODY_TIMEOUT": "-1s"}, "body timeout"},
		{"bad admin burst", map[string]string{"ADMIN_BURST": "-1"}, "burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), []string{"-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, env(tt.env), new(bytes.Buffer), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// safeBuffer is a bytes.Buffer for a writer goroutine and a reader.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The README's run command: with no REDIS_URL the node runs standalone on
// the in-memory broker, says so in its log, serves, and stops on signal.
func TestRunStandalone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var logs safeBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, env(nil), &logs, nil)
	}()
	listening := regexp.MustCompile(`"msg":"node listening".*"addr":"([^"]+)"`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			resp, err := http.Get("http://" + m[1] + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("node not ready; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(logs.String(), `"mode":"standalone, in-memory broker`) {
		t.Fatalf("the log does not say standalone in-memory mode:\n%s", logs.String())
	}
}

// waitListening waits for the node's "listening" log line and /readyz 200
// and returns the address.
func waitListening(t *testing.T, logs *safeBuffer) string {
	t.Helper()
	listening := regexp.MustCompile(`"msg":"node listening".*"addr":"([^"]+)"`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			resp, err := http.Get("http://" + m[1] + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return m[1]
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not ready; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// TestSIGTERMDrains: the first SIGTERM drains (not ready at once, streams
// closed with a drain goodbye over the window), then run returns; a second
// SIGTERM during a long drain stops at once.
func TestSIGTERMDrains(t *testing.T) {
	for _, second := range []bool{false, true} {
		t.Run(map[bool]string{false: "drain", true: "second_sigterm"}[second], func(t *testing.T) {
			window := "300ms"
			if second {
				window = "1h" // only a second SIGTERM can end it
			}
			var logs safeBuffer
			term := make(chan os.Signal, 2)
			done := make(chan error, 1)
			go func() {
				done <- run(context.Background(), []string{"-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, env(map[string]string{"DRAIN_WINDOW": window}), &logs, term)
			}()
			addr := waitListening(t, &logs)
			resp, err := http.Get("http://" + addr + "/v1/events?topic=t")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			term <- syscall.SIGTERM
			deadline := time.Now().Add(10 * time.Second)
			for { // readyz turns 503 while the drain runs
				r, err := http.Get("http://" + addr + "/readyz")
				if err == nil {
					r.Body.Close()
					if r.StatusCode == http.StatusServiceUnavailable {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("readyz never turned 503 after SIGTERM")
				}
				time.Sleep(10 * time.Millisecond) // polling interval
			}
			if second {
				term <- syscall.SIGTERM
			}
			body, _ := io.ReadAll(resp.Body)
			if err := <-done; err != nil {
				t.Fatalf("run: %v", err)
			}
			want := ": drain\n"
			if second {
				want = ": shutdown\n"
			}
			if !strings.Contains(string(body), want) || !strings.Contains(string(body), "retry: ") {
				t.Errorf("stream ended with %q, want a retry hint and %q", body, want)
			}
		})
	}
}

// startRun runs the command with args and env until the test ends, and
// returns its logs and the node's and admin API's addresses once both
// listen and the node is ready.
func startRun(t *testing.T, args []string, environ map[string]string) (logs *safeBuffer, nodeAddr, adminAddr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = new(safeBuffer)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, env(environ), logs, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	nodeAddr = waitListening(t, logs)
	adminRe := regexp.MustCompile(`"msg":"admin listening".*"addr":"([^"]+)"`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := adminRe.FindStringSubmatch(logs.String()); m != nil {
			return logs, nodeAddr, m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin API not listening; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func adminGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The admin API runs beside the node, behind ADMIN_TOKEN, and stops with it.
func TestRunServesAdmin(t *testing.T) {
	logs, _, admin := startRun(t, []string{"-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-node-id", "n7"},
		map[string]string{"ADMIN_TOKEN": "tok-123"})
	if st, body := adminGet(t, "http://"+admin+"/admin/v1/node", "tok-123"); st != http.StatusOK || !strings.Contains(body, `"node_id":"n7"`) {
		t.Errorf("GET /admin/v1/node = %d %s", st, body)
	}
	if st, body := adminGet(t, "http://"+admin+"/admin/v1/nodes", "tok-123"); st != http.StatusOK || !strings.Contains(body, `"nodes":1`) {
		t.Errorf("GET /admin/v1/nodes = %d %s", st, body)
	}
	if st, _ := adminGet(t, "http://"+admin+"/admin/v1/node", ""); st != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", st)
	}
	if strings.Contains(logs.String(), "tok-123") {
		t.Error("the token is in the logs")
	}
}

// Without ADMIN_TOKEN the admin API listens on loopback only, and says so.
func TestRunAdminLoopbackWithoutToken(t *testing.T) {
	logs, _, admin := startRun(t, []string{"-http-addr", "127.0.0.1:0", "-admin-addr", "0.0.0.0:0"}, nil)
	if !strings.HasPrefix(admin, "127.0.0.1:") {
		t.Errorf("admin API on %s, want 127.0.0.1", admin)
	}
	if !strings.Contains(logs.String(), "loopback only") {
		t.Errorf("the log does not say the admin API is loopback only:\n%s", logs.String())
	}
	if st, _ := adminGet(t, "http://"+admin+"/admin/v1/node", ""); st != http.StatusOK {
		t.Errorf("GET /admin/v1/node = %d, want 200", st)
	}
}

// An admin API that cannot listen stops the node: run returns the error.
func TestRunAdminListenFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"-http-addr", "127.0.0.1:0", "-admin-addr", ln.Addr().String()},
			env(map[string]string{"ADMIN_TOKEN": "t"}), new(safeBuffer), nil)
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "admin: listen") {
			t.Fatalf("run = %v, want the admin listen error", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return")
	}
	err = run(context.Background(), []string{"-http-addr", "127.0.0.1:0", "-admin-addr", "nope"}, env(nil), new(bytes.Buffer), nil)
	if err == nil || !strings.Contains(err.Error(), "admin: addr") {
		t.Fatalf("run with a bad admin addr = %v", err)
	}
}
