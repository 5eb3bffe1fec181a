package deploy

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ssecluster/ssecluster/deploy/cluster/clustertest"
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
	Restart         string            `yaml:"restart"`
	Healthcheck     *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func loadCompose(t testing.TB) composeFile {
	t.Helper()
	return loadComposeFile(t, "docker-compose.yml")
}

// loadComposeFile reads one compose file of the repository as it is
// written (an override file alone, not merged).
func loadComposeFile(t testing.TB, path string) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(readFile(t, path), &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// dependsOn returns the services s waits for and the condition of each
// ("service_started" for the short list form).
func (s composeService) dependsOn(t testing.TB) map[string]string {
	t.Helper()
	return dependsOn(t, s.DependsOn)
}

// dependsOn decodes a depends_on entry, short or long form.
func dependsOn(t testing.TB, n yaml.Node) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch n.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			out[n] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := n.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for name, d := range m {
			out[name] = d.Condition
		}
	default:
		t.Fatalf("depends_on: unexpected YAML kind %v", n.Kind)
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

// composeTopologies are the Redis topologies beside docker-compose.yml's
// single Redis: override files (docker-compose.yml's header has the
// commands) that add their servers and point the nodes at them. Profiles
// could not do it: the single-Redis node would start beside them.
var composeTopologies = []struct {
	file   string
	urlVar string // the node's variable that selects the topology
}{
	{sentinelCompose, "REDIS_SENTINEL_URL"},
	{clusterCompose, "REDIS_CLUSTER_URL"},
}

const (
	sentinelCompose = "deploy/redis/docker-compose.sentinel.yml"
	clusterCompose  = "deploy/redis/docker-compose.redis-cluster.yml"
)

// TestComposeTopologies: each override file is documented, runs the single
// Redis's image on named, declared volumes, health-checks its servers and
// gives the nodes exactly one topology variable (REDIS_URL emptied: empty
// is unset).
func TestComposeTopologies(t *testing.T) {
	base := loadCompose(t)
	header := string(readFile(t, "docker-compose.yml"))
	image := base.Services["redis"].Image
	for _, tp := range composeTopologies {
		t.Run(filepath.Base(tp.file), func(t *testing.T) {
			if want := "export COMPOSE_FILE=docker-compose.yml:" + tp.file; !strings.Contains(header, want) {
				t.Errorf("docker-compose.yml's header lacks %q", want)
			}
			o := loadComposeFile(t, tp.file)
			for n, s := range o.Services {
				_, inBase := base.Services[n]
				switch {
				case inBase && s.Image != "":
					t.Errorf("%s: overrides docker-compose.yml's image with %q", n, s.Image)
				case !inBase && s.Image != image:
					t.Errorf("%s: image %q, want docker-compose.yml's Redis image %q", n, s.Image, image)
				}
				if len(s.Profiles) > 0 {
					t.Errorf("%s: profiles %v; the override file is the switch", n, s.Profiles)
				}
				if !inBase && s.Restart != "no" && s.Healthcheck == nil {
					t.Errorf("%s: no healthcheck for what depends on it to wait for", n)
				}
				for _, m := range s.mounts() {
					if strings.ContainsAny(m.source, "./") {
						t.Errorf("%s: bind mount %q; the override needs no file of the checkout", n, m.source)
					} else if _, ok := o.Volumes[m.source]; !ok {
						t.Errorf("%s: volume %q is not declared under the override's volumes:", n, m.source)
					}
				}
			}
			if cmd := o.Services["redis"].Command; !strings.Contains(strings.Join(cmd, " "), "--appendonly yes --appendfsync everysec") {
				t.Errorf("redis command %q drops docker-compose.yml's append-only file", cmd)
			}
			env := o.Services["node"].Environment
			if v, ok := env["REDIS_URL"]; !ok || v != "" {
				t.Errorf("node REDIS_URL %q (set: %v), want it emptied: one topology variable at a time", v, ok)
			}
			for _, other := range composeTopologies {
				if v := env[other.urlVar]; (other.urlVar == tp.urlVar) != (v != "") {
					t.Errorf("node %s = %q", other.urlVar, v)
				}
			}
			if _, err := strconv.Atoi(interpolate(env["PUBLISH_WAIT_REPLICAS"])); err != nil {
				t.Errorf("PUBLISH_WAIT_REPLICAS default: %v", err)
			}
			if _, err := time.ParseDuration(interpolate(env["PUBLISH_WAIT_TIMEOUT"])); err != nil {
				t.Errorf("PUBLISH_WAIT_TIMEOUT default: %v", err)
			}
		})
	}
}

// seedAddrs returns the addresses of a go-redis failover or cluster URL
// (the host, then every addr parameter) and its query.
func seedAddrs(t testing.TB, raw string) ([]string, url.Values) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "redis" || u.Host == "" {
		t.Fatalf("%q: not a redis:// URL with a host (%v)", raw, err)
	}
	q := u.Query()
	return append([]string{u.Host}, q["addr"]...), q
}

