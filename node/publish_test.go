package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ssecluster/ssecluster/pubsub"
)

func TestPublishDelivers(t *testing.T) {
	const parts = 8
	cfg := testConfig(t)
	cfg.MaxDataBytes = 1 << 20 // the large case is ~400 KiB
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{Partitions: parts}))
	const topic = "pub"
	s := n.subscribe(t, streamQuery(topic), "")
	s.live(t)

	cases := []struct {
		name     string
		body     string // one event object or an array
		wantType []string
		wantData []string
	}{
		{"single object", `{"topic":"pub","data":"x"}`, []string{"message"}, []string{"x"}},
		{"array", `[{"topic":"pub","data":"a"},{"topic":"pub","data":"b"}]`, []string{"message", "message"}, []string{"a", "b"}},
		{"event type", `{"topic":"pub","event":"order.updated","data":"x"}`, []string{"order.updated"}, []string{"x"}},
		{"unicode event type", `{"topic":"pub","event":"ünï","data":"x"}`, []string{"ünï"}, []string{"x"}},
		{"LF lines", `{"topic":"pub","data":"a\nb\nc"}`, []string{"message"}, []string{"a\nb\nc"}},
		{"CR lines", `{"topic":"pub","data":"a\rb"}`, []string{"message"}, []string{"a\nb"}},
		{"CRLF lines", `{"topic":"pub","data":"a\r\nb\r\n"}`, []string{"message"}, []string{"a\nb\n"}},
		{"mixed breaks", `{"topic":"pub","data":"\r\r\n\n"}`, []string{"message"}, []string{"\n\n\n"}},
		{"empty string", `{"topic":"pub","data":""}`, []string{"message"}, []string{""}},
		{"field injection", `{"topic":"pub","data":"x\n\nevent: reset\nid: 1\ndata: y"}`, []string{"message"}, []string{"x\n\nevent: reset\nid: 1\ndata: y"}},
		{"leading space and colon", `{"topic":"pub","data":" :x"}`, []string{"message"}, []string{" :x"}},
		{"unicode", `{"topic":"pub","data":"héllo ✓ \u2028"}`, []string{"message"}, []string{"héllo ✓ \u2028"}},
		{"object compact", `{"topic":"pub","data": { "a" : 1 , "b" : [ true , null ] , "s":"x\ny" } }`, []string{"message"}, []string{`{"a":1,"b":[true,null],"s":"x\ny"}`}},
		{"number", `{"topic":"pub","data":42.50}`, []string{"message"}, []string{"42.50"}},
		{"bool", `{"topic":"pub","data":true}`, []string{"message"}, []string{"true"}},
		{"array data", `{"topic":"pub","data":[1, "two"]}`, []string{"message"}, []string{`[1,"two"]`}},
		{"leading whitespace body", " \n\t{\"topic\":\"pub\",\"data\":\"w\"}\n", []string{"message"}, []string{"w"}},
	}
	// A large payload with many lines crosses every write and buffer size.
	var big strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&big, "line %d %s\r\n", i, strings.Repeat("ß", i%50))
	}
	bigJSON, _ := json.Marshal(map[string]string{"topic": "pub", "data": big.String()})
	cases = append(cases, struct {
		name     string
		body     string
		wantType []string
		wantData []string
	}{"large", string(bigJSON), []string{"message"}, []string{strings.ReplaceAll(big.String(), "\r\n", "\n")}})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ids := publishIDs(t, n.post(t, c.body, nil), len(c.wantData))
			for i, id := range ids {
				cur := cursorOf(t, id, parts)
				if len(cur) != 1 || cur[0].Partition != pubsub.PartitionOf(topic, parts) || !pubsub.ValidEpoch(cur[0].Epoch) {
					t.Errorf("id %q: want a one-entry cursor in partition %d", id, pubsub.PartitionOf(topic, parts))
				}
				e := s.nextEvent(t)
				if e.ID != id || e.Type != c.wantType[i] || e.Data != c.wantData[i] {
					t.Errorf("event %d = id %q type %q data %q, want id %q type %q data %q",
						i, e.ID, e.Type, e.Data, id, c.wantType[i], c.wantData[i])
				}
			}
		})
	}
}

