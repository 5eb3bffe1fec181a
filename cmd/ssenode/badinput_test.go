package main

// The bad-input suite (issue 7): hostile requests against a real node, the
// command's own composition (env parsing, node, admin API), each answered
// with an exact status and error code while the node stays healthy; then
// the refusals are counted in /metrics, no secret comes back anywhere, and
// goroutines, file descriptors and heap return near their baseline.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/ssecluster/ssecluster/node/auth"
	"github.com/ssecluster/ssecluster/node/sse"
)

// ioBound bounds every exchange of the suite: dials, raw connections,
// streams and polls. It is a hang guard, never a performance threshold.
const ioBound = 10 * time.Second

// badSuite is one node with authorization on (JWT_SECRET, PUBLISH_TOKEN,
// ADMIN_TOKEN) and what the suite sent to it and got back.
type badSuite struct {
	node, admin  string // listener addresses
	logs         *safeBuffer
	secret       string // JWT_SECRET
	publishToken string
	adminToken   string
	client       *http.Client
	subAll       string // a JWT that may subscribe to every topic

	seq atomic.Int64 // unique topics

	mu       sync.Mutex
	sent     []string          // credentials sent: none may come back
	bodies   []string          // every error answer's body
	rejected map[rejection]int // error answers that matched, by metric labels
	cases    int               // hostile cases run
}

// rejection is the label set of ssecluster_requests_rejected_total.
type rejection struct {
	listener string
	status   int
	code     string
}

// badCase is one hostile request and its exact answer.
type badCase struct {
	name   string
	req    *http.Request            // sent with the suite's client, or
	raw    func(net.Conn) error     // written to a fresh TCP connection while the answer is read
	admin  bool                     // to the admin listener
	status int                      // 0: the server must close the connection without answering
	code   string                   // the JSON error code; "" for Go's own plain-text answers and 200s
	check  func(*testing.T, answer) // more to check, or nil
}

// answer is what a request got.
type answer struct {
	status int
	header http.Header
	close  bool // the server said Connection: close
	body   []byte
}

// randomHex returns n random hexadecimal characters.
func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)[:n]
}

func startBadSuite(t *testing.T) *badSuite {
	t.Helper()
	s := &badSuite{
		secret:       randomHex(40),
		publishToken: randomHex(32),
		adminToken:   randomHex(32),
		rejected:     make(map[rejection]int),
	}
	s.remember(s.secret, s.publishToken, s.adminToken)
	s.logs, s.node, s.admin = startRun(t, nil, map[string]string{
		"HTTP_ADDR":           "127.0.0.1:0",
		"ADMIN_ADDR":          "127.0.0.1:0",
		"ADMIN_TOKEN":         s.adminToken,
		"PUBLISH_TOKEN":       s.publishToken,
		"JWT_SECRET":          s.secret,
		"JWT_LEEWAY":          "1s",
		"READ_HEADER_TIMEOUT": "1s",
		"BODY_TIMEOUT":        "1s",
		"NODE_ID":             "bad",
		"ADMIN_RATE":          "-1",
		// The sweeper finds streams whose client left within half of
		// this, so the resource check does not wait 7.5 s for them.
		"HEARTBEAT_INTERVAL": "2s",
	})
	s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 2 * ioBound}
	t.Cleanup(s.client.CloseIdleConnections) // before the node stops (cleanups run last first)
	s.subAll = s.token(t, []byte(s.secret), &auth.Access{Subscribe: []string{"*"}}, nil)
	return s
}

// remember records credentials the suite sends, for the leak check.
func (s *badSuite) remember(creds ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, creds...)
}

// token mints a JWT granting a, valid for an hour unless mod changes it.
func (s *badSuite) token(t *testing.T, key []byte, a *auth.Access, mod func(*auth.Claims)) string {
	t.Helper()
	c := auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		SSE:              a,
	}
	if mod != nil {
		mod(&c)
	}
	tok, err := auth.Sign(key, c)
	if err != nil {
		t.Fatal(err)
	}
	s.remember(tok)
	return tok
}

// request builds a request to addr; hdr are name, value pairs.
func request(t *testing.T, method, addr, target string, body io.Reader, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+target, body)
	if err != nil {
		t.Fatalf("building %s %.80s: %v", method, target, err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return req
}

// events is GET <target> on the public listener.
func (s *badSuite) events(t *testing.T, target string, hdr ...string) *http.Request {
	t.Helper()
	return request(t, http.MethodGet, s.node, target, nil, hdr...)
}

// publishReq is POST /v1/publish with body as JSON and the publish token;
// hdr are added after those (an empty Authorization value removes it).
func (s *badSuite) publishReq(t *testing.T, body string, hdr ...string) *http.Request {
	t.Helper()
	req := request(t, http.MethodPost, s.node, "/v1/publish", strings.NewReader(body),
		"Authorization", "Bearer "+s.publishToken, "Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return req
}

// adminReq is a request to the admin listener with authorization value
// authz ("" for none).
func (s *badSuite) adminReq(t *testing.T, method, target, authz string, body string, hdr ...string) *http.Request {
	t.Helper()
	if authz != "" {
		hdr = append(hdr, "Authorization", authz)
	}
	return request(t, method, s.admin, target, strings.NewReader(body), hdr...)
}

// rawRequest is the head of a request as raw bytes: request line, Host,
// hdr lines ("Name: value", written exactly as given), blank line.
func rawRequest(method, target string, hdr ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: bad.test\r\n")
	for _, h := range hdr {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// rawText writes text.
func rawText(text string) func(net.Conn) error {
	return func(c net.Conn) error {
		_, err := io.WriteString(c, text)
		return err
	}
}

// rawExchange writes a request with write on a new connection to addr
// while it reads the answer, all within ioBound. It returns the answer, or
// the error that ended the read and the bytes read before it.
func rawExchange(addr string, write func(net.Conn) error) (answer, []byte, error) {
	conn, err := net.DialTimeout("tcp", addr, ioBound)
	if err != nil {
		return answer{}, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(ioBound))
	wrote := make(chan struct{})
	go func() { // ends: write returns, at the latest when conn is closed below
		defer close(wrote)
		_ = write(conn) // the server may stop reading and reset: expected
	}()
	defer func() {
		conn.Close()
		<-wrote
	}()
	var got bytes.Buffer
	resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(conn, &got)), nil)
	if err != nil {
		return answer{}, got.Bytes(), err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, got.Bytes(), fmt.Errorf("reading the body: %w", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, close: resp.Close, body: body}, got.Bytes(), nil
}

// send sends c's request and returns the answer.
func (s *badSuite) send(t *testing.T, c badCase) answer {
	t.Helper()
	if c.raw != nil {
		addr := s.node
		if c.admin {
			addr = s.admin
		}
		start := time.Now()
		a, got, err := rawExchange(addr, c.raw)
		if c.status == 0 { // the server must hang up without a word
			ne, isNet := errors.AsType[net.Error](err)
			switch {
			case err == nil:
				t.Fatalf("got an answer %d %q, want the connection closed without one", a.status, a.body)
			case isNet && ne.Timeout():
				t.Fatalf("the connection was still open after %s", time.Since(start).Round(time.Millisecond))
			case !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET):
				t.Fatalf("reading: %v, want the connection closed", err)
			case len(got) > 0:
				t.Fatalf("the server wrote %q before closing, want nothing", got)
			}
			return answer{}
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatalf("no answer within %s: the server holds the connection open (read %.200q)", ioBound, got)
		}
		if err != nil {
			t.Fatalf("raw exchange: %v (read %.200q)", err, got)
		}
		return a
	}
	resp, err := s.client.Do(c.req)
	if err != nil {
		t.Fatalf("%s %.80s: %v", c.req.Method, c.req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, close: resp.Close, body: body}
}

// errorCode decodes an error answer, strictly {"error":{"code","message"}}.
func errorCode(a answer) (code, msg string, err error) {
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return "", "", fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return "", "", fmt.Errorf("body %.200q is not the error JSON: %v", a.body, err)
	}
	if body.Error.Code == "" || body.Error.Message == "" {
		return "", "", fmt.Errorf("body %.200q lacks a code or message", a.body)
	}
	return body.Error.Code, body.Error.Message, nil
}

// wwwAuth checks an answer's WWW-Authenticate header is want.
func wwwAuth(want string) func(*testing.T, answer) {
	return func(t *testing.T, a answer) {
		if got := a.header.Get("WWW-Authenticate"); got != want {
			t.Errorf("WWW-Authenticate %q, want %q", got, want)
		}
	}
}

// run runs one case: exact status and code, its own checks, then the node
// must still be healthy.
func (s *badSuite) run(t *testing.T, c badCase) {
	t.Helper()
	s.mu.Lock()
	s.cases++
	s.mu.Unlock()
	a := s.send(t, c)
	if a.status >= 400 {
		s.mu.Lock()
		s.bodies = append(s.bodies, string(a.body))
		s.mu.Unlock()
	}
	if a.status != c.status {
		t.Errorf("status %d, want %d; body %.300q", a.status, c.status, a.body)
	}
	if c.code != "" {
		code, _, err := errorCode(a)
		switch {
		case err != nil:
			t.Error(err)
		case code != c.code:
			t.Errorf("code %q, want %q; body %.300q", code, c.code, a.body)
		case a.status == c.status:
			listener := "public"
			if c.admin {
				listener = "admin"
			}
			s.mu.Lock()
			s.rejected[rejection{listener, a.status, code}]++
			s.mu.Unlock()
		}
	}
	if c.check != nil && a.status == c.status && c.status != 0 {
		c.check(t, a)
	}
	s.healthy(t)
}

// runAll runs each case as a subtest.
func (s *badSuite) runAll(t *testing.T, cases []badCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { s.run(t, c) })
	}
}

