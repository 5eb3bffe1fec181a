package node_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

func TestSubscribeValidation(t *testing.T) {
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
	many := func(k int) string {
		var q []string
		for i := range k {
			q = append(q, fmt.Sprintf("topic=t%d", i))
		}
		return "?" + strings.Join(q, "&")
	}
	cases := []struct {
		name, query, code string
	}{
		{"no query", "", "missing_topic"},
		{"no topic", "?last_event_id=x", "missing_topic"},
		{"33 topics", many(33), "too_many_topics"},
		{"empty topic", "?topic=", "invalid_topic"},
		{"empty among valid", "?topic=a&topic=", "invalid_topic"},
		{"leading dash", "?topic=-a", "invalid_topic"},
		{"leading dot", "?topic=.a", "invalid_topic"},
		{"space", "?topic=a%20b", "invalid_topic"},
		{"plus is a space", "?topic=a+b", "invalid_topic"},
		{"201 bytes", "?topic=" + strings.Repeat("a", 201), "invalid_topic"},
		{"unicode", "?topic=caf%C3%A9", "invalid_topic"},
		{"CRLF", "?topic=a%0d%0ab", "invalid_topic"},
		{"LF", "?topic=a%0ab", "invalid_topic"},
		{"NUL", "?topic=a%00", "invalid_topic"},
		{"bad percent escape", "?topic=%zz", "bad_query"},
		{"semicolon separator", "?topic=a;topic=b", "bad_query"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, r, _ := n.openRaw(t, c.query, nil)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("GET /v1/events%s: %s, want 400", c.query, r)
			}
			if code := r.errorCode(t); code != c.code {
				t.Errorf("code %q, want %q", code, c.code)
			}
		})
	}

	t.Run("limits are inclusive", func(t *testing.T) {
		for _, q := range []string{many(32), "?topic=" + strings.Repeat("a", 200), "?topic=A0._:@/-z"} {
			s := n.subscribe(t, q, "")
			s.live(t)
			s.close()
		}
	})
}

func TestSubscribeMaxTopicsConfigurable(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxTopics = 2
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	if _, r, _ := n.openRaw(t, streamQuery("a", "b", "c"), nil); r.Status != http.StatusBadRequest || r.errorCode(t) != "too_many_topics" {
		t.Fatalf("3 topics with MaxTopics 2: %s, want 400 too_many_topics", r)
	}
	n.subscribe(t, streamQuery("a", "b"), "").live(t)
}

func TestSubscribeDuplicateTopics(t *testing.T) {
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
	s := n.subscribe(t, streamQuery("dup", "dup", "dup"), "")
	s.live(t)
	n.publish(t, ev{Topic: "dup", Data: "once"})
	n.publish(t, ev{Topic: "dup", Data: "marker"})
	if got := data(s.events(t, 2)); got[0] != "once" || got[1] != "marker" {
		t.Fatalf("events %q, want [once marker]: a duplicated topic must deliver once", got)
	}
}