func TestPublishErrors(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBodyBytes = 32 << 10 // holds 1001 small events
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	batch := func(k int) string {
		evs := make([]string, k)
		for i := range evs {
			evs[i] = `{"topic":"t","data":1}`
		}
		return "[" + strings.Join(evs, ",") + "]"
	}
	big := `{"topic":"t","data":"` + strings.Repeat("x", 40<<10) + `"}`
	cases := []struct {
		name   string
		body   string
		header http.Header
		status int
		code   string
	}{
		{"empty body", "", nil, 400, "invalid_json"},
		{"whitespace body", " \n ", nil, 400, "invalid_json"},
		{"invalid JSON", `{"topic":`, nil, 400, "invalid_json"},
		{"not JSON", `hello`, nil, 400, "invalid_json"},
		{"trailing data", `{"topic":"t","data":1} x`, nil, 400, "invalid_json"},
		{"two objects", `{"topic":"t","data":1}{"topic":"t","data":2}`, nil, 400, "invalid_json"},
		{"unknown field", `{"topic":"t","data":1,"extra":2}`, nil, 400, "invalid_json"},
		{"topic not a string", `{"topic":1,"data":1}`, nil, 400, "invalid_json"},
		{"event not a string", `{"topic":"t","event":["x"],"data":1}`, nil, 400, "invalid_json"},
		{"body a string", `"t"`, nil, 400, "invalid_json"},
		{"body a number", `12`, nil, 400, "invalid_json"},
		{"array of numbers", `[1,2]`, nil, 400, "invalid_json"},
		{"empty array", `[]`, nil, 400, "empty_batch"},
		{"1001 events", batch(1001), nil, 413, "batch_too_large"},
		{"body too large", big, nil, 413, "body_too_large"},
		{"missing topic", `{"data":1}`, nil, 400, "invalid_topic"},
		{"invalid topic", `{"topic":"-t","data":1}`, nil, 400, "invalid_topic"},
		{"topic with space", `{"topic":"a b","data":1}`, nil, 400, "invalid_topic"},
		{"topic too long", `{"topic":"` + strings.Repeat("a", 201) + `","data":1}`, nil, 400, "invalid_topic"},
		{"invalid topic in batch", `[{"topic":"t","data":1},{"topic":"","data":1}]`, nil, 400, "invalid_topic"},
		{"event with LF", `{"topic":"t","event":"a\nb","data":1}`, nil, 400, "invalid_event"},
		{"event with CR", `{"topic":"t","event":"a\rb","data":1}`, nil, 400, "invalid_event"},
		{"event with NUL", `{"topic":"t","event":"a\u0000","data":1}`, nil, 400, "invalid_event"},
		{"event too long", `{"topic":"t","event":"` + strings.Repeat("e", 201) + `","data":1}`, nil, 400, "invalid_event"},
		{"event reset", `{"topic":"t","event":"reset","data":1}`, nil, 400, "reserved_event"},
		{"missing data", `{"topic":"t"}`, nil, 400, "missing_data"},
		{"idempotency key with control", `{"topic":"t","data":1,"idempotency_key":"a\u0001"}`, nil, 400, "invalid_idempotency_key"},
		{"idempotency key non-ASCII", `{"topic":"t","data":1,"idempotency_key":"ké"}`, nil, 400, "invalid_idempotency_key"},
		{"idempotency key too long", `{"topic":"t","data":1,"idempotency_key":"` + strings.Repeat("k", 201) + `"}`, nil, 400, "invalid_idempotency_key"},
		{"idempotency key not a string", `{"topic":"t","data":1,"idempotency_key":5}`, nil, 400, "invalid_json"},
		{"header key with a batch", `[{"topic":"t","data":1},{"topic":"t","data":2}]`, http.Header{"Idempotency-Key": {"k"}}, 400, "invalid_idempotency_key"},
		{"header key differs from body", `{"topic":"t","data":1,"idempotency_key":"a"}`, http.Header{"Idempotency-Key": {"b"}}, 400, "invalid_idempotency_key"},
		{"header key too long", `{"topic":"t","data":1}`, http.Header{"Idempotency-Key": {strings.Repeat("k", 201)}}, 400, "invalid_idempotency_key"},
		{"text/plain", `{"topic":"t","data":1}`, http.Header{"Content-Type": {"text/plain"}}, 415, "unsupported_media_type"},
		{"form", `topic=t`, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 415, "unsupported_media_type"},
		{"bad media type", `{"topic":"t","data":1}`, http.Header{"Content-Type": {"application/json; ;"}}, 415, "unsupported_media_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := n.post(t, c.body, c.header)
			if r.Status != c.status {
				t.Fatalf("status %s, want %d", r, c.status)
			}
			if code := r.errorCode(t); code != c.code {
				t.Errorf("code %q, want %q (%s)", code, c.code, r.Body)
			}
		})
	}
	if got := n.srv.Stats().Published.Load(); got != 0 {
		t.Errorf("Published = %d after only refused requests, want 0", got)
	}

	t.Run("charset is fine", func(t *testing.T) {
		publishIDs(t, n.post(t, `{"topic":"t","data":1}`, http.Header{"Content-Type": {"application/json; charset=utf-8"}}), 1)
	})
	t.Run("no content type is fine", func(t *testing.T) {
		publishIDs(t, n.do(t, http.MethodPost, "/v1/publish", nil, []byte(`{"topic":"t","data":1}`)), 1)
	})
	t.Run("1000 events", func(t *testing.T) {
		cfg := testConfig(t)
		n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
		publishIDs(t, n.post(t, batch(1000), nil), 1000)
	})
	t.Run("routes", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			status       int
			code         string
		}{
			{http.MethodGet, "/v1/publish", 405, "method_not_allowed"},
			{http.MethodPost, "/v1/events", 405, "method_not_allowed"},
			{http.MethodGet, "/nope", 404, "not_found"},
		} {
			r := n.do(t, c.method, c.path, nil, nil)
			if r.Status != c.status || r.errorCode(t) != c.code {
				t.Errorf("%s %s: %s, want %d %s", c.method, c.path, r, c.status, c.code)
			}
		}
	})
}