// healthy checks GET /healthz answers 200.
func (s *badSuite) healthy(t *testing.T) {
	t.Helper()
	resp, err := s.client.Do(s.events(t, "/healthz"))
	if err != nil {
		t.Fatalf("healthz after the case: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("healthz after the case: %d %q", resp.StatusCode, body)
	}
}

// alive checks the node is healthy and ready and still streams what it is
// given.
func (s *badSuite) alive(t *testing.T) {
	t.Helper()
	s.healthy(t)
	resp, err := s.client.Do(s.events(t, "/readyz"))
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %d %q", resp.StatusCode, body)
	}
	s.roundTrip(t, json.RawMessage(`"still alive"`), "still alive")
}

// stream is an open event stream.
type stream struct {
	resp   *http.Response
	p      *sse.Parser
	start  []sse.Event // the blocks up to the cursor frame that ends the start
	cancel context.CancelFunc
}

func (st *stream) close() {
	st.cancel()
	st.resp.Body.Close()
}

// isHeartbeat reports whether ev is what the sweeper writes to an idle
// stream: a comment, or an id-only frame holding a cursor of the node's.
func isHeartbeat(ev sse.Event) bool {
	return !ev.Dispatch && ev.Retry < 0 && (ev.Comments > 0 && !ev.HasID || ev.HasID && cursorRe.MatchString(ev.ID))
}

// cursorRe matches the cursors the node writes: partition.epoch.ms-seq,
// joined with "_".
var cursorRe = regexp.MustCompile(`^[0-9]+\.[0-9a-z]+\.[0-9]+-[0-9]+(_[0-9]+\.[0-9a-z]+\.[0-9]+-[0-9]+)*$`)

// openStream sends req and reads the stream's start: the retry hint, any
// resets and history, and the id-only cursor frame that ends them.
func (s *badSuite) openStream(t *testing.T, req *http.Request) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioBound)
	resp, err := s.client.Do(req.WithContext(ctx))
	if err != nil {
		cancel()
		t.Fatalf("opening the stream: %v", err)
	}
	st := &stream{resp: resp, p: sse.NewParser(resp.Body), cancel: cancel}
	t.Cleanup(st.close)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("stream: %d %q, want 200", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream Content-Type %q", ct)
	}
	for {
		ev, err := st.p.Next()
		if err != nil {
			t.Fatalf("reading the stream's start after %+v: %v", st.start, err)
		}
		if len(st.start) > 0 && ev.Comments > 0 && !ev.HasID && !ev.Dispatch {
			continue // a heartbeat
		}
		st.start = append(st.start, ev)
		if ev.HasID && !ev.Dispatch {
			break
		}
	}
	if first := st.start[0]; first.Retry < 0 || first.Dispatch || first.HasID {
		t.Fatalf("the stream starts with %+v, want a retry hint alone", first)
	}
	return st
}

