package node_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/auth"
	"github.com/ssecluster/ssecluster/pubsub"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

func verifier(t testing.TB, leeway time.Duration) *auth.Verifier {
	t.Helper()
	v, err := auth.New(auth.Config{Secret: []byte(testSecret), Leeway: leeway})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mint signs a token with testSecret granting sub and pub, expiring at exp
// (zero: never).
func mint(t testing.TB, sub, pub []string, exp time.Time) string {
	t.Helper()
	c := auth.Claims{SSE: &auth.Access{Subscribe: sub, Publish: pub}}
	if !exp.IsZero() {
		c.ExpiresAt = jwt.NewNumericDate(exp)
	}
	tok, err := auth.Sign([]byte(testSecret), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSubscribeAuthorization(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth = verifier(t, time.Second)
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	hour := time.Now().Add(time.Hour)
	orders := mint(t, []string{"orders/*", "news"}, nil, hour)
	cases := []struct {
		name   string
		query  string
		hdr    map[string]string
		status int
		code   string
	}{
		{"no token", streamQuery("orders/1"), nil, 401, "missing_token"},
		{"bearer", streamQuery("orders/1", "news"), map[string]string{"Authorization": "Bearer " + orders}, 200, ""},
		{"query", streamQuery("orders/1") + "&token=" + orders, nil, 200, ""},
		{"cookie", streamQuery("orders/1"), map[string]string{"Cookie": "sse_token=" + orders}, 200, ""},
		{"topic not granted", streamQuery("orders/1", "users/1"), map[string]string{"Authorization": "Bearer " + orders}, 403, "forbidden_topic"},
		{"prefix is not the topic", streamQuery("orders"), map[string]string{"Authorization": "Bearer " + orders}, 403, "forbidden_topic"},
		{"publish-only token", streamQuery("orders/1"), map[string]string{"Authorization": "Bearer " + mint(t, nil, []string{"*"}, hour)}, 403, "forbidden_topic"},
		{"expired", streamQuery("orders/1"), map[string]string{"Authorization": "Bearer " + mint(t, []string{"*"}, nil, time.Now().Add(-time.Minute))}, 401, "token_expired"},
		{"garbage", streamQuery("orders/1"), map[string]string{"Authorization": "Bearer x.y.z"}, 401, "invalid_token"},
		{"two query tokens", streamQuery("orders/1") + "&token=" + orders + "&token=" + orders, nil, 400, "ambiguous_token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, r, conn := n.openRaw(t, c.query, c.hdr)
			if resp.StatusCode != c.status {
				t.Fatalf("status %s, want %d", r, c.status)
			}
			if c.status == 200 {
				newStream(t, conn, resp, resp.Body).live(t)
				return
			}
			if got := r.errorCode(t); got != c.code {
				t.Errorf("code %q, want %q", got, c.code)
			}
			if strings.Contains(string(r.Body), orders[len(orders)-20:]) {
				t.Errorf("error body echoes the token: %s", r.Body)
			}
			if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("401 without a Bearer challenge: %v", resp.Header)
			}
		})
	}
}

func TestPublishAuthorization(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth = verifier(t, time.Second)
	cfg.PublishToken = "static-publish-token"
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	hour := time.Now().Add(time.Hour)
	pub := mint(t, nil, []string{"orders/*"}, hour)
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	cases := []struct {
		name   string
		body   string
		hdr    http.Header
		status int
		code   string
	}{
		{"static token", `{"topic":"any","data":1}`, bearer("static-publish-token"), 200, ""},
		{"jwt granted", `[{"topic":"orders/1","data":1},{"topic":"orders/2","data":2}]`, bearer(pub), 200, ""},
		{"jwt one topic not granted", `[{"topic":"orders/1","data":1},{"topic":"users/2","data":2}]`, bearer(pub), 403, "forbidden_topic"},
		{"subscribe-only jwt", `{"topic":"orders/1","data":1}`, bearer(mint(t, []string{"*"}, nil, hour)), 403, "forbidden_topic"},
		{"none", `{"topic":"orders/1","data":1}`, nil, 401, "missing_token"},
		{"wrong", `{"topic":"orders/1","data":1}`, bearer("nope"), 401, "invalid_token"},
		{"invalid topic before forbidden", `{"topic":"-x","data":1}`, bearer(pub), 400, "invalid_topic"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := n.post(t, c.body, c.hdr)
			if r.Status != c.status {
				t.Fatalf("status %s, want %d", r, c.status)
			}
			if c.code != "" && r.errorCode(t) != c.code {
				t.Errorf("code of %s, want %s", r, c.code)
			}
		})
	}
	// A token in the query string does not authorize a publish.
	if r := n.do(t, "POST", "/v1/publish?token="+pub, nil, []byte(`{"topic":"orders/1","data":1}`)); r.Status != 401 {
		t.Errorf("publish with a query token: %s, want 401", r)
	}
}