// TestPublishHostileBodies sends bodies a client could get wrong in any
// way: every answer is a 4xx JSON error or a 200, never a 5xx.
func TestPublishHostileBodies(t *testing.T) {
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
	bodies := []string{
		"\x00", "\xff\xfe", "[", "]", "{}", "[{}]", "null", "[null]", "true", `{"topic":null,"data":1}`,
		`{"topic":"t","data":"\ud800"}`, `{"topic":"t","data":"\xff"}`, `{"topic":"t","data":1,"topic":"u"}`,
		`{"Topic":"t","Data":1}`, `{"topic":"t","data":1e999}`, `[[{"topic":"t","data":1}]]`,
		`{"topic":"t","data":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
		`{"topic":"t","event":"","data":1}`, `{"topic":"t","data":null}`, `{"topic":"t","data":{}}`,
	}
	for i, b := range bodies {
		r := n.post(t, b, nil)
		switch {
		case r.Status == http.StatusOK:
		case r.Status >= 400 && r.Status < 500:
			r.errorCode(t)
		default:
			t.Errorf("body %d %q: %s, want 200 or a 4xx JSON error", i, b, r)
		}
	}
}

func TestPublishToken(t *testing.T) {
	cfg := testConfig(t)
	cfg.PublishToken = "s3cret"
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	const body = `{"topic":"t","data":1}`
	cases := []struct {
		name, auth string
		status     int
		code       string
	}{
		{"missing", "", 401, "missing_token"},
		{"wrong token", "Bearer nope", 401, "invalid_token"},
		{"token prefix", "Bearer s3cre", 401, "invalid_token"},
		{"token longer", "Bearer s3crett", 401, "invalid_token"},
		{"basic scheme", "Basic czNjcmV0", 401, "missing_token"},
		{"no scheme", "s3cret", 401, "missing_token"},
		{"right", "Bearer s3cret", 200, ""},
		{"scheme case-insensitive", "bearer s3cret", 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr http.Header
			if c.auth != "" {
				hdr = http.Header{"Authorization": {c.auth}}
			}
			r := n.post(t, body, hdr)
			if r.Status != c.status {
				t.Fatalf("status %s, want %d", r, c.status)
			}
			if c.code != "" && r.errorCode(t) != c.code {
				t.Errorf("code of %s, want %s", r, c.code)
			}
		})
	}
	// Subscribing needs no publish token.
	n.subscribe(t, streamQuery("t"), "").live(t)
}

func TestPublishIdempotency(t *testing.T) {
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
	const topic = "idem"
	s := n.subscribe(t, streamQuery(topic), "")
	s.live(t)

	hdr := http.Header{"Idempotency-Key": {"order-1"}}
	first := publishIDs(t, n.post(t, `{"topic":"idem","data":"once"}`, hdr), 1)[0]
	again := publishIDs(t, n.post(t, `{"topic":"idem","data":"once"}`, hdr), 1)[0]
	if again != first {
		t.Fatalf("retried publish with the same Idempotency-Key: id %q, want the first id %q", again, first)
	}
	// The key in the body is the same key.
	inBody := publishIDs(t, n.post(t, `{"topic":"idem","data":"once","idempotency_key":"order-1"}`, nil), 1)[0]
	if inBody != first {
		t.Fatalf("same key in the body: id %q, want %q", inBody, first)
	}
	// Body keys deduplicate inside and across batches.
	batch := `[{"topic":"idem","data":"b1","idempotency_key":"b-1"},{"topic":"idem","data":"b2","idempotency_key":"b-2"}]`
	b1 := publishIDs(t, n.post(t, batch, nil), 2)
	b2 := publishIDs(t, n.post(t, batch, nil), 2)
	if b1[0] != b2[0] || b1[1] != b2[1] {
		t.Fatalf("retried batch ids %q, want %q", b2, b1)
	}
	// Another topic with the same key is another event.
	other := n.publish(t, ev{Topic: "idem-other", Data: "x", IdempotencyKey: "order-1"})[0]
	if other == first {
		t.Fatalf("same key on another topic returned the same id %q", other)
	}
	marker := n.publish(t, ev{Topic: topic, Data: "marker"})[0]

	got := s.events(t, 4)
	want := []struct{ id, data string }{{first, "once"}, {b1[0], "b1"}, {b1[1], "b2"}, {marker, "marker"}}
	for i, w := range want {
		if got[i].ID != w.id || got[i].Data != w.data {
			t.Errorf("event %d = %q %q, want %q %q", i, got[i].ID, got[i].Data, w.id, w.data)
		}
	}
}

// TestPublishIDsMatchStream checks, for a batch spread over partitions, that
// every returned id is the id a single-topic subscriber sees.
func TestPublishIDsMatchStream(t *testing.T) {
	const parts = 4
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{Partitions: parts}))
	topics := []string{topicsIn(0, parts, 1, "m")[0], topicsIn(1, parts, 1, "m")[0], topicsIn(3, parts, 1, "m")[0]}
	streams := make([]*stream, len(topics))
	for i, tp := range topics {
		streams[i] = n.subscribe(t, streamQuery(tp), "")
		streams[i].live(t)
	}
	var evs []ev
	for i := range 9 {
		evs = append(evs, ev{Topic: topics[i%3], Data: fmt.Sprint(i)})
	}
	ids := n.publish(t, evs...)
	for i, id := range ids {
		e := streams[i%3].nextEvent(t)
		if e.ID != id || e.Data != fmt.Sprint(i) {
			t.Errorf("topic %s: event %q %q, want id %q data %d", topics[i%3], e.ID, e.Data, id, i)
		}
		c := cursorOf(t, id, parts)
		if c[0].Partition != pubsub.PartitionOf(topics[i%3], parts) {
			t.Errorf("id %q in partition %d, want %d", id, c[0].Partition, pubsub.PartitionOf(topics[i%3], parts))
		}
	}
}