// servicesWith returns the sorted names of the services whose command holds
// arg.
func servicesWith(c composeFile, arg string) []string {
	var out []string
	for n, s := range c.Services {
		if strings.Contains(strings.Join(s.Command, " "), arg) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// script returns a [/bin/sh -ec script] command's script.
func script(t testing.TB, name string, cmd []string) string {
	t.Helper()
	if len(cmd) != 3 || cmd[0] != "/bin/sh" || cmd[1] != "-ec" {
		t.Fatalf("%s: command %q, want [/bin/sh -ec script]", name, cmd)
	}
	return cmd[2]
}

var sentinelMonitor = regexp.MustCompile(`sentinel monitor (\S+) redis 6379 (\d+)`)

// TestComposeSentinel: the base's redis is the first master, two replicas
// follow it, three sentinels watch it with a majority quorum from a
// configuration file they can rewrite and keep, and the nodes ask the
// sentinels, once all are healthy.
func TestComposeSentinel(t *testing.T) {
	o := loadComposeFile(t, sentinelCompose)
	replicas, sentinels := servicesWith(o, "--replicaof"), servicesWith(o, "--sentinel")
	if len(replicas) != 2 || len(sentinels) != 3 {
		t.Fatalf("replicas %v, sentinels %v; want 2 and 3", replicas, sentinels)
	}
	master := strings.Join(o.Services["redis"].Command, " ")
	if !strings.Contains(master, "--replica-announce-ip redis") || strings.Contains(master, "--replicaof") {
		t.Errorf("redis command %q: want the first master, announcing its name", master)
	}
	for _, n := range replicas {
		s := o.Services[n]
		cmd := strings.Join(s.Command, " ")
		for _, want := range []string{"--replicaof redis 6379", "--replica-announce-ip " + n, "--appendonly yes"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s: command %q lacks %q", n, cmd, want)
			}
		}
		if s.Healthcheck == nil || !slices.Equal(s.Healthcheck.Test, []string{"CMD", "redis-cli", "ping"}) {
			t.Errorf("%s: healthcheck %+v, want redis-cli ping", n, s.Healthcheck)
		}
		if got := s.dependsOn(t)["redis"]; got != "service_healthy" {
			t.Errorf("%s: depends on redis with %q, want service_healthy", n, got)
		}
	}

	var name string
	for _, n := range sentinels {
		s := o.Services[n]
		sh := script(t, n, s.Command)
		m := sentinelMonitor.FindStringSubmatch(sh)
		if m == nil {
			t.Fatalf("%s: no 'sentinel monitor NAME redis 6379 QUORUM' in\n%s", n, sh)
		}
		if q, _ := strconv.Atoi(m[2]); q <= len(sentinels)/2 || q > len(sentinels) {
			t.Errorf("%s: quorum %d of %d sentinels, want a majority", n, q, len(sentinels))
		}
		if name == "" {
			name = m[1]
		} else if m[1] != name {
			t.Errorf("%s: monitors %q, the others %q", n, m[1], name)
		}
		for _, want := range []string{
			"if [ ! -f /data/sentinel.conf ]", // written once: the sentinel keeps what it learns there
			"'port 26379'", "sentinel resolve-hostnames yes", "sentinel announce-hostnames yes",
			"sentinel announce-ip $$SENTINEL_HOST",
			"exec docker-entrypoint.sh redis-server /data/sentinel.conf --sentinel",
		} {
			if !strings.Contains(sh, want) {
				t.Errorf("%s: script lacks %q:\n%s", n, want, sh)
			}
		}
		if s.Environment["SENTINEL_HOST"] != n {
			t.Errorf("%s: SENTINEL_HOST %q, want its service name", n, s.Environment["SENTINEL_HOST"])
		}
		data := false
		for _, m := range s.mounts() {
			data = data || (m.target == "/data" && !m.readOnly)
		}
		if !data {
			t.Errorf("%s: no writable volume on /data for its configuration file", n)
		}
		if s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "sentinel ckquorum "+name) {
			t.Errorf("%s: healthcheck %+v, want sentinel ckquorum %s", n, s.Healthcheck, name)
		}
		if got := s.dependsOn(t)["redis"]; got != "service_healthy" {
			t.Errorf("%s: depends on redis with %q, want service_healthy (it resolves the name at start)", n, got)
		}
	}

	node := o.Services["node"]
	addrs, q := seedAddrs(t, node.Environment["REDIS_SENTINEL_URL"])
	var want []string
	for _, n := range sentinels {
		want = append(want, n+":26379")
	}
	if !slices.Equal(addrs, want) || q.Get("master_name") != name {
		t.Errorf("REDIS_SENTINEL_URL: sentinels %v, master %q; want %v, %q", addrs, q.Get("master_name"), want, name)
	}
	deps := node.dependsOn(t)
	for _, n := range append(slices.Clone(sentinels), replicas...) {
		if deps[n] != "service_healthy" {
			t.Errorf("node depends on %s with %q, want service_healthy", n, deps[n])
		}
	}
}