// publish publishes body with the publish token and returns the ids.
func (s *badSuite) publish(t *testing.T, body string) []string {
	t.Helper()
	resp, err := s.client.Do(s.publishReq(t, body))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		IDs []string `json:"ids"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil {
		t.Fatalf("publish: %d %q", resp.StatusCode, b)
	}
	return out.IDs
}

// roundTrip publishes data (raw JSON) to a fresh topic followed by a
// sentinel event, and checks the stream gets exactly one default-type event
// whose data is want, with the id the publish returned, and nothing else
// (no other event, id, type or retry) before the sentinel.
func (s *badSuite) roundTrip(t *testing.T, data json.RawMessage, want string) {
	t.Helper()
	topic := "rt/" + strconv.FormatInt(s.seq.Add(1), 10)
	st := s.openStream(t, s.events(t, "/v1/events?topic="+topic, "Authorization", "Bearer "+s.subAll))
	defer st.close()
	body, err := json.Marshal([]map[string]any{
		{"topic": topic, "data": data},
		{"topic": topic, "event": "sentinel", "data": "end"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := s.publish(t, string(body))
	if len(ids) != 2 {
		t.Fatalf("publish returned ids %q", ids)
	}
	var got []sse.Event
	for {
		ev, err := st.p.Next()
		if err != nil {
			t.Fatalf("reading the stream after %+v: %v", got, err)
		}
		if ev.Dispatch && ev.Type == "sentinel" {
			if ev.ID != ids[1] || ev.Data != "end" || ev.Retry >= 0 {
				t.Errorf("sentinel %+v, want id %s", ev, ids[1])
			}
			break
		}
		if !isHeartbeat(ev) {
			got = append(got, ev)
		}
	}
	wantEv := sse.Event{ID: ids[0], HasID: true, Type: "message", Data: want, Retry: -1, Dispatch: true}
	if len(got) != 1 || got[0] != wantEv {
		t.Errorf("before the sentinel the stream held %+v, want exactly %+v", got, wantEv)
	}
}

// normalise turns CRLF, CR and LF each into LF, as an event stream
// parser does with data.
func normalise(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// TestBadInput runs the hostile cases of issue 7 against one node, then
// checks the metrics, that no secret leaked, and that resources came back.
func TestBadInput(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { // runs after the node has stopped (registered first)
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		goleak.VerifyNone(t, leaks)
	})
	s := startBadSuite(t)
	base := settledBaseline(t, s)

	t.Run("subscribe", func(t *testing.T) { s.subscribeCases(t); s.alive(t) })
	t.Run("streams", func(t *testing.T) { s.streamCases(t); s.alive(t) })
	t.Run("publish", func(t *testing.T) { s.publishCases(t); s.alive(t) })
	t.Run("wire", func(t *testing.T) { s.wireCases(t); s.alive(t) })
	t.Run("slow", func(t *testing.T) { s.slowCases(t) })
	t.Run("slow_after", s.alive)
	t.Run("admin", func(t *testing.T) { s.adminCases(t); s.alive(t) })
	t.Run("roundtrip", func(t *testing.T) { s.roundTripCases(t); s.alive(t) })
	t.Run("metrics", s.checkMetrics)
	t.Run("secrets", s.checkSecrets)
	t.Run("resources", func(t *testing.T) { s.checkResources(t, base) })
	s.mu.Lock()
	t.Logf("%d hostile cases", s.cases)
	s.mu.Unlock()
}

func (s *badSuite) subscribeCases(t *testing.T) {
	key := []byte(s.secret)
	bearerAll := []string{"Authorization", "Bearer " + s.subAll}
	orders := s.token(t, key, &auth.Access{Subscribe: []string{"orders/*"}}, nil)
	publishOnly := s.token(t, key, &auth.Access{Publish: []string{"orders/*"}}, nil)
	expired := s.token(t, key, &auth.Access{Subscribe: []string{"*"}}, func(c *auth.Claims) {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
	})
	notYet := s.token(t, key, &auth.Access{Subscribe: []string{"*"}}, func(c *auth.Claims) {
		c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Minute))
	})
	otherKey := s.token(t, []byte(randomHex(40)), &auth.Access{Subscribe: []string{"*"}}, nil)
	noSSE := s.token(t, key, nil, nil)
	b64 := base64.RawURLEncoding.EncodeToString
	algNone := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		b64(fmt.Appendf(nil, `{"exp":%d,"sse":{"subscribe":["*"]}}`, time.Now().Add(time.Hour).Unix())) + "."
	garbage := "garbage-" + randomHex(24)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es256, err := auth.Sign(ecKey, auth.Claims{SSE: &auth.Access{Subscribe: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	signed := func(tok *jwt.Token) string {
		str, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return str
	}
	critTok := jwt.NewWithClaims(jwt.SigningMethodHS256, auth.Claims{SSE: &auth.Access{Subscribe: []string{"*"}}})
	critTok.Header["crit"] = []string{"exp"}
	crit := signed(critTok)
	expString := signed(jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": "tomorrow", "sse": map[string]any{"subscribe": []string{"*"}}}))
	s.remember(es256, crit, expString)
	tooLong := strings.Repeat("x", auth.DefaultMaxTokenBytes+1)
	s.remember(algNone, garbage)

	var topics33 []string
	for i := range 33 {
		topics33 = append(topics33, "topic=t"+strconv.Itoa(i))
	}
	invalidToken := wwwAuth(`Bearer realm="ssecluster", error="invalid_token"`)

	cases := []badCase{
		// Topics.
		{name: "topic empty", req: s.events(t, "/v1/events?topic=", bearerAll...), status: 400, code: "invalid_topic"},
		{name: "topic 201 bytes", req: s.events(t, "/v1/events?topic="+strings.Repeat("a", 201), bearerAll...), status: 400, code: "invalid_topic"},
		{name: "topic CR", req: s.events(t, "/v1/events?topic=orders%0D1", bearerAll...), status: 400, code: "invalid_topic"},
		{name: "topic LF", req: s.events(t, "/v1/events?topic=orders%0A1", bearerAll...), status: 400, code: "invalid_topic"},
		{name: "topic NUL", req: s.events(t, "/v1/events?topic=orders%001", bearerAll...), status: 400, code: "invalid_topic"},
		{name: "topic with encoded CRLF header injection", req: s.events(t, "/v1/events?topic=orders/1%0D%0AX-Injected:%201", bearerAll...), status: 400, code: "invalid_topic"},
		{name: "topic Cyrillic look-alike", req: s.events(t, "/v1/events?topic=ord%D0%B5rs/1", bearerAll...), status: 400, code: "invalid_topic"},
		{name: "topic leading dash", req: s.events(t, "/v1/events?topic=-orders", bearerAll...), status: 400, code: "invalid_topic"},
		{name: "topic space", req: s.events(t, "/v1/events?topic=orders%201", bearerAll...), status: 400, code: "invalid_topic"},
		{name: "topic plus decodes to space", req: s.events(t, "/v1/events?topic=orders+1", bearerAll...), status: 400, code: "invalid_topic"},
		{name: "second topic invalid", req: s.events(t, "/v1/events?topic=orders/1&topic=%00", bearerAll...), status: 400, code: "invalid_topic"},
		{name: "no topic", req: s.events(t, "/v1/events", bearerAll...), status: 400, code: "missing_topic"},
		{name: "misspelt topic parameter", req: s.events(t, "/v1/events?topics=orders/1", bearerAll...), status: 400, code: "missing_topic"},
		{name: "33 topics", req: s.events(t, "/v1/events?"+strings.Join(topics33, "&"), bearerAll...), status: 400, code: "too_many_topics"},
		{name: "unparsable query", req: s.events(t, "/v1/events?topic=%zz", bearerAll...), status: 400, code: "bad_query"},

		// Cursors.
		{name: "Last-Event-ID 2049 bytes", req: s.events(t, "/v1/events?topic=orders/1",
			append([]string{"Last-Event-ID", strings.Repeat("1", 2049)}, bearerAll...)...), status: 400, code: "cursor_too_long"},
		{name: "last_event_id 2049 bytes", req: s.events(t, "/v1/events?topic=orders/1&last_event_id="+strings.Repeat("1", 2049), bearerAll...),
			status: 400, code: "cursor_too_long"},
		{name: "two Last-Event-ID headers", raw: rawText(rawRequest("GET", "/v1/events?topic=orders/1",
			"Authorization: Bearer "+s.subAll, "Last-Event-ID: 1.abc.1-0", "Last-Event-ID: 2.abc.1-0")), status: 400, code: "ambiguous_cursor"},
		{name: "two Last-Event-ID headers differing in case", raw: rawText(rawRequest("GET", "/v1/events?topic=orders/1",
			"Authorization: Bearer "+s.subAll, "Last-Event-ID: 1.abc.1-0", "last-event-id: 2.abc.1-0")), status: 400, code: "ambiguous_cursor"},
		{name: "two last_event_id parameters", req: s.events(t, "/v1/events?topic=orders/1&last_event_id=1.abc.1-0&last_event_id=2.abc.1-0", bearerAll...),
			status: 400, code: "ambiguous_cursor"},

		// Tokens.
		{name: "no token", req: s.events(t, "/v1/events?topic=orders/1"), status: 401, code: "missing_token",
			check: wwwAuth(`Bearer realm="ssecluster"`)},
		{name: "expired token", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+expired), status: 401, code: "token_expired", check: invalidToken},
		{name: "token not yet valid", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+notYet), status: 401, code: "token_not_yet_valid", check: invalidToken},
		{name: "token of another secret", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+otherKey), status: 401, code: "invalid_token", check: invalidToken},
		{name: "alg none", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+algNone), status: 401, code: "invalid_token", check: invalidToken},
		{name: "garbage token", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+garbage), status: 401, code: "invalid_token", check: invalidToken},
		{name: "garbage token in query", req: s.events(t, "/v1/events?topic=orders/1&token="+garbage), status: 401, code: "invalid_token", check: invalidToken},
		{name: "token over 8192 bytes", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+tooLong), status: 401, code: "invalid_token", check: invalidToken},
		{name: "ES256 token on an HS256 node", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+es256), status: 401, code: "invalid_token", check: invalidToken},
		{name: "crit header", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+crit), status: 401, code: "invalid_token", check: invalidToken},
		{name: "exp a string", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+expString), status: 401, code: "invalid_token", check: invalidToken},
		{name: "publish token used to subscribe", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+s.publishToken), status: 401, code: "invalid_token", check: invalidToken},
		{name: "no sse claim", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+noSSE), status: 401, code: "invalid_token", check: invalidToken},
		{name: "two token parameters", req: s.events(t, "/v1/events?topic=orders/1&token="+orders+"&token="+orders), status: 400, code: "ambiguous_token"},
		{name: "two Authorization headers", raw: rawText(rawRequest("GET", "/v1/events?topic=orders/1",
			"Authorization: Bearer "+orders, "Authorization: Bearer "+orders)), status: 400, code: "ambiguous_token"},
		{name: "two token cookies", req: s.events(t, "/v1/events?topic=orders/1", "Cookie", "sse_token="+orders+"; sse_token="+orders), status: 400, code: "ambiguous_token"},
		{name: "orders token for users/1", req: s.events(t, "/v1/events?topic=users/1", "Authorization", "Bearer "+orders), status: 403, code: "forbidden_topic"},
		{name: "orders token for orders and users", req: s.events(t, "/v1/events?topic=orders/1&topic=users/1", "Authorization", "Bearer "+orders), status: 403, code: "forbidden_topic"},
		{name: "publish-only token subscribing", req: s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+publishOnly), status: 403, code: "forbidden_topic"},
	}
	s.runAll(t, cases)
}

// streamCases are hostile requests the node must answer with a stream.
func (s *badSuite) streamCases(t *testing.T) {
	orders := s.token(t, []byte(s.secret), &auth.Access{Subscribe: []string{"orders/*"}}, nil)
	bearerAll := []string{"Authorization", "Bearer " + s.subAll}
	cases := []struct {
		name   string
		req    *http.Request
		resets []string // topics that must each get one malformed_cursor reset
		check  func(*testing.T, http.Header)
	}{
		{"token in Authorization", s.events(t, "/v1/events?topic=orders/1", "Authorization", "Bearer "+orders), nil, nil},
		{"token in query", s.events(t, "/v1/events?topic=orders/1&token="+orders), nil, nil},
		{"token in cookie", s.events(t, "/v1/events?topic=orders/1", "Cookie", "sse_token="+orders), nil, nil},
		{"foreign Origin gets no CORS grant", s.events(t, "/v1/events?topic=orders/1",
			append([]string{"Origin", "https://evil.example"}, bearerAll...)...), nil, func(t *testing.T, h http.Header) {
			for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials"} {
				if v := h.Values(k); len(v) > 0 {
					t.Errorf("%s: %q for a foreign origin", k, v)
				}
			}
		}},
		{"malformed cursor: partition out of range", s.events(t, "/v1/events?topic=orders/1&topic=users/2",
			append([]string{"Last-Event-ID", "99.zz.1-0"}, bearerAll...)...), []string{"orders/1", "users/2"}, nil},
		{"malformed cursor: upper-case epoch", s.events(t, "/v1/events?topic=orders/1",
			append([]string{"Last-Event-ID", "1.ABC.1-0"}, bearerAll...)...), []string{"orders/1"}, nil},
		{"malformed cursor: garbage in query", s.events(t, "/v1/events?topic=orders/1&topic=orders/2&last_event_id=garbage", bearerAll...),
			[]string{"orders/1", "orders/2"}, nil},
		{"forged retry cookie with a cursor", s.events(t, "/v1/events?topic=orders/1",
			append([]string{"Last-Event-ID", "garbage", "Cookie", "sse_retry=" + strings.Repeat("A", 60)}, bearerAll...)...), []string{"orders/1"}, nil},
		{"malformed cursor: partitions out of order", s.events(t, "/v1/events?topic=orders/1",
			append([]string{"Last-Event-ID", "2.abc.1-0_1.abc.1-0"}, bearerAll...)...), []string{"orders/1"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s.mu.Lock()
			s.cases++
			s.mu.Unlock()
			st := s.openStream(t, c.req)
			var got []string
			for _, ev := range st.start[1 : len(st.start)-1] {
				var data struct {
					Topic  string `json:"topic"`
					Reason string `json:"reason"`
				}
				dec := json.NewDecoder(strings.NewReader(ev.Data))
				dec.DisallowUnknownFields()
				if !ev.Dispatch || ev.Type != "reset" || dec.Decode(&data) != nil || data.Reason != "malformed_cursor" {
					t.Errorf("after the retry hint: %+v, want only malformed_cursor resets", ev)
					continue
				}
				got = append(got, data.Topic)
			}
			if c.check != nil {
				c.check(t, st.resp.Header)
			}
			slices.Sort(got)
			if !slices.Equal(got, c.resets) {
				t.Errorf("resets for %q, want one for each of %q", got, c.resets)
			}
			st.close()
			s.healthy(t)
		})
	}
}

func (s *badSuite) publishCases(t *testing.T) {
	key := []byte(s.secret)
	subOnly := s.token(t, key, &auth.Access{Subscribe: []string{"*"}}, nil)
	pubOrders := s.token(t, key, &auth.Access{Publish: []string{"orders/*"}}, nil)
	wrong := randomHex(32)
	s.remember(wrong)

	var batch []string
	for range 1001 {
		batch = append(batch, `{"topic":"b","data":1}`)
	}
	big := `{"topic":"big","data":"` + strings.Repeat("a", 300<<10) + `"}`
	tenMiB := 10 << 20
	authLine := "Authorization: Bearer " + s.publishToken
	ok := func(t *testing.T, a answer) {
		var out struct {
			IDs []string `json:"ids"`
		}
		if json.Unmarshal(a.body, &out) != nil || len(out.IDs) != 1 {
			t.Errorf("body %q, want one id", a.body)
		}
	}
	cases := []badCase{
		{name: "invalid JSON", req: s.publishReq(t, `{"topic":`), status: 400, code: "invalid_json"},
		{name: "topic a number", req: s.publishReq(t, `{"topic":5,"data":"x"}`), status: 400, code: "invalid_json"},
		{name: "event a number", req: s.publishReq(t, `{"topic":"p","event":7,"data":"x"}`), status: 400, code: "invalid_json"},
		{name: "array of strings", req: s.publishReq(t, `["a","b"]`), status: 400, code: "invalid_json"},
		{name: "unknown field", req: s.publishReq(t, `{"topic":"p","data":"x","admin":true}`), status: 400, code: "invalid_json"},
		{name: "trailing object", req: s.publishReq(t, `{"topic":"p","data":"x"}{"topic":"p","data":"y"}`), status: 400, code: "invalid_json"},
		{name: "trailing garbage", req: s.publishReq(t, `{"topic":"p","data":"x"} zzz`), status: 400, code: "invalid_json"},
		{name: "empty body", req: s.publishReq(t, ``), status: 400, code: "invalid_json"},
		{name: "blank body", req: s.publishReq(t, " \r\n\t"), status: 400, code: "invalid_json"},
		{name: "data missing", req: s.publishReq(t, `{"topic":"p"}`), status: 400, code: "missing_data"},
		{name: "data null", req: s.publishReq(t, `{"topic":"p","data":null}`), status: 400, code: "missing_data"},
		{name: "body null", req: s.publishReq(t, `null`), status: 400, code: "invalid_json"},
		{name: "body a string", req: s.publishReq(t, `"{\"topic\":\"p\"}"`), status: 400, code: "invalid_json"},
		{name: "empty batch", req: s.publishReq(t, `[]`), status: 400, code: "empty_batch"},
		{name: "invalid topic", req: s.publishReq(t, `{"topic":"-p","data":"x"}`), status: 400, code: "invalid_topic"},
		{name: "text/plain", req: s.publishReq(t, `{"topic":"p","data":"x"}`, "Content-Type", "text/plain"), status: 415, code: "unsupported_media_type"},
		{name: "10 MiB with Content-Length", raw: func(c net.Conn) error {
			if _, err := io.WriteString(c, rawRequest("POST", "/v1/publish", authLine, "Content-Type: application/json",
				"Content-Length: "+strconv.Itoa(tenMiB))); err != nil {
				return err
			}
			_, err := c.Write(bytes.Repeat([]byte("a"), tenMiB))
			return err
		}, status: 413, code: "body_too_large"},
		{name: "10 MiB chunked", raw: func(c net.Conn) error {
			if _, err := io.WriteString(c, rawRequest("POST", "/v1/publish", authLine, "Content-Type: application/json",
				"Transfer-Encoding: chunked")); err != nil {
				return err
			}
			chunk := append([]byte(strconv.FormatInt(64<<10, 16)+"\r\n"), bytes.Repeat([]byte("a"), 64<<10)...)
			chunk = append(chunk, "\r\n"...)
			for range tenMiB / (64 << 10) {
				if _, err := c.Write(chunk); err != nil {
					return err
				}
			}
			_, err := io.WriteString(c, "0\r\n\r\n")
			return err
		}, status: 413, code: "body_too_large"},
		{name: "1001 events", req: s.publishReq(t, "["+strings.Join(batch, ",")+"]"), status: 413, code: "batch_too_large"},
		{name: "event with CR", req: s.publishReq(t, `{"topic":"p","event":"a\rb","data":"x"}`), status: 400, code: "invalid_event"},
		{name: "event with LF", req: s.publishReq(t, `{"topic":"p","event":"a\nb","data":"x"}`), status: 400, code: "invalid_event"},
		{name: "event with NUL", req: s.publishReq(t, `{"topic":"p","event":"a\u0000b","data":"x"}`), status: 400, code: "invalid_event"},
		{name: "event 201 bytes", req: s.publishReq(t, `{"topic":"p","event":"`+strings.Repeat("e", 201)+`","data":"x"}`), status: 400, code: "invalid_event"},
		{name: "event reset", req: s.publishReq(t, `{"topic":"p","event":"reset","data":"x"}`), status: 400, code: "reserved_event"},
		{name: "data 300 KiB", req: s.publishReq(t, big), status: 413, code: "data_too_large"},
		{name: "idempotency_key with a control character", req: s.publishReq(t, `{"topic":"p","data":"x","idempotency_key":"a\u0001b"}`),
			status: 400, code: "invalid_idempotency_key"},
		{name: "Idempotency-Key header not ASCII", req: s.publishReq(t, `{"topic":"p","data":"x"}`, "Idempotency-Key", "clé"),
			status: 400, code: "invalid_idempotency_key"},
		{name: "Idempotency-Key header on a batch", req: s.publishReq(t, `[{"topic":"p","data":"x"},{"topic":"p","data":"y"}]`, "Idempotency-Key", "k1"),
			status: 400, code: "invalid_idempotency_key"},
		{name: "no Authorization", req: s.publishReq(t, `{"topic":"p","data":"x"}`, "Authorization", ""), status: 401, code: "missing_token",
			check: wwwAuth(`Bearer realm="ssecluster"`)},
		{name: "wrong bearer", req: s.publishReq(t, `{"topic":"p","data":"x"}`, "Authorization", "Bearer "+wrong), status: 401, code: "invalid_token",
			check: wwwAuth(`Bearer realm="ssecluster", error="invalid_token"`)},
		{name: "two Authorization headers", raw: rawText(rawRequest("POST", "/v1/publish", authLine, authLine,
			"Content-Type: application/json", "Content-Length: 24") + `{"topic":"p","data":"x"}`), status: 400, code: "ambiguous_token"},
		{name: "JWT only in the query", req: func() *http.Request {
			r := s.publishReq(t, `{"topic":"orders/1","data":"x"}`, "Authorization", "")
			r.URL.RawQuery = "token=" + pubOrders
			return r
		}(), status: 401, code: "missing_token"},
		{name: "subscribe-only JWT", req: s.publishReq(t, `{"topic":"orders/1","data":"x"}`, "Authorization", "Bearer "+subOnly), status: 403, code: "forbidden_topic"},
		{name: "orders JWT to users", req: s.publishReq(t, `{"topic":"users/1","data":"x"}`, "Authorization", "Bearer "+pubOrders), status: 403, code: "forbidden_topic"},
		{name: "orders JWT to orders/1 is accepted", req: s.publishReq(t, `{"topic":"orders/1","data":"x"}`, "Authorization", "Bearer "+pubOrders), status: 200, check: ok},
		{name: "data nested 20000 deep", req: s.publishReq(t, `{"topic":"p","data":`+strings.Repeat("[", 20000)+strings.Repeat("]", 20000)+`}`),
			status: 400, code: "invalid_json"},
		{name: "malformed media type", req: s.publishReq(t, `{"topic":"p","data":"x"}`, "Content-Type", "application/json; charset"),
			status: 415, code: "unsupported_media_type"},
		{name: "Bearer without a token", req: s.publishReq(t, `{"topic":"p","data":"x"}`, "Authorization", "Bearer"), status: 401, code: "missing_token"},
		{name: "admin token as publish token", req: s.publishReq(t, `{"topic":"p","data":"x"}`, "Authorization", "Bearer "+s.adminToken),
			status: 401, code: "invalid_token"},
		{name: "10 MiB announced with Expect: 100-continue is refused before the body", raw: rawText(rawRequest("POST", "/v1/publish",
			authLine, "Content-Type: application/json", "Expect: 100-continue", "Content-Length: "+strconv.Itoa(tenMiB))),
			status: 413, code: "body_too_large"},
		{name: "PUT", req: request(t, http.MethodPut, s.node, "/v1/publish", strings.NewReader(`{}`), "Authorization", "Bearer "+s.publishToken),
			status: 405, code: "method_not_allowed"},
		{name: "unknown path", req: s.events(t, "/v1/../admin/v1/node"), status: 404, code: "not_found"},
	}
	s.runAll(t, cases)
}

// wireCases are malformed or oversized requests, sent raw.
func (s *badSuite) wireCases(t *testing.T) {
	pad := func(n int) string { return "X-Pad: " + strings.Repeat("p", n) }
	var many []string
	for i := range 600 {
		many = append(many, fmt.Sprintf("X-Many-%03d: %s", i, strings.Repeat("m", 50)))
	}
	closes := func(t *testing.T, a answer) {
		if !a.close {
			t.Error("the answer does not close the connection")
		}
	}
	cases := []badCase{
		{name: "one 64 KiB header", raw: rawText(rawRequest("GET", "/v1/events?topic=orders/1", pad(64<<10))),
			status: 431, code: "headers_too_large", check: closes},
		{name: "600 headers of 60 bytes", raw: rawText(rawRequest("GET", "/v1/events?topic=orders/1", many...)),
			status: 431, code: "headers_too_large", check: closes},
		{name: "one 256 KiB header: Go's own plain-text 431", raw: rawText(rawRequest("GET", "/v1/events?topic=orders/1", pad(256<<10))),
			status: 431, check: func(t *testing.T, a answer) {
				if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("Content-Type %q, want Go's text/plain", ct)
				}
			}},
		{name: "request target 17 KiB", raw: rawText(rawRequest("GET", "/v1/events?topic="+strings.Repeat("a", 17<<10))),
			status: 414, code: "uri_too_long", check: closes},
		{name: "request target 17 KiB on publish", req: request(t, http.MethodPost, s.node, "/v1/publish?x="+strings.Repeat("a", 17<<10),
			strings.NewReader(`{}`), "Authorization", "Bearer "+s.publishToken), status: 414, code: "uri_too_long", check: closes},
		// Go's server moves Host out of the header map; it is a header
		// field all the same and counts against the limit.
		{name: "64 KiB Host header", raw: rawText(strings.Replace(rawRequest("GET", "/healthz"), "Host: bad.test", "Host: "+strings.Repeat("h", 64<<10), 1)),
			status: 431, code: "headers_too_large", check: closes},
		{name: "NUL in a header value: Go's own 400", raw: rawText(rawRequest("GET", "/healthz", "X-A: a\x00b")), status: 400},
		{name: "control byte in Last-Event-ID: Go's own 400", raw: rawText(rawRequest("GET", "/v1/events?topic=orders/1",
			"Authorization: Bearer "+s.subAll, "Last-Event-ID: 1\x01")), status: 400},
		{name: "Transfer-Encoding gzip: Go's own 501", raw: rawText(rawRequest("POST", "/v1/publish",
			"Authorization: Bearer "+s.publishToken, "Transfer-Encoding: gzip")), status: 501},
		{name: "CR in a header name: Go's own 400", raw: rawText(rawRequest("GET", "/healthz", "X-Evil\rName: 1")), status: 400},
		{name: "two different Content-Lengths: Go's own 400", raw: rawText(rawRequest("POST", "/v1/publish",
			"Authorization: Bearer "+s.publishToken, "Content-Length: 5", "Content-Length: 6") + "123456"), status: 400},
	}
	s.runAll(t, cases)
}

// slowCases wait for the node's timeouts; they run concurrently.
func (s *badSuite) slowCases(t *testing.T) {
	cases := []badCase{
		{name: "slowloris: headers trickled past READ_HEADER_TIMEOUT are cut off unanswered", raw: func(c net.Conn) error {
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: bad.test\r\n"); err != nil {
				return err
			}
			tick := time.NewTicker(200 * time.Millisecond) // the attack's pace
			defer tick.Stop()
			for i := 0; ; i++ {
				<-tick.C
				if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", i); err != nil {
					return err
				}
			}
		}, status: 0},
		// Requests refused before their body is read must be answered even
		// when the announced body never comes (and at worst be cut off at
		// BODY_TIMEOUT), not held open for good.
		{name: "unauthenticated publish whose body never finishes is answered", raw: rawText(rawRequest("POST", "/v1/publish",
			"Content-Type: application/json", "Content-Length: 100") + `{"topic":"`), status: 401, code: "missing_token"},
		{name: "text/plain publish whose body never finishes is answered", raw: rawText(rawRequest("POST", "/v1/publish",
			"Authorization: Bearer "+s.publishToken, "Content-Type: text/plain", "Content-Length: 100") + `{"topic":"`),
			status: 415, code: "unsupported_media_type"},
		{name: "invalid stream request with a body that never comes is answered", raw: rawText(rawRequest("GET", "/v1/events?topic=-x",
			"Authorization: Bearer "+s.subAll, "Content-Length: 100")), status: 400, code: "invalid_topic"},
		{name: "healthz with a body that never comes is answered", raw: rawText(rawRequest("GET", "/healthz", "Content-Length: 100")), status: 200},
		{name: "body never finished", raw: rawText(rawRequest("POST", "/v1/publish", "Authorization: Bearer "+s.publishToken,
			"Content-Type: application/json", "Content-Length: 100") + `{"topic":"`), status: 408, code: "body_timeout",
			check: func(t *testing.T, a answer) {
				if !a.close {
					t.Error("the 408 does not close the connection")
				}
			}},
	}
	// Concurrent subtests rather than t.Parallel, whose -parallel
	// (GOMAXPROCS) would queue the waits one after another.
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() { t.Run(c.name, func(t *testing.T) { s.run(t, c) }) })
	}
	wg.Go(func() { t.Run("stream closed when its token expires", s.tokenExpiry) })
	wg.Wait()
}

