package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// promConfig is the part of deploy/prometheus/prometheus.yml the tests read.
type promConfig struct {
	ScrapeConfigs []promScrapeConfig `yaml:"scrape_configs"`
}

type promScrapeConfig struct {
	JobName       string `yaml:"job_name"`
	MetricsPath   string `yaml:"metrics_path"`
	Authorization *struct {
		Type            string `yaml:"type"`
		CredentialsFile string `yaml:"credentials_file"`
	} `yaml:"authorization"`
	DNSSDConfigs []struct {
		Names []string `yaml:"names"`
		Type  string   `yaml:"type"`
		Port  int      `yaml:"port"`
	} `yaml:"dns_sd_configs"`
}

const promConfigPath = "deploy/prometheus/prometheus.yml"

// TestPrometheusConfig: one job scrapes every node's admin listener found
// through Docker's DNS, with the token file the compose service writes;
// promtool accepts the file.
func TestPrometheusConfig(t *testing.T) {
	raw := readFile(t, promConfigPath)
	var cfg promConfig
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", promConfigPath, err)
	}
	c := loadCompose(t)
	prom := c.Services["prometheus"]
	job := slices.IndexFunc(cfg.ScrapeConfigs, func(sc promScrapeConfig) bool { return len(sc.DNSSDConfigs) > 0 })
	if job < 0 {
		t.Fatalf("%s: no job with dns_sd_configs", promConfigPath)
	}
	sc := cfg.ScrapeConfigs[job]
	d := sc.DNSSDConfigs[0]
	if !slices.Equal(d.Names, []string{"node"}) || d.Type != "A" || d.Port != 9090 {
		t.Errorf("job %s: dns_sd_configs %+v, want names [node], type A, port 9090 (the admin listener)", sc.JobName, d)
	}
	if _, ok := c.Services[d.Names[0]]; !ok {
		t.Errorf("dns_sd name %q is no compose service", d.Names[0])
	}
	if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
		t.Errorf("job %s: metrics_path %q, want /metrics", sc.JobName, sc.MetricsPath)
	}
	a := sc.Authorization
	if a == nil || (a.Type != "" && a.Type != "Bearer") || a.CredentialsFile == "" {
		t.Fatalf("job %s: authorization %+v, want a Bearer credentials_file", sc.JobName, a)
	}
	// The compose service writes ADMIN_TOKEN into that file, on a tmpfs.
	script := strings.Join(prom.Entrypoint, " ")
	if !strings.Contains(script, `"$$ADMIN_TOKEN" > `+a.CredentialsFile) {
		t.Errorf("the prometheus service does not write $ADMIN_TOKEN to %s:\n%s", a.CredentialsFile, script)
	}
	if !slices.Contains(prom.Tmpfs, filepath.Dir(a.CredentialsFile)) {
		t.Errorf("prometheus tmpfs %v does not hold %s", prom.Tmpfs, a.CredentialsFile)
	}
	if !strings.HasPrefix(prom.Environment["ADMIN_TOKEN"], "${ADMIN_TOKEN:?") {
		t.Errorf("prometheus ADMIN_TOKEN %q, want the required ${ADMIN_TOKEN:?...}", prom.Environment["ADMIN_TOKEN"])
	}
	mounted := false
	for _, m := range prom.mounts() {
		if filepath.Clean(m.source) == filepath.Clean(promConfigPath) && strings.Contains(script, "--config.file="+m.target) {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("the prometheus service does not run with %s mounted as its --config.file", promConfigPath)
	}

	t.Run("promtool", func(t *testing.T) {
		promtool := need(t, "promtool")
		// promtool checks that the credentials file exists: point it at one.
		dir := t.TempDir()
		token := filepath.Join(dir, "admin_token")
		if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
			t.Fatal(err)
		}
		local := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(local, bytes.ReplaceAll(raw, []byte(a.CredentialsFile), []byte(token)), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "config", local).CombinedOutput(); err != nil {
			t.Fatalf("promtool check config: %v\n%s", err, out)
		}
	})
}