var initServers = regexp.MustCompile(`servers="([^"]*)"`)

// TestComposeRedisCluster: six cluster servers (the base's redis first) on
// volumes of their own, announcing their names; a one-shot init that
// creates the cluster only when there is none and exits once it is ok; the
// nodes seeded with cluster servers, started after the init succeeded.
func TestComposeRedisCluster(t *testing.T) {
	o := loadComposeFile(t, clusterCompose)
	servers := servicesWith(o, "--cluster-enabled yes")
	if len(servers) != 6 || !slices.Contains(servers, "redis") {
		t.Fatalf("cluster servers %v, want six, redis among them", servers)
	}
	vols := map[string]string{}
	for _, n := range servers {
		s := o.Services[n]
		cmd := strings.Join(s.Command, " ")
		for _, want := range []string{"--appendonly yes", "--cluster-announce-hostname " + n, "--cluster-preferred-endpoint-type hostname"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s: command %q lacks %q", n, cmd, want)
			}
		}
		if n != "redis" && (s.Healthcheck == nil || !slices.Equal(s.Healthcheck.Test, []string{"CMD", "redis-cli", "ping"})) {
			t.Errorf("%s: healthcheck %+v, want redis-cli ping", n, s.Healthcheck)
		}
		for _, m := range s.mounts() {
			if m.target != "/data" {
				continue
			}
			if other, ok := vols[m.source]; ok || m.source == "redis-data" {
				t.Errorf("%s: /data on %q, shared with %q (or the single Redis's)", n, m.source, other)
			}
			vols[m.source] = n
		}
	}
	if len(vols) != len(servers) {
		t.Errorf("volumes on /data %v, want one per server (nodes.conf and the append-only file)", vols)
	}

	init := o.Services["redis-cluster-init"]
	sh := script(t, "redis-cluster-init", init.Command)
	m := initServers.FindStringSubmatch(sh)
	if m == nil {
		t.Fatalf("redis-cluster-init: no servers=\"...\" list in\n%s", sh)
	}
	var want []string
	for _, n := range servers {
		want = append(want, n+":6379")
	}
	listed := strings.Fields(m[1])
	slices.Sort(listed)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("redis-cluster-init creates %v, want %v", listed, want)
	}
	create := strings.Index(sh, "redis-cli --cluster create $$servers --cluster-replicas 1 --cluster-yes")
	exists := strings.Index(sh, "cluster_slots_assigned:16384")
	if create < 0 || exists < 0 || exists > create || !strings.Contains(sh, "cluster_state:ok") {
		t.Errorf("redis-cluster-init: want a check for an existing cluster, then --cluster create "+
			"--cluster-replicas 1 --cluster-yes, then a wait for cluster_state:ok:\n%s", sh)
	}
	if init.Restart != "no" {
		t.Errorf("redis-cluster-init: restart %q, want \"no\" (one shot)", init.Restart)
	}
	deps := init.dependsOn(t)
	for _, n := range servers {
		if deps[n] != "service_healthy" {
			t.Errorf("redis-cluster-init depends on %s with %q, want service_healthy", n, deps[n])
		}
	}

	node := o.Services["node"]
	if got := node.dependsOn(t)["redis-cluster-init"]; got != "service_completed_successfully" {
		t.Errorf("node depends on redis-cluster-init with %q, want service_completed_successfully", got)
	}
	addrs, _ := seedAddrs(t, node.Environment["REDIS_CLUSTER_URL"])
	for _, a := range addrs {
		if !slices.Contains(want, a) {
			t.Errorf("REDIS_CLUSTER_URL seed %s is not a cluster server (%v)", a, want)
		}
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
			for _, tp := range composeTopologies {
				composeTopologyConfig(t, run, tp.file, tp.urlVar)
			}
		})
	}
}