// A stream ends when its token does (plus the leeway) with a retry hint,
// counted as token_expired, not as a failure.
func TestStreamEndsAtTokenExpiry(t *testing.T) {
	cfg := testConfig(t)
	const leeway = 200 * time.Millisecond
	cfg.Auth = verifier(t, leeway)
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	exp := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second).Add(time.Second) // JWT times are whole seconds
	s := n.subscribeHeader(t, streamQuery("t"), map[string]string{"Authorization": "Bearer " + mint(t, []string{"t"}, nil, exp)})
	s.live(t)
	rest, _ := s.waitEnd(t)
	if ended := s.endedAt(); ended.Before(exp.Add(leeway)) {
		t.Errorf("stream ended at %v, before the token's expiry plus leeway %v", ended, exp.Add(leeway))
	}
	if len(rest) == 0 || rest[len(rest)-1].Retry < 0 || !strings.Contains(s.bodyTail(), ": token_expired") {
		t.Errorf("no goodbye hint: %+v, tail %q", rest, s.bodyTail())
	}
	checkFor(t, waitTimeout, func() error {
		if got := n.srv.Stats().Closed[node.ReasonTokenExpired].Load(); got != 1 {
			return fmt.Errorf("token_expired closes %d, want 1", got)
		}
		return nil
	})
}

func TestCORS(t *testing.T) {
	preflight := func(n *testNode, path, origin string) apiResponse {
		return n.do(t, "OPTIONS", path, http.Header{
			"Origin": {origin}, "Access-Control-Request-Method": {"POST"},
			"Access-Control-Request-Headers": {"authorization,content-type"},
		}, nil)
	}
	streamOrigin := func(n *testNode, origin string, hdr map[string]string) string {
		h := map[string]string{"Origin": origin}
		for k, v := range hdr {
			h[k] = v
		}
		s := n.subscribeHeader(t, streamQuery("t"), h)
		s.live(t)
		return s.resp.Header.Get("Access-Control-Allow-Origin")
	}

	t.Run("open node: streams from anywhere, no cross-origin publish", func(t *testing.T) {
		n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
		if got := streamOrigin(n, "https://elsewhere.example", nil); got != "*" {
			t.Errorf("stream Access-Control-Allow-Origin %q, want *", got)
		}
		if r := preflight(n, "/v1/publish", "https://elsewhere.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("publish preflight allowed on an open node: %v", r.Header)
		}
	})
	t.Run("auth node: nothing by default", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Auth = verifier(t, time.Second)
		n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
		tok := mint(t, []string{"t"}, nil, time.Time{})
		if got := streamOrigin(n, "https://app.example", map[string]string{"Authorization": "Bearer " + tok}); got != "" {
			t.Errorf("stream Access-Control-Allow-Origin %q, want none", got)
		}
	})
	t.Run("configured origins with credentials", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Auth = verifier(t, time.Second)
		cfg.CORSOrigins = []string{"https://app.example"}
		cfg.CORSCredentials = true
		n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
		tok := mint(t, []string{"t"}, nil, time.Time{})
		if got := streamOrigin(n, "https://app.example", map[string]string{"Cookie": "sse_token=" + tok}); got != "https://app.example" {
			t.Errorf("stream Access-Control-Allow-Origin %q, want the origin", got)
		}
		if got := streamOrigin(n, "https://evil.example", map[string]string{"Cookie": "sse_token=" + tok}); got != "" {
			t.Errorf("other origin allowed: %q", got)
		}
		r := preflight(n, "/v1/publish", "https://app.example")
		if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			r.Header.Get("Access-Control-Allow-Credentials") != "true" ||
			!strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "authorization") {
			t.Errorf("publish preflight: %d %v", r.Status, r.Header)
		}
		if r := preflight(n, "/v1/publish", "https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from another origin allowed: %v", r.Header)
		}
	})
}

func TestLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxHeaderBytes = 4 << 10
	cfg.MaxURLBytes = 2 << 10
	cfg.MaxDataBytes = 1 << 10
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	cases := []struct {
		name   string
		query  string
		hdr    map[string]string
		status int
		code   string
	}{
		{"long url", streamQuery("t") + "&x=" + strings.Repeat("a", 2<<10), nil, 414, "uri_too_long"},
		{"large header", streamQuery("t"), map[string]string{"X-Big": strings.Repeat("b", 5<<10)}, 431, "headers_too_large"},
		{"long cursor", streamQuery("t"), map[string]string{"Last-Event-ID": strings.Repeat("1", node.MaxCursorEntryBytes*32+1)}, 400, "cursor_too_long"},
		{"cursor in header and query", streamQuery("t") + "&last_event_id=1&last_event_id=2", nil, 400, "ambiguous_cursor"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, r, _ := n.openRaw(t, c.query, c.hdr)
			if r.Status != c.status || r.errorCode(t) != c.code {
				t.Fatalf("got %s, want %d %s", r, c.status, c.code)
			}
		})
	}
	if r := n.post(t, `{"topic":"t","data":"`+strings.Repeat("d", 1025)+`"}`, nil); r.Status != 413 || r.errorCode(t) != "data_too_large" {
		t.Errorf("large data: %s", r)
	}
	// Every refusal is counted by status and code.
	counts := map[string]int64{}
	for _, c := range n.srv.Report(time.Now()).Rejected {
		counts[c.Code] = c.Count
	}
	for _, code := range []string{"uri_too_long", "headers_too_large", "cursor_too_long", "ambiguous_cursor", "data_too_large"} {
		if counts[code] != 1 {
			t.Errorf("rejected %s counted %d times, want 1 (%v)", code, counts[code], counts)
		}
	}
}
