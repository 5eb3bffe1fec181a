package admin_test

// Test harness: real node.Servers on 127.0.0.1:0 with real brokers, their
// admin servers on 127.0.0.1:0, and a client that checks every answer of
// a documented route against the OpenAPI document.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/ssecluster/ssecluster/admin"
	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/retry"
	"github.com/ssecluster/ssecluster/pubsub"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

const token = "s3cret-admin-token"

// httpClient keeps no idle connections, so no transport goroutine outlives
// a request (goleak).
var httpClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	Timeout:   waitTimeout,
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testNode is a running node.Server.
type testNode struct {
	srv *node.Server
	url string // public listener
}

// startNode starts a node on b, on a free loopback port, and waits until
// /readyz answers 200. It stops when the test ends.
func startNode(t testing.TB, id string, b pubsub.Broker) *testNode {
	t.Helper()
	srv, err := node.New(node.Config{
		NodeID:       id,
		Heartbeat:    100 * time.Millisecond,
		Retry:        retry.Policy{Base: 300 * time.Millisecond, Cap: time.Second, HealthyAfter: time.Minute},
		WriteTimeout: 2 * time.Second,
		DrainWindow:  200 * time.Millisecond,
		Logger:       testLogger(t),
	}, b)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: Serve: %v", id, err)
		}
	})
	n := &testNode{srv: srv, url: "http://" + ln.Addr().String()}
	checkFor(t, waitTimeout, func() error {
		resp, err := httpClient.Get(n.url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("node %s /readyz: %d", id, resp.StatusCode)
		}
		return nil
	})
	return n
}