// renderedCompose is the part of `config`'s output (the files merged) the
// topology checks read; both CLI versions render these fields alike but
// for volumes (v1: strings, v2: mappings).
type renderedCompose struct {
	Services map[string]struct {
		Environment map[string]string `yaml:"environment"`
		DependsOn   yaml.Node         `yaml:"depends_on"`
		Volumes     []yaml.Node       `yaml:"volumes"`
	} `yaml:"services"`
}

// composeTopologyConfig validates docker-compose.yml with the override file
// through a compose CLI (run) and checks the merge: every service listed,
// the node's environment and waits are the base's with the override's on
// top, and the override's /data volume of redis replaces the base's.
func composeTopologyConfig(t *testing.T, run func(env []string, args ...string) (string, error), file, urlVar string) {
	t.Helper()
	token := []string{"ADMIN_TOKEN=t0ken"}
	base, over := loadCompose(t), loadComposeFile(t, file)
	files := []string{"-f", "docker-compose.yml", "-f", file}
	args := append(slices.Clone(files), "--profile", "monitoring", "config", "--services")
	out, err := run(token, args...)
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	var want []string
	for n := range base.Services {
		want = append(want, n)
	}
	for n := range over.Services {
		if !slices.Contains(want, n) {
			want = append(want, n)
		}
	}
	slices.Sort(want)
	got := lines(out)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%v = %v, want %v", args, got, want)
	}

	args = append(slices.Clone(files), "config")
	out, err = run(token, args...)
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	var r renderedCompose
	if err := yaml.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	node := r.Services["node"]
	if node.Environment["REDIS_URL"] != "" || node.Environment[urlVar] != over.Services["node"].Environment[urlVar] ||
		node.Environment["ADMIN_TOKEN"] != "t0ken" {
		t.Errorf("%s: node environment %v, want the base's with REDIS_URL empty and %s from the override", file, node.Environment, urlVar)
	}
	deps := dependsOn(t, node.DependsOn)
	wantDeps := base.Services["node"].dependsOn(t)
	maps.Copy(wantDeps, over.Services["node"].dependsOn(t))
	if !maps.Equal(deps, wantDeps) {
		t.Errorf("%s: node depends_on %v, want %v", file, deps, wantDeps)
	}
	wantData := ""
	for _, s := range []composeService{base.Services["redis"], over.Services["redis"]} {
		for _, m := range s.mounts() {
			if m.target == "/data" {
				wantData = m.source
			}
		}
	}
	var data []string
	for _, v := range r.Services["redis"].Volumes {
		var source, target string
		switch v.Kind {
		case yaml.ScalarNode:
			parts := strings.Split(v.Value, ":")
			source, target = parts[0], parts[min(1, len(parts)-1)]
		case yaml.MappingNode:
			var m struct{ Source, Target string }
			if err := v.Decode(&m); err != nil {
				t.Fatal(err)
			}
			source, target = m.Source, m.Target
		}
		if target == "/data" {
			data = append(data, source)
		}
	}
	if !slices.Equal(data, []string{wantData}) {
		t.Errorf("%s: redis mounts %v on /data, want %s only", file, data, wantData)
	}
}

