package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/ssecluster/ssecluster/admin"
	"github.com/ssecluster/ssecluster/node"
)

// standalone starts a node on the in-memory broker with its admin API on
// a local registry.
func standalone(t testing.TB) (*testNode, *testAdmin) {
	t.Helper()
	n := startNode(t, "solo", newMemory(t))
	return n, startAdmin(t, n, admin.NewLocalRegistry(), fastConfig(t))
}

// endpoints lists a request of every route, valid apart from the token.
var endpoints = []struct{ method, path, body string }{
	{"GET", "/admin/v1/node", ""},
	{"GET", "/admin/v1/nodes", ""},
	{"POST", "/admin/v1/drain", `{"window_s":1}`},
	{"POST", "/admin/v1/nodes/solo/drain", `{"window_s":1}`},
	{"GET", "/admin/v1/topics", ""},
	{"GET", "/admin/v1/topics/a/b", ""},
	{"GET", "/admin/v1/connections", ""},
	{"DELETE", "/admin/v1/connections/1", ""},
	{"GET", "/admin/v1/openapi.json", ""},
	{"GET", "/metrics", ""},
	{"GET", "/debug/pprof/", ""},
	{"GET", "/debug/pprof/heap", ""},
	{"GET", "/debug/pprof/cmdline", ""},
	{"POST", "/debug/pprof/symbol", ""},
	{"GET", "/admin/v1/no-such-path", ""},
	{"GET", "/", ""},
}

// Every route, unknown paths included, answers 401 without the right
// token, with a JSON error that does not echo what was sent.
func TestAuth(t *testing.T) {
	_, a := standalone(t)
	tokens := []struct {
		name, header string
	}{
		{"missing", ""},
		{"wrong", "Bearer wrong-token-XYZ"},
		{"prefix of the token", "Bearer " + token[:len(token)-1]},
		{"token plus a byte", "Bearer " + token + "x"},
		{"no scheme", token},
		{"basic scheme", "Basic " + token},
		{"empty bearer", "Bearer "},
	}
	for _, ep := range endpoints {
		for _, tk := range tokens {
			t.Run(ep.method+" "+ep.path+"/"+tk.name, func(t *testing.T) {
				var h []string
				if tk.header != "" {
					h = append(h, "Authorization: "+tk.header)
				}
				r := a.doToken("", ep.method, ep.path, ep.body, h...)
				if r.Status != http.StatusUnauthorized {
					t.Fatalf("= %s, want 401", r)
				}
				if code := r.errorCode(t); code != "unauthorized" {
					t.Errorf("code %q, want unauthorized", code)
				}
				if strings.Contains(string(r.Body), "wrong-token-XYZ") || (tk.header != "" && strings.Contains(string(r.Body), token[:8])) {
					t.Errorf("the answer echoes the token: %s", r.Body)
				}
				if r.Header.Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate header")
				}
			})
		}
	}
	// The dashboard's files hold no data and load without the token (a
	// browser cannot send it when it opens a page); nothing else under
	// /admin/ does.
	if r := a.doToken("", "GET", "/admin/", ""); r.Status != http.StatusOK || !strings.Contains(r.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /admin/ without a token = %d %s, want the dashboard page", r.Status, r.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/admin/nope", "/admin/v1/", "/admin/index.html"} {
		if r := a.doToken("", "GET", p, ""); r.Status != http.StatusUnauthorized {
			t.Errorf("GET %s without a token = %s, want 401", p, r)
		}
	}
	// The scheme is case-insensitive (RFC 7235).
	r := a.doToken("", "GET", "/admin/v1/node", "", "Authorization: bearer "+token)
	if r.Status != http.StatusOK {
		t.Fatalf("lower-case scheme: %s", r)
	}
}

// With the right token every route answers what it should (the drains
// last: they stop the node taking streams).
func TestAuthorizedAnswers(t *testing.T) {
	_, a := standalone(t)
	want := map[string]int{
		"/admin/v1/drain": 202, "/admin/v1/nodes/solo/drain": 202, "/admin/v1/connections/1": 404,
		"/admin/v1/no-such-path": 404, "/": 404,
	}
	for _, ep := range endpoints {
		status := http.StatusOK
		if s, ok := want[ep.path]; ok {
			status = s
		}
		if r := a.do(ep.method, ep.path, ep.body); r.Status != status {
			t.Errorf("%s %s = %s, want %d", ep.method, ep.path, r, status)
		}
	}
}

