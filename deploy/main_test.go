package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// root is the repository's root; tests run in deploy/.
const root = ".."

// binDir holds the ssenode binary built like the Dockerfile builds it,
// once for every test of the run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ssecluster-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// need returns the path of an installed tool, or skips the test.
func need(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not installed (.ci/test.sh installs it)", tool)
	}
	return p
}

// goTool returns the go command on PATH (.ci/test.sh puts it there).
func goTool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command on PATH: %v", err)
	}
	return p
}

// readFile returns a repository file's contents.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imageVersion is the VERSION build argument the tests build ssenode with.
const imageVersion = "v0.0.0-deploy-test"

var built struct {
	once sync.Once
	path string
	err  error
}

// ssenodeBinary builds ./cmd/ssenode with the Dockerfile's own build
// command (its output path replaced) and returns the binary. Skipped with
// -short: a cold build takes a while.
func ssenodeBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds ssenode like the Dockerfile; skipped with -short")
	}
	build := dockerBuildCommand(t)
	gobin := filepath.Dir(goTool(t))
	built.once.Do(func() {
		out := filepath.Join(binDir, "ssenode")
		cmdline := dockerOutput.ReplaceAllLiteralString(build, "-o "+out)
		cmd := exec.Command("sh", "-c", cmdline)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "PATH="+gobin+string(os.PathListSeparator)+os.Getenv("PATH"), "VERSION="+imageVersion)
		if b, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("%s: %v\n%s", cmdline, err, b)
			return
		}
		built.path = out
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// safeBuffer collects a process's output while the test reads it.
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

// httpClient keeps no idle connections (goleak).
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: 5 * time.Second}

// testNode is a running ssenode process.
type testNode struct {
	httpAddr, adminAddr, token string
}

const testToken = "deploy-test-token"

var (
	nodeListening  = regexp.MustCompile(`"msg":"node listening".*?"addr":"([^"]+)"`)
	adminListening = regexp.MustCompile(`"msg":"admin listening".*?"addr":"([^"]+)"`)
)

// startNode runs the binary on loopback ports with an admin token
// (standalone unless env, extra KEY=value settings, names a REDIS_URL),
// waits until /readyz answers 200 and stops it (SIGINT) when the test ends.
func startNode(t *testing.T, bin string, env ...string) *testNode {
	t.Helper()
	var logs safeBuffer
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"HTTP_ADDR=127.0.0.1:0", "ADMIN_ADDR=127.0.0.1:0", "ADMIN_TOKEN=" + testToken, "NODE_ID=deploy-test"}, env...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("ssenode did not stop on SIGINT; logs:\n%s", logs.String())
		}
	})
	n := &testNode{token: testToken}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := nodeListening.FindStringSubmatch(logs.String()); m != nil {
			n.httpAddr = m[1]
		}
		if m := adminListening.FindStringSubmatch(logs.String()); m != nil {
			n.adminAddr = m[1]
		}
		if n.httpAddr != "" && n.adminAddr != "" {
			if st, _ := get(t, "http://"+n.httpAddr+"/readyz", ""); st == http.StatusOK {
				return n
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("ssenode exited: %v; logs:\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssenode not ready; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// get returns the status and body of a GET, or 0 when it failed.
func get(t testing.TB, url, token string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// lines returns s's non-empty lines, trimmed.
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