// expiredEndRe matches the end of a stream closed at its token's expiry:
// after the last frame, a retry hint and the comment token_expired.
var expiredEndRe = regexp.MustCompile(`\n\nretry: [0-9]+\n: token_expired\n\n$`)

// tokenExpiry opens a stream whose token expires in about 2 s and checks it
// ends at exp plus the leeway with a retry hint and a token_expired comment,
// then the chunked body's end.
func (s *badSuite) tokenExpiry(t *testing.T) {
	s.mu.Lock()
	s.cases++
	s.mu.Unlock()
	exp := jwt.NewNumericDate(time.Now().Add(2 * time.Second)) // whole seconds, as the node sees it
	tok := s.token(t, []byte(s.secret), &auth.Access{Subscribe: []string{"expiry/*"}}, func(c *auth.Claims) { c.ExpiresAt = exp })
	ctx, cancel := context.WithTimeout(context.Background(), ioBound)
	defer cancel()
	resp, err := s.client.Do(s.events(t, "/v1/events?topic=expiry/1", "Authorization", "Bearer "+tok).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !slices.Equal(resp.TransferEncoding, []string{"chunked"}) {
		t.Fatalf("stream: %d, transfer encoding %q; want 200 chunked", resp.StatusCode, resp.TransferEncoding)
	}
	body, err := io.ReadAll(resp.Body) // nil only at the chunked body's terminator
	ended := time.Now()
	if err != nil {
		t.Fatalf("the stream did not end cleanly: %v; got %q", err, body)
	}
	if !expiredEndRe.Match(body) {
		t.Errorf("the stream ended with %q, want a frame of a retry hint and the comment token_expired", body[max(0, len(body)-120):])
	}
	if deadline := exp.Add(time.Second); ended.Before(deadline) { // JWT_LEEWAY
		t.Errorf("the stream ended at %s, before exp+leeway %s", ended.Format(time.StampMilli), deadline.Format(time.StampMilli))
	}
	p := sse.NewParser(bytes.NewReader(body))
	var last sse.Event
	for {
		ev, err := p.Next()
		if err != nil {
			break
		}
		if ev.Dispatch {
			t.Errorf("the stream dispatched %+v", ev)
		}
		last = ev
	}
	if last.Retry < 0 || last.Comments != 1 || last.Dispatch {
		t.Errorf("last block %+v, want a retry hint and one comment", last)
	}
	// The reaper counts the close asynchronously.
	deadline := time.Now().Add(ioBound)
	for {
		v, _ := metricValue(s.metrics(t), "ssecluster_connections_closed_total", map[string]string{"reason": "token_expired"})
		if v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssecluster_connections_closed_total{reason=\"token_expired\"} = %v, want >= 1", v)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	s.healthy(t)
}

func (s *badSuite) adminCases(t *testing.T) {
	tok := s.adminToken
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+tok))
	s.remember(tok[:len(tok)-1], tok+"x", basic)
	bearer := "Bearer " + tok
	unauthorized := wwwAuth(`Bearer realm="ssecluster-admin"`)
	cases := []badCase{
		{name: "no token", req: s.adminReq(t, "GET", "/admin/v1/node", "", ""), admin: true, status: 401, code: "unauthorized", check: unauthorized},
		{name: "wrong token", req: s.adminReq(t, "GET", "/admin/v1/node", "Bearer "+randomHex(32), ""), admin: true, status: 401, code: "unauthorized", check: unauthorized},
		{name: "truncated token", req: s.adminReq(t, "GET", "/admin/v1/node", "Bearer "+tok[:len(tok)-1], ""), admin: true, status: 401, code: "unauthorized", check: unauthorized},
		{name: "token plus one byte", req: s.adminReq(t, "GET", "/admin/v1/node", "Bearer "+tok+"x", ""), admin: true, status: 401, code: "unauthorized", check: unauthorized},
		{name: "Basic scheme", req: s.adminReq(t, "GET", "/admin/v1/node", basic, ""), admin: true, status: 401, code: "unauthorized", check: unauthorized},
		{name: "metrics without token", req: s.adminReq(t, "GET", "/metrics", "", ""), admin: true, status: 401, code: "unauthorized", check: unauthorized},
		{name: "unknown path without token", req: s.adminReq(t, "GET", "/admin/v1/nope", "", ""), admin: true, status: 401, code: "unauthorized", check: unauthorized},
		{name: "drain without token", req: s.adminReq(t, "POST", "/admin/v1/drain", "", ""), admin: true, status: 401, code: "unauthorized", check: unauthorized},
		{name: "publish token on the admin API", req: s.adminReq(t, "GET", "/admin/v1/node", "Bearer "+s.publishToken, ""), admin: true,
			status: 401, code: "unauthorized", check: unauthorized},
		{name: "JWT on the admin API", req: s.adminReq(t, "GET", "/admin/v1/node", "Bearer "+s.subAll, ""), admin: true,
			status: 401, code: "unauthorized", check: unauthorized},
		{name: "connections limit abc", req: s.adminReq(t, "GET", "/admin/v1/connections?limit=abc", bearer, ""), admin: true, status: 400, code: "invalid_limit"},
		{name: "connections limit 0", req: s.adminReq(t, "GET", "/admin/v1/connections?limit=0", bearer, ""), admin: true, status: 400, code: "invalid_limit"},
		{name: "connections limit 2^64", req: s.adminReq(t, "GET", "/admin/v1/connections?limit=18446744073709551616", bearer, ""), admin: true, status: 400, code: "invalid_limit"},
		{name: "connections cursor abc", req: s.adminReq(t, "GET", "/admin/v1/connections?cursor=abc", bearer, ""), admin: true, status: 400, code: "invalid_cursor"},
		{name: "topics query does not parse", req: s.adminReq(t, "GET", "/admin/v1/topics?cursor=%%%", bearer, ""), admin: true, status: 400, code: "bad_query"},
		{name: "connections query does not parse", req: s.adminReq(t, "GET", "/admin/v1/connections?topic=%zz", bearer, ""), admin: true, status: 400, code: "bad_query"},
		{name: "connections topic NUL", req: s.adminReq(t, "GET", "/admin/v1/connections?topic=%00", bearer, ""), admin: true, status: 400, code: "invalid_topic"},
		{name: "topic path leading dash", req: s.adminReq(t, "GET", "/admin/v1/topics/-bad", bearer, ""), admin: true, status: 400, code: "invalid_topic"},
		{name: "topic path LF", req: s.adminReq(t, "GET", "/admin/v1/topics/orders%0A1", bearer, ""), admin: true, status: 400, code: "invalid_topic"},
		{name: "topic path dot-dot", req: s.adminReq(t, "GET", "/admin/v1/topics/../node", bearer, ""), admin: true, status: 400, code: "invalid_topic"},
		{name: "drain body over 4 KiB", req: s.adminReq(t, "POST", "/admin/v1/drain", bearer, `{"window_s":-1,"x":"`+strings.Repeat("a", 5000)+`"}`,
			"Content-Type", "application/json"), admin: true, status: 413, code: "body_too_large"},
		{name: "drain unknown field", req: s.adminReq(t, "POST", "/admin/v1/drain", bearer, `{"window_s":-1,"x":1}`, "Content-Type", "application/json"),
			admin: true, status: 400, code: "invalid_json"},
		{name: "drain trailing data", req: s.adminReq(t, "POST", "/admin/v1/drain", bearer, `{"window_s":-1} x`, "Content-Type", "application/json"),
			admin: true, status: 400, code: "invalid_json"},
		{name: "drain window 1e300", req: s.adminReq(t, "POST", "/admin/v1/drain", bearer, `{"window_s":1e300}`, "Content-Type", "application/json"),
			admin: true, status: 400, code: "invalid_window"},
		{name: "kick unknown connection", req: s.adminReq(t, "DELETE", "/admin/v1/connections/999999", bearer, ""), admin: true, status: 404, code: "unknown_connection"},
		{name: "kick connection abc", req: s.adminReq(t, "DELETE", "/admin/v1/connections/abc", bearer, ""), admin: true, status: 400, code: "invalid_id"},
		{name: "kick connection 0", req: s.adminReq(t, "DELETE", "/admin/v1/connections/0", bearer, ""), admin: true, status: 400, code: "invalid_id"},
		{name: "kick connection -1", req: s.adminReq(t, "DELETE", "/admin/v1/connections/-1", bearer, ""), admin: true, status: 400, code: "invalid_id"},
		{name: "drain unknown node", req: s.adminReq(t, "POST", "/admin/v1/nodes/nope/drain", bearer, ""), admin: true, status: 404, code: "unknown_node"},
		{name: "drain invalid node id", req: s.adminReq(t, "POST", "/admin/v1/nodes/bad!id/drain", bearer, ""), admin: true, status: 400, code: "invalid_node_id"},
		{name: "drain node id of 65 bytes", req: s.adminReq(t, "POST", "/admin/v1/nodes/"+strings.Repeat("n", 65)+"/drain", bearer, ""),
			admin: true, status: 400, code: "invalid_node_id"},
		// Never a valid drain: it would drain the suite's node.
		{name: "drain negative window", req: s.adminReq(t, "POST", "/admin/v1/drain", bearer, `{"window_s":-1}`, "Content-Type", "application/json"),
			admin: true, status: 400, code: "invalid_window"},
		{name: "drain window a string", req: s.adminReq(t, "POST", "/admin/v1/drain", bearer, `{"window_s":"soon"}`, "Content-Type", "application/json"),
			admin: true, status: 400, code: "invalid_json"},
		{name: "drain as text/plain", req: s.adminReq(t, "POST", "/admin/v1/drain", bearer, `{"window_s":-1}`, "Content-Type", "text/plain"),
			admin: true, status: 415, code: "unsupported_media_type"},
		{name: "drain self by id with a negative window", req: s.adminReq(t, "POST", "/admin/v1/nodes/bad/drain", bearer, `{"window_s":-1}`,
			"Content-Type", "application/json"), admin: true, status: 400, code: "invalid_window"},
	}
	s.runAll(t, cases)
	t.Run("node is not draining", func(t *testing.T) {
		st, body := adminGet(t, "http://"+s.admin+"/admin/v1/node", s.adminToken)
		if st != http.StatusOK || !strings.Contains(body, `"draining":false`) {
			t.Fatalf("GET /admin/v1/node = %d %.300s", st, body)
		}
	})
}