// freePort returns a loopback TCP port nothing listens on now.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// startProcess runs a server of the test in the background, its output in
// a log whose tail a failure shows, and kills it when the test ends.
func startProcess(t *testing.T, env []string, argv ...string) {
	t.Helper()
	var logs safeBuffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			l := lines(logs.String())
			t.Logf("%s (last lines):\n%s", argv[0], strings.Join(l[max(0, len(l)-10):], "\n"))
		}
	})
}

// startComposeRedis runs a service's redis-server command on a free
// loopback port in its own directory and waits for PING: the command line
// of the file, on this machine's redis-server.
func startComposeRedis(t *testing.T, cli string, s composeService, extra ...string) string {
	t.Helper()
	if len(s.Command) == 0 || s.Command[0] != "redis-server" {
		t.Fatalf("command %q is not redis-server's", s.Command)
	}
	port := freePort(t)
	args := append(slices.Clone(s.Command), "--port", port, "--bind", "127.0.0.1", "--dir", t.TempDir(), "--save", "")
	startProcess(t, nil, append(args, extra...)...)
	clustertest.Eventually(t, 10*time.Second, "redis-server on "+port, func() bool {
		out, err := exec.Command(cli, "-p", port, "ping").Output()
		return err == nil && strings.TrimSpace(string(out)) == "PONG"
	})
	return port
}

// unescape undoes compose's $$ (the scripts use no compose variable).
func unescape(t testing.TB, script string) string {
	t.Helper()
	if m := variable.FindString(strings.ReplaceAll(script, "$$", "")); m != "" {
		t.Fatalf("script interpolates %s: escape it as $$", m)
	}
	return strings.ReplaceAll(script, "$$", "$")
}

// hostShim writes an executable bash script NAME into dir: it runs REAL
// with every "-h SERVICE" and "SERVICE:6379" argument turned into the
// test's 127.0.0.1 port of that service (Docker's DNS, here).
func hostShim(t testing.TB, dir, name, real string, ports map[string]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("#!/usr/bin/env bash\ndeclare -A port=(")
	for n, p := range ports {
		fmt.Fprintf(&b, "[%s]=%s ", n, p)
	}
	b.WriteString(")\nargs=()\nwhile (($#)); do\n\tcase \"$1\" in\n" +
		"\t-h) args+=(-h 127.0.0.1 -p \"${port[$2]:?unknown host $2}\"); shift 2 ;;\n" +
		"\t*:6379) args+=(\"127.0.0.1:${port[${1%:6379}]:?unknown host $1}\"); shift ;;\n" +
		"\t*) args+=(\"$1\"); shift ;;\n\tesac\ndone\nexec " + real + " \"${args[@]}\"\n")
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestComposeRedisClusterInit runs the six servers' command lines on this
// machine's redis-server and redis-cluster-init's script against them,
// with the service names resolved by a redis-cli stand-in: it creates the
// cluster and exits 0 once cluster_state is ok everywhere; run again it
// leaves the cluster as it is and exits 0.
func TestComposeRedisClusterInit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six redis-server processes; skipped with -short")
	}
	need(t, "redis-server")
	cli := need(t, "redis-cli")
	o := loadComposeFile(t, clusterCompose)
	ports := map[string]string{}
	for _, n := range servicesWith(o, "--cluster-enabled yes") {
		// The bus port is port+10000 in the containers; here a free one.
		ports[n] = startComposeRedis(t, cli, o.Services[n], "--cluster-port", freePort(t))
	}
	bin := t.TempDir()
	hostShim(t, bin, "redis-cli", cli, ports)
	sh := unescape(t, script(t, "redis-cluster-init", o.Services["redis-cluster-init"].Command))
	run := func() string {
		cmd := exec.Command("/bin/sh", "-ec", sh)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cluster-init: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := run(); !strings.Contains(out, "[OK] All 16384 slots covered") || strings.Contains(out, "exists already") {
		t.Errorf("first run did not create the cluster:\n%s", out)
	}
	for n, p := range ports {
		info, _ := exec.Command(cli, "-p", p, "cluster", "info").Output()
		if !strings.Contains(string(info), "cluster_state:ok") || !strings.Contains(string(info), "cluster_known_nodes:6") {
			t.Errorf("%s after the init:\n%s", n, info)
		}
	}
	if out := run(); !strings.Contains(out, "exists already") || strings.Contains(out, "--cluster create") {
		t.Errorf("second run:\n%s\nwant the existing cluster left alone", out)
	}
}

