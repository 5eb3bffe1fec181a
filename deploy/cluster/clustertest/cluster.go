package clustertest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Cluster is a running local cluster.
type Cluster struct {
	// Dir holds the cluster's state and logs: cluster.env, node1.log, ...
	Dir string
	// Script is the path of cluster.sh.
	Script string
}

// Start runs "cluster.sh start -d DIR ARGS..." in a temporary directory of
// t, with env added to the environment (node settings such as
// "DRAIN_WINDOW=1s", and "BIN=..." from BuildNode to skip a build), and
// registers "cluster.sh stop" for when the test ends. When the test has
// failed by then, the end of every log of the cluster goes to the test log.
func Start(t testing.TB, env []string, args ...string) *Cluster {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: t.TempDir(), Script: filepath.Join(root, "deploy", "cluster", "cluster.sh")}
	cmd := exec.Command(c.Script, append([]string{"start", "-d", c.Dir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() {
		if t.Failed() {
			c.logTails(t)
		}
		if out, err := exec.Command(c.Script, "stop", "-d", c.Dir).CombinedOutput(); err != nil {
			t.Errorf("cluster.sh stop: %v\n%s", err, out)
		}
	})
	if err != nil {
		t.Fatalf("cluster.sh start %q: %v\n%s", args, err, out)
	}
	return c
}

// Run runs "cluster.sh SUB ARGS... -d DIR" and returns its output; a
// failure fails the test.
func (c *Cluster) Run(t testing.TB, sub string, args ...string) string {
	t.Helper()
	out, err := exec.Command(c.Script, append(append([]string{sub}, args...), "-d", c.Dir)...).CombinedOutput()
	if err != nil {
		t.Fatalf("cluster.sh %s %q: %v\n%s", sub, args, err, out)
	}
	return string(out)
}

// Output runs "cluster.sh SUB ARGS... -d DIR" and returns what it wrote to
// stdout, trimmed: the port redis-master, kill-redis-master and reshard
// print. A failure fails the test, with what it wrote to stderr.
func (c *Cluster) Output(t testing.TB, sub string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(c.Script, append(append([]string{sub}, args...), "-d", c.Dir)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cluster.sh %s %q: %v\n%s%s", sub, args, err, out, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// Command returns "cluster.sh SUB ARGS... -d DIR" as a shell command line
// (for loadtest.Storm.Cmd, which runs it with sh -c).
func (c *Cluster) Command(sub string, args ...string) string {
	words := append([]string{c.Script, sub}, args...)
	words = append(words, "-d", c.Dir)
	for i, w := range words {
		words[i] = shellQuote(w)
	}
	return strings.Join(words, " ")
}

// Env returns variables of DIR/cluster.env as the file holds them now
// (restart-node and the Redis and HAProxy restarts change pids). The file
// is bash (printf %q for odd values), so bash reads it.
func (c *Cluster) Env(t testing.TB, names ...string) map[string]string {
	t.Helper()
	script := `. "$1"; shift; for v in "$@"; do printf '%s\n' "${!v}"; done`
	out, err := exec.Command("bash", append([]string{"-c", script, "_", filepath.Join(c.Dir, "cluster.env")}, names...)...).Output()
	if err != nil {
		t.Fatalf("reading cluster.env: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	env := make(map[string]string, len(names))
	for i, n := range names {
		if i < len(lines) {
			env[n] = lines[i]
		}
	}
	return env
}

// WaitReady polls "cluster.sh status" until every process of the cluster
// runs and is ready and HAProxy (if any) has every node UP, and fails the
// test if that takes longer than timeout.
func (c *Cluster) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command(c.Script, "status", "-d", c.Dir).CombinedOutput()
		if err == nil && !lbNotUp.Match(out) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ready after %v:\n%s", timeout, out)
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not a synchroniser
	}
}

// lbNotUp matches a status line of a node HAProxy does not have UP.
var lbNotUp = regexp.MustCompile(`(?m)^  lb: \S+ (?:[^U]|U[^P])`)

// BuildNode builds cmd/ssenode into a temporary directory of t and returns
// "BIN=<binary>" for Start's environment, so that clusters started with it
// do not each build their own.
func BuildNode(t testing.TB) string {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "ssenode")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/ssenode")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ssenode: %v\n%s", err, out)
	}
	return "BIN=" + bin
}

// Root returns the repository's root: the first directory holding go.mod
// from the working directory up (go test runs in the package's directory).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("clustertest: no go.mod above the working directory")
		}
		dir = up
	}
}

// logTails writes the last lines of each of the cluster's logs to the
// test log.
func (c *Cluster) logTails(t testing.TB) {
	logs, _ := filepath.Glob(filepath.Join(c.Dir, "*.log"))
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
		lines = lines[max(0, len(lines)-15):]
		t.Logf("%s (last %d lines):\n%s", filepath.Base(f), len(lines), bytes.Join(lines, []byte("\n")))
	}
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Eventually polls cond every 100 ms until it holds, and fails the test
// after timeout. For waits across processes, where no event tells when a
// state is reached.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not a synchroniser
	}
}
