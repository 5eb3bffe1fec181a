package deploy

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the tests read. The
// compose CLIs validate the whole file against the schema
// (TestComposeCLIConfig); these tests check what the schema cannot.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image           string            `yaml:"image"`
	Build           string            `yaml:"build"`
	Command         []string          `yaml:"command"`
	Entrypoint      []string          `yaml:"entrypoint"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	Expose          []string          `yaml:"expose"`
	Volumes         []string          `yaml:"volumes"`
	Tmpfs           []string          `yaml:"tmpfs"`
	Profiles        []string          `yaml:"profiles"`
	DependsOn       yaml.Node         `yaml:"depends_on"`
	StopSignal      string            `yaml:"stop_signal"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Healthcheck     *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func loadCompose(t testing.TB) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(readFile(t, "docker-compose.yml"), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// dependsOn returns the services s waits for and the condition of each
// ("service_started" for the short list form).
func (s composeService) dependsOn(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		if err := s.DependsOn.Decode(&names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			out[n] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := s.DependsOn.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for n, d := range m {
			out[n] = d.Condition
		}
	default:
		t.Fatalf("depends_on: unexpected YAML kind %v", s.DependsOn.Kind)
	}
	return out
}

var variable = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\}`)

// interpolate replaces compose variables by their defaults, as with an
// empty environment; a required variable (${X:?msg}) becomes "<X>".
func interpolate(s string) string {
	return variable.ReplaceAllStringFunc(s, func(v string) string {
		m := variable.FindStringSubmatch(v)
		if m[2] == "?" {
			return "<" + m[1] + ">"
		}
		return m[3]
	})
}

// port is one entry of a service's short-syntax ports.
type port struct{ hostIP, published, target string }

func parsePort(t testing.TB, s string) port {
	t.Helper()
	s, _, _ = strings.Cut(interpolate(s), "/")
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 1:
		return port{target: parts[0]}
	case 2:
		return port{published: parts[0], target: parts[1]}
	case 3:
		return port{hostIP: parts[0], published: parts[1], target: parts[2]}
	}
	t.Fatalf("port %q: not [host_ip:]published:target", s)
	return port{}
}

// mount is one entry of a service's short-syntax volumes.
type mount struct {
	source, target string
	readOnly       bool
}

func (s composeService) mounts() []mount {
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		m := mount{source: parts[0]}
		if len(parts) > 1 {
			m.target = parts[1]
		}
		m.readOnly = len(parts) > 2 && strings.Contains(parts[2], "ro")
		out = append(out, m)
	}
	return out
}

// TestComposeServices: redis, node and lb always; Prometheus and Grafana
// only with the monitoring profile.
func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	var names []string
	for n := range c.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"grafana", "lb", "node", "prometheus", "redis"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	for n, s := range c.Services {
		want := []string(nil)
		if n == "prometheus" || n == "grafana" {
			want = []string{"monitoring"}
		}
		if !slices.Equal(s.Profiles, want) {
			t.Errorf("%s: profiles %v, want %v", n, s.Profiles, want)
		}
		if s.Image == "" {
			t.Errorf("%s: no image", n)
		}
		if strings.HasSuffix(s.Image, ":latest") || (!strings.Contains(s.Image, ":") && s.Build == "") {
			t.Errorf("%s: image %q is not pinned to a version", n, s.Image)
		}
	}
}

// TestComposeRedis: an append-only file fsynced every second, on a named
// volume, and a health check the nodes wait for.
func TestComposeRedis(t *testing.T) {
	c := loadCompose(t)
	r := c.Services["redis"]
	cmd := strings.Join(r.Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync everysec"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis command %q lacks %q", cmd, want)
		}
	}
	var data *mount
	for _, m := range r.mounts() {
		if m.target == "/data" {
			data = &m
		}
	}
	switch {
	case data == nil:
		t.Error("redis: no volume on /data (where the append-only file is written)")
	case strings.ContainsAny(data.source, "./"):
		t.Errorf("redis: /data is a bind mount of %q, want a named volume", data.source)
	default:
		if _, ok := c.Volumes[data.source]; !ok {
			t.Errorf("redis: volume %q is not declared under volumes:", data.source)
		}
	}
	if r.Healthcheck == nil || !slices.Equal(r.Healthcheck.Test, []string{"CMD", "redis-cli", "ping"}) {
		t.Errorf("redis healthcheck %+v, want redis-cli ping", r.Healthcheck)
	}
}

// TestComposeNode: stateless, reached only through lb, configured by
// environment, health-checked by its own binary, drained on stop.
func TestComposeNode(t *testing.T) {
	c := loadCompose(t)
	n := c.Services["node"]
	if n.Build != "." {
		t.Errorf("node build %q, want the repository's Dockerfile (.)", n.Build)
	}
	if len(n.Ports) > 0 {
		t.Errorf("node publishes %v; nodes are reached through lb only", n.Ports)
	}
	if len(n.Volumes) > 0 {
		t.Errorf("node has volumes %v; nodes are stateless", n.Volumes)
	}
	bin := dockerBinary(t)
	if n.Healthcheck == nil || !slices.Equal(n.Healthcheck.Test, []string{"CMD", bin, "-healthcheck"}) {
		t.Errorf("node healthcheck %+v, want [CMD %s -healthcheck]", n.Healthcheck, bin)
	}
	if got := n.dependsOn(t)["redis"]; got != "service_healthy" {
		t.Errorf("node depends on redis with condition %q, want service_healthy", got)
	}

	env := n.Environment
	if u := env["REDIS_URL"]; !strings.HasPrefix(u, "redis://redis:6379") {
		t.Errorf("REDIS_URL %q, want the redis service", u)
	}
	if m := variable.FindStringSubmatch(env["ADMIN_TOKEN"]); m == nil || m[1] != "ADMIN_TOKEN" || m[2] != "?" || m[3] == "" {
		t.Errorf("ADMIN_TOKEN %q, want ${ADMIN_TOKEN:?message}: a required value", env["ADMIN_TOKEN"])
	}
	for p := range strings.SplitSeq(interpolate(env["TRUSTED_PROXIES"]), ",") {
		if _, err := netip.ParsePrefix(strings.TrimSpace(p)); err != nil {
			t.Errorf("TRUSTED_PROXIES default: %v", err)
		}
	}
	drain, err := time.ParseDuration(interpolate(env["DRAIN_WINDOW"]))
	if err != nil {
		t.Fatalf("DRAIN_WINDOW default: %v", err)
	}
	grace, err := time.ParseDuration(interpolate(n.StopGracePeriod))
	if err != nil {
		t.Fatalf("stop_grace_period default: %v", err)
	}
	if grace <= drain {
		t.Errorf("stop_grace_period %v <= DRAIN_WINDOW %v: Docker's SIGKILL would cut the drain short", grace, drain)
	}
	if n.StopSignal != "SIGTERM" {
		t.Errorf("node stop_signal %q, want SIGTERM (drain)", n.StopSignal)
	}
}

// TestComposeLB: HAProxy publishes the public port only, never the admin
// port, and is configured from the one template.
func TestComposeLB(t *testing.T) {
	c := loadCompose(t)
	lb := c.Services["lb"]
	public := false
	for _, s := range lb.Ports {
		p := parsePort(t, s)
		switch {
		case p.target == "9090" || p.published == "9090":
			t.Errorf("lb publishes %q: the admin port never goes through the load balancer", s)
		case p.target == "8080" && p.hostIP == "":
			public = true
		case p.hostIP != "127.0.0.1":
			t.Errorf("lb publishes %q beyond the host's loopback; only 8080 is public", s)
		}
	}
	if !public {
		t.Errorf("lb ports %v: 8080 is not published", lb.Ports)
	}
	if !strings.HasPrefix(lb.Image, "haproxy:") {
		t.Errorf("lb image %q, want the official haproxy image", lb.Image)
	}

	tmplDir := lbTemplateMount(t, lb)
	script := lbScript(t, lb)
	if !strings.Contains(script, "sh "+tmplDir+"/render.sh ") {
		t.Errorf("lb entrypoint does not run %s/render.sh:\n%s", tmplDir, script)
	}
	servers := serverTemplate.FindStringSubmatch(script)
	if servers == nil {
		t.Fatalf("lb entrypoint has no server-template line:\n%s", script)
	}
	if servers[1] != "node" || servers[2] != "8080" {
		t.Errorf("server-template resolves %s:%s, want the node service on 8080", servers[1], servers[2])
	}
	for _, want := range []string{"resolvers docker", "init-addr none", " check"} {
		if !strings.Contains(servers[0], want) {
			t.Errorf("server-template line %q lacks %q", servers[0], want)
		}
	}
	// The local cluster renders the same template.
	if !strings.Contains(string(readFile(t, "deploy/cluster/cluster.sh")), "deploy/haproxy/haproxy.cfg.tmpl") {
		t.Error("deploy/cluster/cluster.sh no longer renders deploy/haproxy/haproxy.cfg.tmpl")
	}
}

var serverTemplate = regexp.MustCompile(`server-template \S+ \d+-\d+ ([a-z0-9-]+):(\d+)[^'"\n]*`)

// lbTemplateMount returns where lb mounts deploy/haproxy, read-only.
func lbTemplateMount(t testing.TB, lb composeService) string {
	t.Helper()
	for _, m := range lb.mounts() {
		if filepath.Clean(m.source) == "deploy/haproxy" {
			if !m.readOnly {
				t.Errorf("lb mounts deploy/haproxy read-write, want :ro")
			}
			return m.target
		}
	}
	t.Fatalf("lb does not mount ./deploy/haproxy: %v", lb.Volumes)
	return ""
}

// lbScript returns the shell script lb's entrypoint runs.
func lbScript(t testing.TB, lb composeService) string {
	t.Helper()
	e := lb.Entrypoint
	if len(e) != 3 || e[0] != "/bin/sh" || !strings.HasPrefix(e[1], "-") || !strings.Contains(e[1], "e") {
		t.Fatalf("lb entrypoint %q, want [/bin/sh -ec script]", e)
	}
	return e[2]
}

// TestComposeLBConfig runs lb's entrypoint script against the repository's
// deploy/haproxy, with HAProxy's check mode instead of HAProxy: the
// configuration compose renders must pass `haproxy -c` (init-addr none
// lets it through without Docker's DNS) and balance and check as the
// template says.
func TestComposeLBConfig(t *testing.T) {
	need(t, "haproxy")
	c := loadCompose(t)
	lb := c.Services["lb"]
	tmplDir := lbTemplateMount(t, lb)
	script := lbScript(t, lb)

	abs, err := filepath.Abs(filepath.Join(root, "deploy/haproxy"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	const run = "exec haproxy -W -db -f /tmp/haproxy.cfg"
	if strings.Count(script, run) != 1 {
		t.Fatalf("lb entrypoint does not end with %q:\n%s", run, script)
	}
	local := strings.ReplaceAll(script, tmplDir, abs)
	local = strings.Replace(local, run, "haproxy -c -q -f /tmp/haproxy.cfg", 1)
	local = strings.ReplaceAll(local, "/tmp/haproxy.cfg", cfg)
	cmd := exec.Command("/bin/sh", lb.Entrypoint[1], local)
	cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/sbin:"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lb entrypoint with haproxy -c: %v\n%s", err, out)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rendered := string(b)
	servers := serverTemplate.FindString(script)
	for _, want := range []string{"bind :8080", "balance leastconn", "option httpchk GET /readyz", "resolvers docker", "nameserver dns 127.0.0.11:53"} {
		if !strings.Contains(rendered, want) {
			t.Errorf("rendered configuration lacks %q", want)
		}
	}
	var backends int
	for _, l := range lines(rendered) {
		if l == servers {
			backends++
		}
		if strings.Contains(l, "@BIND@") || strings.Contains(l, "@STATS_BIND@") {
			if !strings.HasPrefix(l, "#") {
				t.Errorf("placeholder left in %q", l)
			}
		}
	}
	if backends != 2 {
		t.Errorf("the server-template line is in %d backends, want 2 (streams and nodes)", backends)
	}
}

// composeCLI is an installed compose command.
type composeCLI struct {
	name string   // for the subtest
	argv []string // the command before its arguments
	v1   bool     // docker-compose 1.x (Python; Debian's package)
}

// composeCLIs returns the compose commands installed: the docker CLI
// plugin (v2) and a standalone docker-compose (v1 from Debian, or v2).
func composeCLIs() []composeCLI {
	var out []composeCLI
	if p, err := exec.LookPath("docker"); err == nil {
		if exec.Command(p, "compose", "version").Run() == nil {
			out = append(out, composeCLI{name: "docker_compose", argv: []string{p, "compose"}})
		}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		v, _ := exec.Command(p, "version", "--short").Output()
		out = append(out, composeCLI{name: "docker-compose", argv: []string{p}, v1: strings.HasPrefix(strings.TrimSpace(string(v)), "1.")})
	}
	return out
}

// TestComposeCLIConfig validates docker-compose.yml with every compose CLI
// installed: `config` checks the schema and interpolation without an
// engine. ADMIN_TOKEN is required; the monitoring profile adds Prometheus
// and Grafana.
func TestComposeCLIConfig(t *testing.T) {
	clis := composeCLIs()
	if len(clis) == 0 {
		t.Skip("no docker compose or docker-compose installed (.ci/test.sh installs docker-compose)")
	}
	for _, cli := range clis {
		t.Run(cli.name, func(t *testing.T) {
			run := func(env []string, args ...string) (string, error) {
				argv := append(slices.Clone(cli.argv[1:]), "--project-name", "ssecluster")
				cmd := exec.Command(cli.argv[0], append(argv, args...)...)
				cmd.Dir = root
				// Only what a compose CLI needs to run and find its plugins:
				// no variable of the caller's may fill in the file's.
				cmd.Env = slices.Clone(env)
				for _, k := range []string{"PATH", "HOME", "DOCKER_CONFIG"} {
					if v, ok := os.LookupEnv(k); ok {
						cmd.Env = append(cmd.Env, k+"="+v)
					}
				}
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			token := []string{"ADMIN_TOKEN=t0ken"}
			if out, err := run(token, "config", "-q"); err != nil {
				t.Fatalf("config: %v\n%s", err, out)
			}
			out, err := run(nil, "config", "-q")
			if err == nil || !strings.Contains(out, "ADMIN_TOKEN") {
				t.Errorf("config without ADMIN_TOKEN: %v\n%s\nwant an error naming ADMIN_TOKEN", err, out)
			}
			cases := []struct {
				args []string
				want []string
			}{
				{[]string{"--profile", "monitoring", "config", "--services"}, []string{"grafana", "lb", "node", "prometheus", "redis"}},
			}
			// docker-compose 1.x lists every service, whatever the profile
			// (it applies profiles at `up`).
			if !cli.v1 {
				cases = append(cases, struct {
					args []string
					want []string
				}{[]string{"config", "--services"}, []string{"lb", "node", "redis"}})
			}
			for _, tt := range cases {
				out, err := run(token, tt.args...)
				if err != nil {
					t.Fatalf("%v: %v\n%s", tt.args, err, out)
				}
				got := lines(out)
				slices.Sort(got)
				if !slices.Equal(got, tt.want) {
					t.Errorf("%v = %v, want %v", tt.args, got, tt.want)
				}
			}
		})
	}
}