// Client mistakes get a documented 4xx JSON error, never a 5xx.
func TestBadRequests(t *testing.T) {
	_, a := standalone(t)
	big := `{"window_s":1` + strings.Repeat(" ", 5000) + `}`
	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		code                     string
	}{
		{"limit not a number", "GET", "/admin/v1/topics?limit=x", "", nil, 400, "invalid_limit"},
		{"limit zero", "GET", "/admin/v1/topics?limit=0", "", nil, 400, "invalid_limit"},
		{"limit negative", "GET", "/admin/v1/connections?limit=-1", "", nil, 400, "invalid_limit"},
		{"limit too big", "GET", "/admin/v1/connections?limit=1001", "", nil, 400, "invalid_limit"},
		{"topic cursor not base64", "GET", "/admin/v1/topics?cursor=***", "", nil, 400, "invalid_cursor"},
		{"topic cursor not a topic", "GET", "/admin/v1/topics?cursor=IA", "", nil, 400, "invalid_cursor"},
		{"conn cursor not a number", "GET", "/admin/v1/connections?cursor=abc", "", nil, 400, "invalid_cursor"},
		{"conn cursor negative", "GET", "/admin/v1/connections?cursor=-5", "", nil, 400, "invalid_cursor"},
		{"conn topic invalid", "GET", "/admin/v1/connections?topic=%20x", "", nil, 400, "invalid_topic"},
		{"topic invalid", "GET", "/admin/v1/topics/-bad", "", nil, 400, "invalid_topic"},
		{"topic with a space", "GET", "/admin/v1/topics/a%20b", "", nil, 400, "invalid_topic"},
		{"topic empty", "GET", "/admin/v1/topics/", "", nil, 400, "invalid_topic"},
		{"topic too long", "GET", "/admin/v1/topics/" + strings.Repeat("a", node.MaxTopicLen+1), "", nil, 400, "invalid_topic"},
		{"kick id not a number", "DELETE", "/admin/v1/connections/abc", "", nil, 400, "invalid_id"},
		{"kick id zero", "DELETE", "/admin/v1/connections/0", "", nil, 400, "invalid_id"},
		{"kick id signed", "DELETE", "/admin/v1/connections/+1", "", nil, 400, "invalid_id"},
		{"kick id overflow", "DELETE", "/admin/v1/connections/99999999999999999999", "", nil, 400, "invalid_id"},
		{"kick unknown id", "DELETE", "/admin/v1/connections/12345", "", nil, 404, "unknown_connection"},
		{"drain bad json", "POST", "/admin/v1/drain", `{"window_s":`, nil, 400, "invalid_json"},
		{"drain not an object", "POST", "/admin/v1/drain", `[1]`, nil, 400, "invalid_json"},
		{"drain unknown field", "POST", "/admin/v1/drain", `{"window":5}`, nil, 400, "invalid_json"},
		{"drain window a string", "POST", "/admin/v1/drain", `{"window_s":"5"}`, nil, 400, "invalid_json"},
		{"drain trailing data", "POST", "/admin/v1/drain", `{"window_s":5} {}`, nil, 400, "invalid_json"},
		{"drain negative window", "POST", "/admin/v1/drain", `{"window_s":-1}`, nil, 400, "invalid_window"},
		{"drain window too long", "POST", "/admin/v1/drain", `{"window_s":86401}`, nil, 400, "invalid_window"},
		{"drain body too large", "POST", "/admin/v1/drain", big, nil, 413, "body_too_large"},
		{"drain wrong media type", "POST", "/admin/v1/drain", `window_s=5`, []string{"Content-Type: application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"node drain bad id", "POST", "/admin/v1/nodes/bad%20id/drain", `{}`, nil, 400, "invalid_node_id"},
		{"node drain long id", "POST", "/admin/v1/nodes/" + strings.Repeat("n", 65) + "/drain", `{}`, nil, 400, "invalid_node_id"},
		{"node drain unknown node", "POST", "/admin/v1/nodes/nobody/drain", `{"window_s":1}`, nil, 404, "unknown_node"},
		{"node drain negative window", "POST", "/admin/v1/nodes/nobody/drain", `{"window_s":-3}`, nil, 400, "invalid_window"},
		{"unknown path", "GET", "/admin/v1/nope", "", nil, 404, "not_found"},
		{"unknown under /admin/", "GET", "/admin/nope", "", nil, 404, "not_found"},
		{"dashboard: wrong method", "POST", "/admin/", "", nil, 405, "method_not_allowed"},
		{"node: wrong method", "DELETE", "/admin/v1/node", "", nil, 405, "method_not_allowed"},
		{"nodes: wrong method", "POST", "/admin/v1/nodes", "", nil, 405, "method_not_allowed"},
		{"drain: wrong method", "GET", "/admin/v1/drain", "", nil, 405, "method_not_allowed"},
		{"node drain: wrong method", "GET", "/admin/v1/nodes/solo/drain", "", nil, 405, "method_not_allowed"},
		{"connections: wrong method", "POST", "/admin/v1/connections", "", nil, 405, "method_not_allowed"},
		{"kick: wrong method", "GET", "/admin/v1/connections/1", "", nil, 405, "method_not_allowed"},
		{"metrics: wrong method", "POST", "/metrics", "", nil, 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(tt.method, tt.path, tt.body, tt.header...)
			if r.Status != tt.status {
				t.Fatalf("%s %s = %s, want %d", tt.method, tt.path, r, tt.status)
			}
			if code := r.errorCode(t); code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
		})
	}
	// None of these started a drain.
	var rep node.Report
	a.decode(200, &rep, "GET", "/admin/v1/node", "")
	if rep.Draining {
		t.Error("a rejected drain request drained the node")
	}
}