func newMemory(t testing.TB) *pubsub.Memory {
	t.Helper()
	b, err := pubsub.NewMemory(pubsub.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func newRedisBroker(t testing.TB, r *pubsubtest.Redis, prefix string) *pubsub.Redis {
	t.Helper()
	b, err := pubsub.NewRedis(pubsub.RedisConfig{URL: r.URL(), Prefix: prefix, Block: 200 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// testAdmin is a running admin server.
type testAdmin struct {
	*client
	srv  *admin.Server
	stop func() // stops Serve and waits for it; idempotent
}

// fastConfig publishes and polls often and expires soon, so cluster tests
// wait little; the figures are no claim about speed.
func fastConfig(t testing.TB) admin.Config {
	return admin.Config{
		Token: token, Interval: 50 * time.Millisecond, TTL: time.Second, CommandPoll: 20 * time.Millisecond,
		Rate:   -1, // tests call faster than any operator; TestRateLimit sets one
		Logger: testLogger(t),
	}
}

// startAdmin serves n's admin API with cfg on a free loopback port until
// the test ends (or stop).
func startAdmin(t testing.TB, n *testNode, reg admin.Registry, cfg admin.Config) *testAdmin {
	t.Helper()
	srv, err := admin.New(cfg, n.srv, reg)
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("admin Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &testAdmin{client: newClient(t, "http://"+ln.Addr().String(), cfg.Token), srv: srv, stop: stop}
}

// openAPIRouter loads and validates the embedded document and returns a
// router over it (per client: cheap, and no state shared between tests).
func openAPIRouter(t testing.TB) routers.Router {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(admin.OpenAPI())
	if err != nil {
		t.Fatalf("openapi: load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi: invalid document: %v", err)
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("openapi: router: %v", err)
	}
	return r
}

// client calls one admin API and checks every answer of a documented
// route against the OpenAPI document (status documented, body matching
// its schema; every schema forbids undocumented fields).
type client struct {
	t      testing.TB
	base   string
	token  string
	router routers.Router

	mu   sync.Mutex
	seen map[string]bool // "operationId status" validated
}

func newClient(t testing.TB, base, token string) *client {
	return &client{t: t, base: base, token: token, router: openAPIRouter(t), seen: make(map[string]bool)}
}

// response is a complete answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// errorCode checks that r is a JSON error {"error":{"code","message"}} and
// returns its code.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		t.Errorf("error answer Content-Type %q, want application/json (%s)", r.Header.Get("Content-Type"), r)
	}
	var body struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Error == nil || body.Error.Code == nil || body.Error.Message == nil ||
		*body.Error.Code == "" || *body.Error.Message == "" {
		t.Errorf("error body %q is not {\"error\":{\"code\",\"message\"}} (%v)", r.Body, err)
		return ""
	}
	return *body.Error.Code
}

// do sends a request with the client's token (when set) and headers h
// ("Name: value"), reads the answer and validates it.
func (c *client) do(method, path, body string, h ...string) response {
	c.t.Helper()
	return c.doToken(c.token, method, path, body, h...)
}

func (c *client) doToken(tok, method, path, body string, h ...string) response {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for _, kv := range h {
		k, v, _ := strings.Cut(kv, ": ")
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading: %v", method, path, err)
	}
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if r.Status >= 500 && r.Status != http.StatusServiceUnavailable {
		c.t.Errorf("%s %s = %s: a 5xx", method, path, r)
	}
	c.validate(req, r)
	return r
}

// validate checks r against the document when the request names a
// documented operation.
func (c *client) validate(req *http.Request, r response) {
	c.t.Helper()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return // not a documented path or method: callers check these answers
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.Status, Header: r.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(r.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s = %d: answer does not match the OpenAPI document: %v\nbody: %.2000s", req.Method, req.URL.Path, r.Status, err, r.Body)
	}
	c.mu.Lock()
	c.seen[fmt.Sprintf("%s %d", route.Operation.OperationID, r.Status)] = true
	c.mu.Unlock()
}

// decode is do, expecting want, decoding the JSON answer into v.
func (c *client) decode(want int, v any, method, path, body string, h ...string) {
	c.t.Helper()
	r := c.do(method, path, body, h...)
	if r.Status != want {
		c.t.Fatalf("%s %s = %s, want %d", method, path, r, want)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		c.t.Fatalf("%s %s: %v in %s", method, path, err, r.Body)
	}
}

// stream is an open SSE stream read in the background.
type stream struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{} // closed when the stream ended
	body io.Closer
}

// openStream subscribes to topics on n and reads the stream until it ends
// (or the test does).
func openStream(t testing.TB, n *testNode, topics ...string) *stream {
	t.Helper()
	q := make([]string, len(topics))
	for i, tp := range topics {
		q[i] = "topic=" + tp
	}
	req, err := http.NewRequest(http.MethodGet, n.url+"/v1/events?"+strings.Join(q, "&"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET /v1/events: %d", resp.StatusCode)
	}
	s := &stream{done: make(chan struct{}), body: resp.Body}
	go func() {
		defer close(s.done)
		br := bufio.NewReader(resp.Body)
		chunk := make([]byte, 4096)
		for {
			n, err := br.Read(chunk)
			s.mu.Lock()
			s.buf.Write(chunk[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		<-s.done
	})
	// The id-only frame with the stream's cursor is written once it is
	// registered for live events: from then on it gets every publish.
	checkFor(t, waitTimeout, func() error {
		if !strings.Contains(s.text(), "\nid: ") {
			return fmt.Errorf("stream of %v not live yet: %q", topics, s.text())
		}
		return nil
	})
	return s
}

func (s *stream) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitEnd waits until the stream ended and returns what it got.
func (s *stream) waitEnd(t testing.TB) string {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(waitTimeout):
		t.Fatalf("stream still open after %v; got %q", waitTimeout, s.text())
	}
	return s.text()
}

// publish posts events to n's public API.
func publish(t testing.TB, n *testNode, topic string, count int) {
	t.Helper()
	evs := make([]string, count)
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"topic":%q,"data":"e%d"}`, topic, i)
	}
	resp, err := httpClient.Post(n.url+"/v1/publish", "application/json", strings.NewReader("["+strings.Join(evs, ",")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("publish: %d %s", resp.StatusCode, b)
	}
}