// grafanaDashboard is the part of a dashboard JSON the tests read.
type grafanaDashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID      string `json:"refId"`
			Expr       string `json:"expr"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

const dashboardPath = "deploy/grafana/dashboards/ssecluster.json"

func loadDashboard(t testing.TB) grafanaDashboard {
	t.Helper()
	var d grafanaDashboard
	dec := json.NewDecoder(bytes.NewReader(readFile(t, dashboardPath)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// TestGrafanaProvisioning: the datasource points at the compose Prometheus,
// the dashboard provider at the mounted folder, and every panel queries
// that datasource.
func TestGrafanaProvisioning(t *testing.T) {
	var ds struct {
		Datasources []struct {
			UID, Type, URL string
			IsDefault      bool `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/grafana/provisioning/datasources/prometheus.yml"), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Fatalf("datasources %+v, want one prometheus at http://prometheus:9090", ds.Datasources)
	}
	uid := ds.Datasources[0].UID

	var prov struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/grafana/provisioning/dashboards/ssecluster.yml"), &prov); err != nil {
		t.Fatal(err)
	}
	c := loadCompose(t)
	g := c.Services["grafana"]
	mountOf := map[string]string{}
	for _, m := range g.mounts() {
		mountOf[filepath.Clean(m.source)] = m.target
	}
	if mountOf["deploy/grafana/provisioning"] != "/etc/grafana/provisioning" {
		t.Errorf("grafana mounts %v: deploy/grafana/provisioning is not /etc/grafana/provisioning", g.Volumes)
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Options.Path != mountOf["deploy/grafana/dashboards"] {
		t.Errorf("dashboard provider %+v does not read the mounted deploy/grafana/dashboards (%q)", prov.Providers, mountOf["deploy/grafana/dashboards"])
	}
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != mountOf["deploy/grafana/dashboards"]+"/"+filepath.Base(dashboardPath) {
		t.Errorf("home dashboard %q is not the mounted %s", home, dashboardPath)
	}

	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard: uid %q, title %q, %d panels", d.UID, d.Title, len(d.Panels))
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.UID != uid {
			t.Errorf("panel %q: datasource %q, want the provisioned %q", p.Title, p.Datasource.UID, uid)
		}
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q: gridPos %+v off Grafana's 24 columns", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" || (q.Datasource.UID != "" && q.Datasource.UID != uid) {
				t.Errorf("panel %q query %s: expr %q, datasource %q", p.Title, q.RefID, q.Expr, q.Datasource.UID)
			}
		}
	}
	// What the issue asks the dashboard to show.
	var all strings.Builder
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			all.WriteString(q.Expr + "\n")
		}
	}
	for _, want := range []string{"ssecluster_connections", "ssecluster_connections_opened_total", "ssecluster_connections_closed_total",
		"histogram_quantile(0.5,", "histogram_quantile(0.99,", "ssecluster_push_latency_seconds_bucket", "ssecluster_deliveries_total"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no dashboard query uses %s", want)
		}
	}
}

// promqlWords are PromQL's keywords and the functions the dashboard may
// use; every other word of a query must be a metric or label name.
var promqlWords = map[string]bool{
	"sum": true, "count": true, "min": true, "max": true, "avg": true, "topk": true, "bottomk": true, "quantile": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"rate": true, "irate": true, "increase": true, "delta": true, "deriv": true, "histogram_quantile": true,
	"vector": true, "scalar": true, "abs": true, "clamp_min": true, "clamp_max": true, "max_over_time": true,
	"min_over_time": true, "avg_over_time": true, "label_replace": true, "time": true, "timestamp": true,
}

var (
	grafanaVar   = regexp.MustCompile(`\$\{?__[a-z_]+\}?`)
	quoted       = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	braces       = regexp.MustCompile(`\{[^}]*\}`)
	brackets     = regexp.MustCompile(`\[[^\]]*\]`)
	selector     = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcher      = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	grouping     = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	identifier   = regexp.MustCompile(`\b[a-zA-Z_:][a-zA-Z0-9_:]*\b`)
	plainAltern  = regexp.MustCompile(`^[a-z_]+(\|[a-z_]+)*$`)
	histSuffixes = []string{"_bucket", "_sum", "_count"}
)

// scrape returns the metric families a node's /metrics serves.
func scrape(t *testing.T, n *testNode) map[string]*dto.MetricFamily {
	t.Helper()
	st, body := get(t, "http://"+n.adminAddr+"/metrics", n.token)
	if st != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", st, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// family returns the family that serves series name (histogram series
// carry suffixes).
func family(fams map[string]*dto.MetricFamily, name string) *dto.MetricFamily {
	if f, ok := fams[name]; ok {
		return f
	}
	for _, s := range histSuffixes {
		if base, ok := strings.CutSuffix(name, s); ok {
			if f, ok := fams[base]; ok && f.GetType() == dto.MetricType_HISTOGRAM {
				return f
			}
		}
	}
	return nil
}

// labels returns a family's label names and the values each takes.
func labels(f *dto.MetricFamily) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if out[l.GetName()] == nil {
				out[l.GetName()] = map[string]bool{}
			}
			out[l.GetName()][l.GetValue()] = true
		}
	}
	if f.GetType() == dto.MetricType_HISTOGRAM {
		out["le"] = map[string]bool{}
	}
	return out
}