// The endpoints of one node: its report, the cluster view of a
// standalone node (itself), topics, connections, kicks.
func TestStandaloneEndpoints(t *testing.T) {
	n, a := standalone(t)
	s1 := openStream(t, n, "orders", "news/eu")
	s2 := openStream(t, n, "orders")
	s3 := openStream(t, n, "zeta")

	checkFor(t, waitTimeout, func() error {
		var rep node.Report
		a.decode(200, &rep, "GET", "/admin/v1/node", "")
		if rep.Connections.Current != 3 {
			return fmt.Errorf("connections.current = %d, want 3", rep.Connections.Current)
		}
		return nil
	})
	publish(t, n, "orders", 5)
	checkFor(t, waitTimeout, func() error {
		var rep node.Report
		a.decode(200, &rep, "GET", "/admin/v1/node", "")
		if rep.Deliveries != 10 || rep.Published != 5 || rep.PushLatency.SinceStart.Count != 10 {
			return fmt.Errorf("deliveries %d published %d latency count %d, want 10, 5, 10",
				rep.Deliveries, rep.Published, rep.PushLatency.SinceStart.Count)
		}
		return nil
	})

	t.Run("nodes", func(t *testing.T) {
		var nodes struct {
			Nodes   []node.Report   `json:"nodes"`
			Cluster json.RawMessage `json:"cluster"`
		}
		a.decode(200, &nodes, "GET", "/admin/v1/nodes", "")
		if len(nodes.Nodes) != 1 || nodes.Nodes[0].NodeID != "solo" || nodes.Nodes[0].Mode != node.ModeStandalone {
			t.Fatalf("nodes = %+v, want solo alone", nodes.Nodes)
		}
		var cluster struct {
			Nodes       int             `json:"nodes"`
			Connections node.ConnCounts `json:"connections"`
			PushLatency struct {
				SinceStart struct {
					Count int64 `json:"count"`
				} `json:"since_start"`
			} `json:"push_latency"`
			Deliveries, Published int64
		}
		if err := json.Unmarshal(nodes.Cluster, &cluster); err != nil {
			t.Fatal(err)
		}
		if cluster.Nodes != 1 || cluster.Connections.Current != 3 || cluster.PushLatency.SinceStart.Count != 10 ||
			cluster.Deliveries != 10 || cluster.Published != 5 {
			t.Errorf("cluster totals %s", nodes.Cluster)
		}
	})

	t.Run("topics", func(t *testing.T) {
		var page struct {
			Topics []struct {
				Topic   string `json:"topic"`
				Local   int64  `json:"local_subscribers"`
				Cluster int64  `json:"cluster_subscribers"`
				Nodes   int    `json:"nodes"`
			} `json:"topics"`
			NextCursor string `json:"next_cursor"`
			Complete   bool   `json:"complete"`
		}
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			a.decode(200, &page, "GET", "/admin/v1/topics?limit=2&cursor="+cursor, "")
			for _, tp := range page.Topics {
				got = append(got, fmt.Sprintf("%s:%d/%d/%d", tp.Topic, tp.Local, tp.Cluster, tp.Nodes))
			}
			if !page.Complete {
				t.Error("a standalone node's topic list is incomplete")
			}
			if page.NextCursor == "" {
				break
			}
			if pages > 3 {
				t.Fatal("the pages do not end")
			}
			cursor = page.NextCursor
		}
		want := "news/eu:1/1/1 orders:2/2/1 zeta:1/1/1"
		if strings.Join(got, " ") != want {
			t.Errorf("topics = %v, want %s", got, want)
		}
	})

	t.Run("topic", func(t *testing.T) {
		for _, path := range []string{"/admin/v1/topics/orders", "/admin/v1/topics/news/eu", "/admin/v1/topics/news%2Feu"} {
			var d node.TopicDetail
			a.decode(200, &d, "GET", path, "")
			want := strings.TrimPrefix(strings.ReplaceAll(path, "%2F", "/"), "/admin/v1/topics/")
			if d.Topic != want {
				t.Errorf("%s: topic %q", path, d.Topic)
			}
			if want == "orders" && (d.Subscribers != 2 || d.Retained.Entries < 5 || d.Head.Pos == "0-0") {
				t.Errorf("%s: %+v, want 2 subscribers and 5 events retained", path, d)
			}
		}
	})

	var ids []uint64
	t.Run("connections", func(t *testing.T) {
		var page struct {
			Connections []node.ConnInfo `json:"connections"`
			NextCursor  string          `json:"next_cursor"`
		}
		cursor := ""
		for {
			a.decode(200, &page, "GET", "/admin/v1/connections?limit=1&cursor="+cursor, "")
			for _, c := range page.Connections {
				ids = append(ids, c.ID)
			}
			if page.NextCursor == "" {
				break
			}
			if len(ids) > 3 {
				t.Fatal("the pages do not end")
			}
			cursor = page.NextCursor
		}
		if len(ids) != 3 || !(ids[0] < ids[1] && ids[1] < ids[2]) {
			t.Fatalf("connection ids %v, want 3 ascending", ids)
		}
		a.decode(200, &page, "GET", "/admin/v1/connections?topic=orders", "")
		if len(page.Connections) != 2 || page.NextCursor != "" {
			t.Fatalf("connections of orders: %+v", page)
		}
		for _, c := range page.Connections {
			if c.EventsSent < 5 || c.BytesSent == 0 || c.Remote == "" {
				t.Errorf("connection %+v: events and bytes not counted", c)
			}
		}
	})

	t.Run("kick", func(t *testing.T) {
		var zeta struct {
			Connections []node.ConnInfo `json:"connections"`
		}
		a.decode(200, &zeta, "GET", "/admin/v1/connections?topic=zeta", "")
		if len(zeta.Connections) != 1 {
			t.Fatalf("connections of zeta: %+v", zeta)
		}
		id := strconv.FormatUint(zeta.Connections[0].ID, 10)
		var k struct {
			ID     uint64 `json:"id"`
			Kicked bool   `json:"kicked"`
		}
		a.decode(200, &k, "DELETE", "/admin/v1/connections/"+id, "")
		if !k.Kicked || k.ID != zeta.Connections[0].ID {
			t.Errorf("kick answer %+v", k)
		}
		if got := s3.waitEnd(t); !strings.Contains(got, ": kicked\n") || !strings.Contains(got, "retry: ") {
			t.Errorf("kicked stream ended with %q, want a retry hint and \": kicked\"", got)
		}
		if r := a.do("DELETE", "/admin/v1/connections/"+id, ""); r.Status != 404 || r.errorCode(t) != "unknown_connection" {
			t.Errorf("second kick = %s, want 404 unknown_connection", r)
		}
		checkFor(t, waitTimeout, func() error {
			var rep node.Report
			a.decode(200, &rep, "GET", "/admin/v1/node", "")
			if rep.Connections.Closed["kicked"] != 1 || rep.Connections.Current != 2 {
				return fmt.Errorf("closed %v current %d, want kicked 1 and 2 open", rep.Connections.Closed, rep.Connections.Current)
			}
			return nil
		})
	})

	t.Run("drain", func(t *testing.T) {
		var d struct {
			NodeID string           `json:"node_id"`
			Queued bool             `json:"queued"`
			Drain  node.DrainStatus `json:"drain"`
		}
		a.decode(202, &d, "POST", "/admin/v1/drain", `{"window_s":0.2}`, "Content-Type: application/json; charset=utf-8")
		if d.NodeID != "solo" || d.Queued || !d.Drain.Draining {
			t.Errorf("drain answer %+v", d)
		}
		for _, s := range []*stream{s1, s2} {
			if got := s.waitEnd(t); !strings.Contains(got, ": drain\n") {
				t.Errorf("stream ended with %q, want \": drain\"", got)
			}
		}
		checkFor(t, waitTimeout, func() error {
			var rep node.Report
			a.decode(200, &rep, "GET", "/admin/v1/node", "")
			if !rep.Draining || !rep.Drain.Done || rep.Drain.Streams != 2 || rep.Drain.Closed != 2 || rep.Drain.WindowS != 0.2 {
				return fmt.Errorf("drain status %+v", rep.Drain)
			}
			return nil
		})
		// A second drain changes nothing and answers the status.
		a.decode(202, &d, "POST", "/admin/v1/nodes/solo/drain", "")
		if !d.Drain.Done || d.Queued {
			t.Errorf("second drain answer %+v", d)
		}
	})
}