// TestComposeSentinelScript runs the master's command line and each
// sentinel's script (its /data a directory of the test, the entrypoint a
// stand-in that puts the test's ports in the configuration) on this
// machine's redis-server, and waits until every sentinel's own
// healthcheck passes: the three find each other and the master and can
// authorize a failover; each rewrote its configuration file.
func TestComposeSentinelScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and three sentinels; skipped with -short")
	}
	need(t, "redis-server")
	cli := need(t, "redis-cli")
	o := loadComposeFile(t, sentinelCompose)
	master := startComposeRedis(t, cli, o.Services["redis"])
	bin := t.TempDir()
	entrypoint := filepath.Join(bin, "docker-entrypoint.sh")
	// docker-entrypoint.sh redis-server CONF --sentinel
	stand := "#!/usr/bin/env bash\nset -e\nshift\n" +
		"sed -i -e \"s/^port 26379$/port $TEST_PORT/\" -e \"s/ redis 6379 / 127.0.0.1 " + master + " /\" " +
		"-e \"s/^sentinel announce-ip .*/sentinel announce-ip 127.0.0.1/\" \"$1\"\n" +
		"echo 'bind 127.0.0.1' >> \"$1\"\nexec redis-server \"$@\"\n"
	if err := os.WriteFile(entrypoint, []byte(stand), 0o755); err != nil {
		t.Fatal(err)
	}
	type sentinel struct{ name, port, conf, health string }
	var all []sentinel
	for _, n := range servicesWith(o, "--sentinel") {
		s := o.Services[n]
		data, port := t.TempDir(), freePort(t)
		sh := unescape(t, script(t, n, s.Command))
		sh = strings.ReplaceAll(sh, "/data/", data+"/")
		sh = strings.ReplaceAll(sh, "exec docker-entrypoint.sh ", "exec "+entrypoint+" ")
		env := []string{"TEST_PORT=" + port}
		for k, v := range s.Environment {
			env = append(env, k+"="+v)
		}
		startProcess(t, env, "/bin/sh", "-ec", sh)
		test := s.Healthcheck.Test
		if len(test) != 2 || test[0] != "CMD-SHELL" {
			t.Fatalf("%s: healthcheck %q, want [CMD-SHELL command]", n, test)
		}
		all = append(all, sentinel{n, port, filepath.Join(data, "sentinel.conf"), strings.ReplaceAll(test[1], "-p 26379", "-p "+port)})
	}
	for _, s := range all {
		clustertest.Eventually(t, 30*time.Second, s.name+"'s healthcheck", func() bool {
			return exec.Command("/bin/sh", "-c", s.health).Run() == nil
		})
		if b, err := os.ReadFile(s.conf); err != nil || !strings.Contains(string(b), "sentinel myid") {
			t.Errorf("%s: %s not rewritten by the sentinel (%v)", s.name, s.conf, err)
		}
	}
}
