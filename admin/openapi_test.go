package admin_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/ssecluster/ssecluster/admin"
	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// flakyRegistry fails the calls of the API's handlers while down.
type flakyRegistry struct {
	admin.Registry
	down atomic.Bool
}

func (f *flakyRegistry) Nodes(ctx context.Context) ([]admin.Entry, error) {
	if f.down.Load() {
		return nil, admin.ErrRegistryUnavailable
	}
	return f.Registry.Nodes(ctx)
}

func (f *flakyRegistry) Topics(ctx context.Context) ([]admin.NodeTopics, error) {
	if f.down.Load() {
		return nil, admin.ErrRegistryUnavailable
	}
	return f.Registry.Topics(ctx)
}

func (f *flakyRegistry) Send(ctx context.Context, id string, c admin.Command, ttl time.Duration) error {
	if f.down.Load() {
		return admin.ErrRegistryUnavailable
	}
	return f.Registry.Send(ctx, id, c, ttl)
}

func loadDoc(t testing.TB) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(admin.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}
	return doc
}

// The document is valid OpenAPI 3, documents every route the server has
// (and no other), and every schema field has a description.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadDoc(t)
	_, a := standalone(t)
	documented := make(map[string]bool)
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	var served []string
	for _, r := range a.srv.Handler().(*echo.Echo).Routes() {
		if strings.HasPrefix(r.Path, "/debug/pprof/") && r.Path != "/debug/pprof/" {
			continue // documented in the index's description
		}
		if r.Path == "/admin" || (strings.HasPrefix(r.Path, "/admin/") && !strings.HasPrefix(r.Path, "/admin/v1/")) {
			continue // the dashboard's files
		}
		p := strings.NewReplacer(":id", "{id}", "*", "{topic}").Replace(r.Path)
		served = append(served, r.Method+" "+p)
	}
	for _, s := range served {
		if !documented[s] {
			t.Errorf("route %s is not documented", s)
		}
		delete(documented, s)
	}
	for d := range documented {
		t.Errorf("documented %s is not served", d)
	}

	var undescribed []string
	for name, s := range doc.Components.Schemas {
		walkSchema(name, s.Value, &undescribed)
	}
	sort.Strings(undescribed)
	for _, u := range undescribed {
		t.Errorf("schema field %s has no description", u)
	}
	if !strings.Contains(doc.Info.Description, "Kaplan–Meier") || !strings.Contains(doc.Info.Description, "publish timestamp") {
		t.Error("the document does not define survival and push latency")
	}
}

// walkSchema lists the properties without a description, and checks that
// objects forbid undocumented fields.
func walkSchema(path string, s *openapi3.Schema, out *[]string) {
	if s == nil {
		return
	}
	for _, sub := range s.AllOf {
		walkSchema(path, sub.Value, out)
	}
	for name, p := range s.Properties {
		if p.Ref == "" && p.Value.Description == "" && len(p.Value.AllOf) == 0 {
			*out = append(*out, path+"."+name)
		}
		if p.Ref == "" {
			walkSchema(path+"."+name, p.Value, out)
		}
	}
	if s.Type.Is("object") && len(s.Properties) > 0 && (s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has) {
		*out = append(*out, path+" (allows undocumented fields)")
	}
}