// Without a token the admin API binds loopback only and needs no token.
func TestNoTokenLoopbackOnly(t *testing.T) {
	n := startNode(t, "open", newMemory(t))
	tests := []struct{ addr, want string }{
		{":9090", "127.0.0.1:9090"},
		{"0.0.0.0:9091", "127.0.0.1:9091"},
		{"[::]:9092", "127.0.0.1:9092"},
		{"10.1.2.3:9093", "127.0.0.1:9093"},
		{"127.0.0.2:9094", "127.0.0.2:9094"},
		{"[::1]:9095", "[::1]:9095"},
		{"localhost:9096", "localhost:9096"},
	}
	for _, tt := range tests {
		cfg := fastConfig(t)
		cfg.Token, cfg.Addr = "", tt.addr
		srv, err := admin.New(cfg, n.srv, admin.NewLocalRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if srv.Addr() != tt.want {
			t.Errorf("no token, Addr %q: listens on %q, want %q", tt.addr, srv.Addr(), tt.want)
		}
		cfg.Token = token
		if srv, _ = admin.New(cfg, n.srv, admin.NewLocalRegistry()); srv.Addr() != tt.addr {
			t.Errorf("with a token, Addr %q: listens on %q", tt.addr, srv.Addr())
		}
	}
	cfg := fastConfig(t)
	cfg.Token = ""
	a := startAdmin(t, n, admin.NewLocalRegistry(), cfg)
	if r := a.do("GET", "/admin/v1/node", ""); r.Status != http.StatusOK {
		t.Fatalf("no token configured: GET /admin/v1/node = %s", r)
	}
}

func TestNewRejects(t *testing.T) {
	n := startNode(t, "n", newMemory(t))
	tests := []struct {
		name string
		cfg  admin.Config
	}{
		{"bad addr", admin.Config{Addr: "nope"}},
		{"ttl not above interval", admin.Config{Interval: 5 * 1e9, TTL: 5 * 1e9}},
		{"negative poll", admin.Config{CommandPoll: -1}},
		{"max topics", admin.Config{MaxTopics: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := admin.New(tt.cfg, n.srv, admin.NewLocalRegistry()); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := admin.New(admin.Config{}, nil, admin.NewLocalRegistry()); err == nil {
		t.Error("accepted a nil node")
	}
	if _, err := admin.New(admin.Config{}, n.srv, nil); err == nil {
		t.Error("accepted a nil registry")
	}
}