func TestStreamHead(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retry.Base, cfg.Retry.Cap = 1700*time.Millisecond, 2*time.Second
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	const topic = "head"
	s := n.subscribe(t, streamQuery(topic), "")
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := s.resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if s.resp.StatusCode != http.StatusOK || s.resp.ProtoMajor != 1 || s.resp.ProtoMinor != 1 {
		t.Errorf("status line %s %s, want HTTP/1.1 200", s.resp.Proto, s.resp.Status)
	}

	hint, start, live := s.head(t)
	if hint.Retry < 0 || hint.Retry > 1700 {
		t.Errorf("retry %d ms, want within [0, 1700] (attempt 0: full jitter over the base)", hint.Retry)
	}
	if hint.HasID {
		t.Errorf("retry block carries an id %q", hint.ID)
	}
	if len(start) != 0 {
		t.Fatalf("fresh stream started with events %+v", start)
	}
	parts := pubsub.MemoryConfig{}.Partitions
	if parts == 0 {
		parts = 16
	}
	c := cursorOf(t, live.ID, parts)
	if len(c) != 1 || c[0].Partition != pubsub.PartitionOf(topic, parts) {
		t.Errorf("id-only block cursor %v, want one entry for partition %d", c, pubsub.PartitionOf(topic, parts))
	}

	ids := n.publish(t, ev{Topic: topic, Data: "hello"}, ev{Topic: topic, Event: "greeting", Data: "world"})
	got := s.events(t, 2)
	want := []sse.Event{
		{ID: ids[0], HasID: true, Type: "message", Data: "hello", Retry: -1, Dispatch: true},
		{ID: ids[1], HasID: true, Type: "greeting", Data: "world", Retry: -1, Dispatch: true},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestStreamHeartbeat(t *testing.T) {
	cfg := testConfig(t)
	cfg.Heartbeat = 50 * time.Millisecond
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	s := n.subscribe(t, streamQuery("quiet"), "")
	live := s.live(t)
	// An idle stream whose partition does not move gets comments.
	for range 3 {
		b := s.nextBlock(t)
		if b.Dispatch || b.Comments == 0 || b.ID != live.ID {
			t.Fatalf("heartbeat %+v, want a comment keeping id %q", b, live.ID)
		}
	}
}

func TestStreamHTTP10(t *testing.T) {
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{}))
	const topic = "old-client"
	conn, br, resp := rawRequest(t, n.addr, "GET /v1/events?topic="+topic+" HTTP/1.0\r\n\r\n")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HTTP/1.0 stream: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if len(resp.TransferEncoding) != 0 || resp.Header.Get("Transfer-Encoding") != "" {
		t.Fatalf("HTTP/1.0 response uses Transfer-Encoding %q", resp.TransferEncoding)
	}
	if !resp.Close || resp.ContentLength != -1 {
		t.Fatalf("HTTP/1.0 response: Close %v, ContentLength %d; want a close-delimited body", resp.Close, resp.ContentLength)
	}
	// The body starts with the SSE bytes themselves, no chunk-size line.
	if p, err := br.Peek(len("retry: ")); err != nil || string(p) != "retry: " {
		t.Fatalf("body starts with %q (%v), want %q", p, err, "retry: ")
	}
	s := newStream(t, conn, resp, resp.Body)
	s.live(t)
	ids := n.publish(t, ev{Topic: topic, Data: "a\nb"})
	if e := s.nextEvent(t); e.Data != "a\nb" || e.ID != ids[0] {
		t.Fatalf("event %+v, want data %q id %q", e, "a\nb", ids[0])
	}
	// A close-delimited stream ends with the connection: a shutdown closes
	// it after the goodbye hint and the parser sees a clean EOF.
	if err := n.stop(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	rest, err := s.waitEnd(t)
	if err != io.EOF {
		t.Fatalf("stream ended with %v, want io.EOF", err)
	}
	if len(rest) == 0 || rest[len(rest)-1].Retry < 0 {
		t.Fatalf("blocks at shutdown %+v, want a final retry hint", rest)
	}
}

// TestStreamOutlivesWriteTimeout: WriteTimeout bounds one blocking write
// (the response head, a replay, a backlog); it must not end a healthy
// stream that keeps taking its heartbeats and events long after.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	cfg := testConfig(t)
	cfg.WriteTimeout = 50 * time.Millisecond
	cfg.Heartbeat = 20 * time.Millisecond
	n := startNode(t, cfg, newMemory(t, pubsub.MemoryConfig{}))
	s := n.subscribe(t, streamQuery("long"), "")
	s.live(t)
	// Each heartbeat comes at least Heartbeat/2 after the previous one, so
	// 20 of them span several WriteTimeouts.
	for range 20 {
		if b := s.nextBlock(t); b.Dispatch {
			t.Fatalf("unexpected event %+v", b)
		}
	}
	n.publish(t, ev{Topic: "long", Data: "still here"})
	if e := s.nextEvent(t); e.Data != "still here" {
		t.Fatalf("event %+v", e)
	}
	if got := n.srv.Stats().Closed[node.ReasonWriteError].Load(); got != 0 {
		t.Errorf("%d streams closed with a write error", got)
	}
}
