package deploy

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ssecluster/ssecluster/internal/flagenv"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// dockerfile returns the Dockerfile's stages (FROM starts each).
func dockerfile(t testing.TB) [][]instruction {
	t.Helper()
	var stages [][]instruction
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before FROM", in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	for l := range strings.SplitSeq(string(readFile(t, "Dockerfile")), "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a builder and a runtime stage", len(stages))
	}
	return stages
}

// find returns the args of the stage's instructions named cmd.
func find(stage []instruction, cmd string) []string {
	var out []string
	for _, in := range stage {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

var dockerOutput = regexp.MustCompile(`-o\s+\S+`)

// dockerBuildCommand returns the builder stage's go build command line.
func dockerBuildCommand(t testing.TB) string {
	t.Helper()
	for _, run := range find(dockerfile(t)[0], "RUN") {
		if strings.Contains(run, "go build") {
			return run
		}
	}
	t.Fatal("Dockerfile: no RUN ... go build in the builder stage")
	return ""
}

// dockerBinary returns where the runtime stage puts ssenode.
func dockerBinary(t testing.TB) string {
	t.Helper()
	stages := dockerfile(t)
	for _, cp := range find(stages[len(stages)-1], "COPY") {
		if f := strings.Fields(cp); len(f) == 3 && strings.HasPrefix(f[0], "--from=") {
			return f[2]
		}
	}
	t.Fatal("Dockerfile: the runtime stage copies no binary from the builder")
	return ""
}

// TestDockerfile: a static ssenode built with the module's Go version,
// run as non-root on a small image, health-checked by itself, stopped with
// SIGTERM.
func TestDockerfile(t *testing.T) {
	stages := dockerfile(t)
	builder, runtime := stages[0], stages[len(stages)-1]

	gover := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(readFile(t, "go.mod"))
	if gover == nil {
		t.Fatal("go.mod: no go directive")
	}
	from := strings.Fields(builder[0].args)
	if len(from) != 3 || from[0] != "golang:"+string(gover[1]) || !strings.EqualFold(from[1], "AS") {
		t.Errorf("builder FROM %q, want golang:%s AS <name> (go.mod's Go)", builder[0].args, gover[1])
	}
	build := dockerBuildCommand(t)
	for _, want := range []string{"CGO_ENABLED=0 go build ", " -trimpath ", ` -ldflags "-s -w -X main.version=${VERSION}" `} {
		if !strings.Contains(" "+build+" ", want) {
			t.Errorf("build command %q lacks %q", build, strings.TrimSpace(want))
		}
	}
	if !strings.HasSuffix(build, " ./cmd/ssenode") || !dockerOutput.MatchString(build) {
		t.Errorf("build command %q does not build ./cmd/ssenode into -o <path>", build)
	}

	base := strings.Fields(runtime[0].args)[0]
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" && !strings.HasPrefix(base, "alpine:") {
		t.Errorf("runtime image %q, want distroless static, scratch or alpine", base)
	}
	users := find(runtime, "USER")
	if len(users) == 0 {
		t.Error("the runtime stage sets no USER: it would run as root")
	}
	for _, u := range users {
		if name, _, _ := strings.Cut(u, ":"); name == "root" || name == "0" {
			t.Errorf("USER %s: runs as root", u)
		}
	}
	if e := find(runtime, "EXPOSE"); len(e) != 1 || !slices.Equal(strings.Fields(e[0]), []string{"8080", "9090"}) {
		t.Errorf("EXPOSE %q, want 8080 9090", e)
	}
	if s := find(runtime, "STOPSIGNAL"); !slices.Equal(s, []string{"SIGTERM"}) {
		t.Errorf("STOPSIGNAL %q, want SIGTERM (drain)", s)
	}
	bin := dockerBinary(t)
	hc := find(runtime, "HEALTHCHECK")
	if len(hc) != 1 || !strings.HasSuffix(hc[0], `CMD ["`+bin+`", "-healthcheck"]`) {
		t.Errorf("HEALTHCHECK %q, want CMD [%q, \"-healthcheck\"]", hc, bin)
	}
	if ep := find(runtime, "ENTRYPOINT"); !slices.Equal(ep, []string{`["` + bin + `"]`}) {
		t.Errorf("ENTRYPOINT %q, want [%q]", ep, bin)
	}
}

// dockerEnv returns the runtime stage's ENV as a map.
func dockerEnv(t testing.TB) map[string]string {
	t.Helper()
	stages := dockerfile(t)
	env := map[string]string{}
	for _, e := range find(stages[len(stages)-1], "ENV") {
		for _, kv := range strings.Fields(e) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("ENV %q: use KEY=value", e)
			}
			env[k] = v
		}
	}
	return env
}

// TestImageBinary builds ssenode with the Dockerfile's command and checks
// what the image relies on: a static binary (distroless has no libc), the
// -healthcheck probe of HEALTHCHECK, and environment variable names the
// binary knows.
func TestImageBinary(t *testing.T) {
	bin := ssenodeBinary(t)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("ssenode has a dynamic loader (PT_INTERP): not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("ssenode links %v: not static", libs)
	}
	f.Close()

	t.Run("version", func(t *testing.T) {
		if args := find(dockerfile(t)[0], "ARG"); !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "VERSION") }) {
			t.Errorf("builder stage ARG %q: no VERSION for the build command", args)
		}
		n := startNode(t, bin)
		st, body := get(t, "http://"+n.adminAddr+"/admin/v1/node", n.token)
		var rep struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(body, &rep); st != http.StatusOK || err != nil || rep.Version != imageVersion {
			t.Errorf("GET /admin/v1/node = %d %s: version %q, want the VERSION stamped at build, %q", st, body, rep.Version, imageVersion)
		}
	})

	t.Run("healthcheck", func(t *testing.T) {
		n := startNode(t, bin)
		_, port, _ := net.SplitHostPort(n.httpAddr)
		probe := func(httpAddr string) (string, error) {
			cmd := exec.Command(bin, "-healthcheck")
			cmd.Env = []string{"HTTP_ADDR=" + httpAddr}
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		// The image sets HTTP_ADDR=:8080: a wildcard host, probed on loopback.
		if out, err := probe(":" + port); err != nil {
			t.Errorf("ssenode -healthcheck on a ready node: %v: %s", err, out)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		var exit *exec.ExitError
		if out, err := probe(closed); !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "healthcheck") {
			t.Errorf("ssenode -healthcheck with nothing listening: %v: %q, want exit status 1 and the reason", err, out)
		}
	})

	t.Run("environment", func(t *testing.T) {
		out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits 0; usage on stderr
		known := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
			known[flagenv.Name("", m[1])] = true
		}
		if !known["REDIS_URL"] || !known["DRAIN_WINDOW"] {
			t.Fatalf("ssenode -h lists no REDIS_URL/DRAIN_WINDOW flags:\n%s", out)
		}
		check := func(where string, env map[string]string) {
			for k := range env {
				if !known[k] {
					t.Errorf("%s sets %s, which ssenode does not read", where, k)
				}
			}
		}
		check("docker-compose.yml node", loadCompose(t).Services["node"].Environment)
		env := dockerEnv(t)
		check("Dockerfile ENV", env)
		for _, want := range []struct{ key, port string }{{"HTTP_ADDR", "8080"}, {"ADMIN_ADDR", "9090"}} {
			if _, p, _ := net.SplitHostPort(env[want.key]); p != want.port {
				t.Errorf("Dockerfile ENV %s=%q, want port %s (EXPOSE)", want.key, env[want.key], want.port)
			}
		}
	})
}