func (s *badSuite) roundTripCases(t *testing.T) {
	for _, data := range []string{
		"a\rb", "a\nb", "a\r\nb", "a\n\rb", "\r\r\n\n", "x\r", "\nx", "a\r\n\r\nb", "",
		"x\n\nevent: evil\ndata: y", "x\rid: 999\r\rdata: z", "x\r\nretry: 1\r\n",
		": comment\n\n", "data: a\n\ndata: b", " leading space", "\x00nul\x00",
	} {
		t.Run(fmt.Sprintf("%q", data), func(t *testing.T) {
			s.mu.Lock()
			s.cases++
			s.mu.Unlock()
			raw, err := json.Marshal(data)
			if err != nil {
				t.Fatal(err)
			}
			s.roundTrip(t, raw, normalise(data))
			s.healthy(t)
		})
	}
	t.Run("JSON data with escaped line breaks stays one line", func(t *testing.T) {
		s.mu.Lock()
		s.cases++
		s.mu.Unlock()
		s.roundTrip(t, json.RawMessage(`{ "k": "x\n\nevent: evil\r\ndata: y" }`), `{"k":"x\n\nevent: evil\r\ndata: y"}`)
		s.healthy(t)
	})
}

// metrics returns the admin listener's /metrics text.
func (s *badSuite) metrics(t *testing.T) string {
	t.Helper()
	st, body := adminGet(t, "http://"+s.admin+"/metrics", s.adminToken)
	if st != http.StatusOK {
		t.Fatalf("GET /metrics = %d %.300s", st, body)
	}
	return body
}