// Every documented answer of every operation, checked against the
// document on a real node: the successes and every documented error.
func TestOpenAPIResponses(t *testing.T) {
	doc := loadDoc(t)
	r := pubsubtest.StartRedis(t)
	n := startNode(t, "doc", newRedisBroker(t, r, "doc"))
	peer := startNode(t, "peer", newMemory(t))
	reg := &flakyRegistry{Registry: admin.NewLocalRegistry()}
	a := startAdmin(t, n, reg, fastConfig(t))
	startAdmin(t, peer, reg, fastConfig(t))
	waitNodes(t, a, "doc", "peer")
	openStream(t, n, "t1")
	openStream(t, n, "t2")
	publish(t, n, "t1", 3)
	var conns struct {
		Connections []node.ConnInfo `json:"connections"`
	}
	a.decode(200, &conns, "GET", "/admin/v1/connections", "")
	if len(conns.Connections) != 2 {
		t.Fatalf("connections %+v", conns)
	}

	type req struct{ method, path, body string }
	want := func(status int, rq req, h ...string) {
		t.Helper()
		if got := a.do(rq.method, rq.path, rq.body, h...); got.Status != status {
			t.Errorf("%s %s = %s, want %d", rq.method, rq.path, got, status)
		}
	}
	noToken := func(rq req) {
		t.Helper()
		if got := a.doToken("", rq.method, rq.path, rq.body); got.Status != 401 {
			t.Errorf("%s %s without token = %s, want 401", rq.method, rq.path, got)
		}
	}
	all := []req{
		{"GET", "/admin/v1/node", ""}, {"GET", "/admin/v1/nodes", ""}, {"POST", "/admin/v1/drain", ""},
		{"POST", "/admin/v1/nodes/peer/drain", ""}, {"GET", "/admin/v1/topics", ""}, {"GET", "/admin/v1/topics/t1", ""},
		{"GET", "/admin/v1/connections", ""}, {"DELETE", "/admin/v1/connections/1", ""}, {"GET", "/admin/v1/openapi.json", ""},
		{"GET", "/metrics", ""}, {"GET", "/debug/pprof/", ""},
	}
	for _, rq := range all {
		noToken(rq)
	}
	want(200, req{"GET", "/admin/v1/node", ""})
	want(200, req{"GET", "/admin/v1/nodes", ""})
	want(200, req{"GET", "/admin/v1/topics?limit=1", ""})
	want(400, req{"GET", "/admin/v1/topics?limit=0", ""})
	want(200, req{"GET", "/admin/v1/topics/t1", ""})
	want(400, req{"GET", "/admin/v1/topics/-x", ""})
	want(200, req{"GET", "/admin/v1/connections?topic=t1&limit=1", ""})
	want(400, req{"GET", "/admin/v1/connections?cursor=x", ""})
	want(200, req{"DELETE", fmt.Sprintf("/admin/v1/connections/%d", conns.Connections[0].ID), ""})
	want(400, req{"DELETE", "/admin/v1/connections/x", ""})
	want(404, req{"DELETE", "/admin/v1/connections/999999", ""})
	want(200, req{"GET", "/admin/v1/openapi.json", ""})
	want(200, req{"GET", "/metrics", ""})
	want(200, req{"GET", "/debug/pprof/", ""})
	for _, p := range []string{"/admin/v1/drain", "/admin/v1/nodes/peer/drain"} {
		want(400, req{"POST", p, `{"window_s":-1}`})
		want(413, req{"POST", p, `{"window_s":1,"x":"` + strings.Repeat("x", 5000) + `"}`})
		want(415, req{"POST", p, `{}`}, "Content-Type: text/plain")
	}
	want(404, req{"POST", "/admin/v1/nodes/gone/drain", ""})

	// Redis and the registry down: 503s.
	reg.down.Store(true)
	want(503, req{"GET", "/admin/v1/nodes", ""})
	want(503, req{"GET", "/admin/v1/topics", ""})
	want(503, req{"POST", "/admin/v1/nodes/peer/drain", ""})
	r.Stop()
	want(503, req{"GET", "/admin/v1/topics/t1", ""})
	reg.down.Store(false)

	// A rate-limited listener on the same node: one request of burst, then
	// 429 for every operation (token checks come after the limit).
	slow := fastConfig(t)
	slow.Rate, slow.Burst = 0.001, 1
	lim := startAdmin(t, n, reg, slow)
	lim.do("GET", "/admin/v1/node", "")
	for _, rq := range all {
		if got := lim.do(rq.method, rq.path, rq.body); got.Status != 429 || got.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s over the rate = %s, want 429 with Retry-After", rq.method, rq.path, got)
		}
	}
	if got := lim.doToken("", "GET", "/admin/v1/node", ""); got.Status != 429 {
		t.Errorf("without a token over the rate = %s, want 429 before the token check", got)
	}
	for k := range lim.seen {
		a.seen[k] = true
	}

	// The drains last.
	want(202, req{"POST", "/admin/v1/nodes/peer/drain", `{"window_s":0.1}`})
	want(202, req{"POST", "/admin/v1/drain", ""})

	var missing []string
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for status := range op.Responses.Map() {
				key := op.OperationID + " " + status
				if !a.seen[key] {
					missing = append(missing, key)
				}
			}
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("documented answer %s never checked", m)
	}
}