// TestDashboardQueries checks every dashboard query: promtool parses each
// as a recording rule, and against a real node's /metrics each metric
// exists, each label it matches or groups by exists, and each label value
// it names is one the node serves (a close reason typed wrong would
// otherwise draw a flat zero).
func TestDashboardQueries(t *testing.T) {
	d := loadDashboard(t)
	type query struct{ name, record, expr string }
	var queries []query
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			queries = append(queries, query{
				name:   fmt.Sprintf("panel %q query %s", p.Title, q.RefID),
				record: fmt.Sprintf("dashboard:panel%d_%s", p.ID, strings.ToLower(q.RefID)),
				expr:   grafanaVar.ReplaceAllString(q.Expr, "1m"),
			})
		}
	}

	t.Run("promtool", func(t *testing.T) {
		promtool := need(t, "promtool")
		var rules []map[string]string
		for _, q := range queries {
			rules = append(rules, map[string]string{"record": q.record, "expr": q.expr})
		}
		b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "dashboard.rules.yml")
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
			t.Fatalf("promtool check rules (the dashboard's queries): %v\n%s", err, out)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		// On Redis, as in compose: some series (broker errors) exist only
		// on a node with a store.
		n := startNode(t, ssenodeBinary(t), "REDIS_URL="+pubsubtest.StartRedis(t).URL())
		// One refused request, so the rejected-requests series (labelled by
		// what was refused, none until then) exists.
		if st, body := get(t, "http://"+n.httpAddr+"/v1/events", ""); st != http.StatusBadRequest {
			t.Fatalf("GET /v1/events without a topic = %d %s, want 400", st, body)
		}
		fams := scrape(t, n)
		for _, q := range queries {
			checkQuery(t, q.name, q.expr, fams)
		}
	})
}

// checkQuery checks one PromQL expression's names against fams.
func checkQuery(t *testing.T, name, expr string, fams map[string]*dto.MetricFamily) {
	t.Helper()
	// Labels of the metrics the query reads, plus the target labels
	// Prometheus adds.
	known := map[string]bool{"instance": true, "job": true}
	var metrics int
	for _, m := range selector.FindAllStringSubmatch(expr, -1) {
		f := family(fams, m[1])
		if f == nil {
			continue // reported below with every other unknown word
		}
		ls := labels(f)
		for _, mm := range matcher.FindAllStringSubmatch(m[2], -1) {
			label, op, value := mm[1], mm[2], mm[3]
			vals, ok := ls[label]
			if !ok {
				t.Errorf("%s: %s has no label %q", name, m[1], label)
				continue
			}
			if (op == "=" || op == "=~") && plainAltern.MatchString(value) {
				for v := range strings.SplitSeq(value, "|") {
					if !vals[v] {
						t.Errorf("%s: %s{%s} never takes the value %q", name, m[1], label, v)
					}
				}
			}
		}
	}
	// The rest: no strings, matchers or ranges; words are metric names,
	// PromQL's words and the labels of grouping clauses.
	rest := quoted.ReplaceAllString(expr, `""`)
	rest = braces.ReplaceAllString(rest, "")
	rest = brackets.ReplaceAllString(rest, "")
	for _, w := range identifier.FindAllString(grouping.ReplaceAllString(rest, "$1"), -1) {
		if promqlWords[w] {
			continue
		}
		f := family(fams, w)
		if f == nil {
			t.Errorf("%s: %q is no metric a node serves (nor a PromQL word this test knows)", name, w)
			continue
		}
		metrics++
		for l := range labels(f) {
			known[l] = true
		}
	}
	if metrics == 0 {
		t.Errorf("%s: %q reads no metric", name, expr)
	}
	for _, g := range grouping.FindAllStringSubmatch(rest, -1) {
		for l := range strings.SplitSeq(g[2], ",") {
			if l = strings.TrimSpace(l); l != "" && !known[l] {
				t.Errorf("%s: %s (%s): no metric of the query has the label %q", name, g[1], g[2], l)
			}
		}
	}
}