var (
	metricLineRe = regexp.MustCompile(`(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} (\S+)$`)
	labelRe      = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"`)
)

// metricValue returns the value of the sample of name whose labels are
// exactly labels.
func metricValue(text, name string, labels map[string]string) (float64, bool) {
	for _, m := range metricLineRe.FindAllStringSubmatch(text, -1) {
		if m[1] != name {
			continue
		}
		got := map[string]string{}
		for _, l := range labelRe.FindAllStringSubmatch(m[2], -1) {
			got[l[1]] = l[2]
		}
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
			}
		}
		if match {
			v, err := strconv.ParseFloat(m[3], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// checkMetrics: every error answer the suite got is counted, by listener,
// status and code.
func (s *badSuite) checkMetrics(t *testing.T) {
	text := s.metrics(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, must := range []rejection{
		{"public", 400, "invalid_topic"}, {"public", 401, "missing_token"}, {"public", 403, "forbidden_topic"},
		{"public", 413, "body_too_large"}, {"public", 431, "headers_too_large"}, {"public", 414, "uri_too_long"},
		{"public", 408, "body_timeout"}, {"admin", 401, "unauthorized"}, {"admin", 404, "unknown_node"},
	} {
		if s.rejected[must] == 0 {
			t.Errorf("the suite got no %+v answer to count", must)
		}
	}
	for r, n := range s.rejected {
		labels := map[string]string{"listener": r.listener, "status": strconv.Itoa(r.status), "code": r.code}
		v, ok := metricValue(text, "ssecluster_requests_rejected_total", labels)
		if !ok || v < float64(n) {
			t.Errorf("ssecluster_requests_rejected_total%v = %v (found %v), want >= %d", labels, v, ok, n)
		}
	}
}

// checkSecrets: no credential the suite sent, nor the node's secrets, is in
// the logs, the metrics, the admin reports or any error answer.
func (s *badSuite) checkSecrets(t *testing.T) {
	texts := map[string]string{"logs": s.logs.String(), "metrics": s.metrics(t)}
	for _, p := range []string{"/admin/v1/node", "/admin/v1/nodes"} {
		st, body := adminGet(t, "http://"+s.admin+p, s.adminToken)
		if st != http.StatusOK {
			t.Fatalf("GET %s = %d %.300s", p, st, body)
		}
		texts[p] = body
	}
	s.mu.Lock()
	for i, b := range s.bodies {
		texts["error answer "+strconv.Itoa(i)] = b
	}
	var secrets []string
	for _, c := range s.sent {
		secrets = append(secrets, c)
		if parts := strings.Split(c, "."); len(parts) == 3 && len(parts[2]) >= 16 {
			secrets = append(secrets, parts[2]) // a JWT's signature
		}
	}
	s.mu.Unlock()
	for where, text := range texts {
		for i, sec := range secrets {
			if strings.Contains(text, sec) {
				t.Errorf("%s holds credential #%d the suite sent (%d bytes)", where, i, len(sec))
			}
		}
	}
}

// baseline is the process's resources with the node started and idle.
type baseline struct {
	goroutines, fds int
	heap            uint64
}

func measure(t *testing.T) baseline {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting file descriptors: %v", err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return baseline{goroutines: runtime.NumGoroutine(), fds: len(fds), heap: ms.HeapInuse}
}

// settledBaseline drops the idle connections of start-up and measures once
// the goroutine count stops falling (bounded).
func settledBaseline(t *testing.T, s *badSuite) baseline {
	t.Helper()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections() // startRun's readiness probe
	s.client.CloseIdleConnections()
	b := measure(t)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond) // polling interval
		n := measure(t)
		if n.goroutines >= b.goroutines {
			return n
		}
		b = n
	}
	return b
}

// checkResources: with every client connection closed, goroutines, file
// descriptors and heap come back near the baseline.
func (s *badSuite) checkResources(t *testing.T, base baseline) {
	s.client.CloseIdleConnections()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	var now baseline
	for {
		now = measure(t)
		if now.goroutines <= base.goroutines+8 && now.fds <= base.fds+8 {
			break
		}
		if time.Now().After(deadline) {
			var dump bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("after the suite: %d goroutines (baseline %d), %d fds (baseline %d); goroutines:\n%s",
				now.goroutines, base.goroutines, now.fds, base.fds, dump.String())
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	if now.heap > base.heap+64<<20 {
		t.Errorf("heap in use %d MiB after the suite, baseline %d MiB", now.heap>>20, base.heap>>20)
	}
	t.Logf("baseline %d goroutines, %d fds, %d MiB heap; after %d, %d, %d MiB",
		base.goroutines, base.fds, base.heap>>20, now.goroutines, now.fds, now.heap>>20)
}

// TestBadInputAdminRateLimit hammers the admin API of a node with the
// default rate limit (20/s, burst 40) until it answers 429.
func TestBadInputAdminRateLimit(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		goleak.VerifyNone(t, leaks)
	})
	tok := randomHex(32)
	logs, node, admin := startRun(t, nil, map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "ADMIN_TOKEN": tok, "NODE_ID": "ratelimited",
	})
	client := &http.Client{Transport: &http.Transport{}, Timeout: ioBound}
	t.Cleanup(client.CloseIdleConnections)
	for i := 1; i <= 200; i++ {
		req := request(t, http.MethodGet, admin, "/admin/v1/node", nil, "Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			continue
		}
		a := answer{status: resp.StatusCode, header: resp.Header, body: body}
		code, _, err := errorCode(a)
		if resp.StatusCode != http.StatusTooManyRequests || err != nil || code != "rate_limited" {
			t.Fatalf("request %d: %d %q (%v), want 200 or 429 rate_limited", i, resp.StatusCode, body, err)
		}
		if ra := resp.Header.Get("Retry-After"); ra == "" {
			t.Error("429 without Retry-After")
		} else if n, err := strconv.Atoi(ra); err != nil || n < 1 {
			t.Errorf("Retry-After %q, want whole seconds >= 1", ra)
		}
		if strings.Contains(string(body), tok) || strings.Contains(logs.String(), tok) {
			t.Error("the admin token came back")
		}
		t.Logf("429 rate_limited at request %d", i)
		if st, _ := adminGet(t, "http://"+node+"/healthz", ""); st != http.StatusOK {
			t.Errorf("healthz = %d after the rate limit", st)
		}
		return
	}
	t.Fatal("no 429 within 200 admin requests")
}
