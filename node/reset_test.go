package node_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

// resetOf decodes a reset event, checking its shape.
func resetOf(t testing.TB, e sse.Event) (topic, reason string) {
	t.Helper()
	if e.Type != "reset" || !e.Dispatch {
		t.Fatalf("event %+v, want event: reset", e)
	}
	var d map[string]string
	if err := json.Unmarshal([]byte(e.Data), &d); err != nil || len(d) != 2 || d["topic"] == "" || d["reason"] == "" {
		t.Fatalf("reset data %q, want JSON {\"topic\",\"reason\"} (%v)", e.Data, err)
	}
	return d["topic"], d["reason"]
}

// checkResets checks that start holds exactly one reset per topic of want,
// each with reason, and returns the id of the last one.
func checkResets(t testing.TB, start []sse.Event, want []string, reason string) string {
	t.Helper()
	var got []string
	for _, e := range start {
		tp, r := resetOf(t, e)
		if r != reason {
			t.Errorf("reset of %s has reason %q, want %q", tp, r, reason)
		}
		got = append(got, tp)
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Fatalf("resets for %q, want one for each of %q", got, want)
	}
	return start[len(start)-1].ID
}

func TestResetMalformedCursor(t *testing.T) {
	const parts = 8
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{Partitions: parts}))
	topics := append(topicsIn(1, parts, 2, "mal"), topicsIn(6, parts, 1, "mal")...)
	query := streamQuery(topics...)
	var nine []string
	for p := range parts + 1 {
		nine = append(nine, fmt.Sprintf("%d.abc.1-0", p))
	}
	cases := []struct{ name, cursor string }{
		{"garbage", "garbage"},
		{"dollar", "$"},
		{"bare redis id", "0-0"},
		{"bare number", "5"},
		{"leading space", " 1.abc.1-0"},
		{"no epoch", "1..1-0"},
		{"epoch too long", "1.abcdefghijklmnopq.1-0"},
		{"epoch upper case", "1.ABC.1-0"},
		{"partition out of range", fmt.Sprintf("%d.abc.1-0", parts)},
		{"negative partition", "-1.abc.1-0"},
		{"leading zero partition", "01.abc.1-0"},
		{"huge position", "1.abc.18446744073709551616-0"},
		{"huge sequence", "1.abc.1-99999999999999999999"},
		{"position plus", "1.abc.+"},
		{"more entries than partitions", strings.Join(nine, "_")},
		{"unsorted", "6.abc.1-0_1.abc.1-0"},
		{"repeated partition", "1.abc.1-0_1.abc.2-0"},
		{"empty entry", "1.abc.1-0__6.abc.1-0"},
		{"long garbage", strings.Repeat("1", 2000)}, // longer: 400 cursor_too_long (TestCursorLimits)
		{"NUL", "1.abc.1-0\x00"},
		{"unicode", "1.ábc.1-0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := n.subscribe(t, query+"&last_event_id="+url.QueryEscape(c.cursor), "")
			_, start, live := s.head(t)
			last := checkResets(t, start, topics, "malformed_cursor")
			if last != live.ID {
				t.Errorf("last reset id %q, live id %q: want the same cursor", last, live.ID)
			}
			if cur := cursorOf(t, live.ID, parts); len(cur) != 2 {
				t.Errorf("cursor %q after resets, want one entry per partition", live.ID)
			}
			ids := n.publish(t, ev{Topic: topics[2], Data: c.name})
			if e := s.nextEvent(t); e.Data != c.name || e.Type != "message" {
				t.Fatalf("after resets: %+v, want the live event %s", e, ids[0])
			}
			s.close()
			// The reset's id is a good cursor: the event after it comes
			// back, with no second reset.
			r := n.subscribe(t, query, last)
			if got := data(collect(t, r, 1)); got[0] != c.name {
				t.Fatalf("resume from the reset id: %q, want [%s]", got, c.name)
			}
		})
	}

	t.Run("header", func(t *testing.T) {
		s := n.subscribe(t, query, "$")
		_, start, _ := s.head(t)
		checkResets(t, start, topics, "malformed_cursor")
	})
	t.Run("malformed header wins over a valid query", func(t *testing.T) {
		live := n.subscribe(t, query, "").live(t)
		s := n.subscribe(t, query+"&last_event_id="+url.QueryEscape(live.ID), "garbage")
		_, start, _ := s.head(t)
		checkResets(t, start, topics, "malformed_cursor")
	})
}

// TestResets covers well-formed cursors the node must not trust: each gets
// reset events for the topics of the affected partitions only, then the
// stream is live, and the reset's id resumes later without another reset.
func TestResets(t *testing.T) {
	const parts = 4
	pa, pb := topicsIn(0, parts, 2, "ra"), topicsIn(3, parts, 1, "rb")
	topics := append(slices.Clone(pa), pb...)
	cases := []struct {
		name   string
		mem    pubsub.MemoryConfig
		cache  node.CacheConfig
		reason string
		// cursor turns the stream's cursor into the one to resume from,
		// given the ids of events published on pa[0] before.
		cursor func(t testing.TB, n *testNode, live pubsub.Cursor, ids []string) pubsub.Cursor
	}{
		{
			name: "unknown epoch", reason: pubsub.ReasonEpochChanged,
			cursor: func(t testing.TB, _ *testNode, c pubsub.Cursor, _ []string) pubsub.Cursor {
				c[0].Epoch = "zzzzzzzz"
				return c
			},
		},
		{
			name: "beyond the head", reason: pubsub.ReasonAhead,
			cursor: func(t testing.TB, _ *testNode, c pubsub.Cursor, _ []string) pubsub.Cursor {
				c[0].Pos.Ms += uint64(time.Hour.Milliseconds())
				return c
			},
		},
		{
			name: "trimmed history", reason: pubsub.ReasonTrimmed,
			mem:   pubsub.MemoryConfig{Partitions: parts, MaxLen: 10},
			cache: node.CacheConfig{PerTopic: 1}, // so the node must ask the broker
			cursor: func(t testing.TB, _ *testNode, c pubsub.Cursor, ids []string) pubsub.Cursor {
				first := cursorOf(t, ids[0], parts)[0]
				c[0] = first
				return c
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.mem.Partitions == 0 {
				c.mem.Partitions = parts
			}
			cfg := testConfig(t)
			cfg.Cache = c.cache
			n := startNode(t, cfg, newMemory(t, c.mem))
			query := streamQuery(topics...)
			s := n.subscribe(t, query, "")
			s.live(t)
			// Small batches, each read before the next: the broker's
			// retention must not overtake the node's fan-out here.
			var ids []string
			for i := range 6 {
				ids = append(ids, n.publish(t, evsOf(pa[0], fmt.Sprintf("old%d-", i), 5)...)...)
				s.events(t, 5)
			}
			n.publish(t, ev{Topic: pb[0], Data: "b-old"})
			s.nextEvent(t)
			cur := c.cursor(t, n, cursorOf(t, s.lastID(), parts), ids)
			s.close()

			before := snapshot(n)
			r := n.subscribe(t, query, cur.String())
			_, start, live := r.head(t)
			resetID := checkResets(t, start, pa, c.reason)
			if after := snapshot(n); after.resets != before.resets+int64(len(pa)) {
				t.Errorf("Stats.Resets %d -> %d, want +%d", before.resets, after.resets, len(pa))
			}
			// The untouched partition was resumed: nothing was missed there.
			if got := cursorOf(t, live.ID, parts); got[1] != cur[1] {
				t.Errorf("cursor of the healthy partition %v, want %v kept", got[1], cur[1])
			}
			// Live after the resets.
			n.publish(t, ev{Topic: pa[1], Data: "new"})
			if e := r.nextEvent(t); e.Data != "new" {
				t.Fatalf("after resets: %+v, want the live event", e)
			}
			r.close()

			// The reset's id is a good cursor: no second reset, and what was
			// published since comes back.
			n.publish(t, ev{Topic: pb[0], Data: "after"})
			again := n.subscribe(t, query, resetID)
			_, start, _ = again.head(t)
			var got []string
			for _, e := range start {
				if e.Type == "reset" {
					t.Fatalf("resume from the reset id %q got another reset %+v", resetID, e)
				}
				got = append(got, e.Data)
			}
			// "new" and "after" may still be on their way through fan-out.
			for len(got) < 2 {
				got = append(got, again.nextEvent(t).Data)
			}
			if !slices.Equal(got, []string{"new", "after"}) {
				t.Fatalf("resumed from the reset id with %q, want [new after]", got)
			}
		})
	}
}

// TestLiveResetWhenFanoutOvertaken: when retention drops events before the
// node fanned them out, live streams get a reset for the topic and go on
// with what is still held; the reset's id then resumes cleanly.
func TestLiveResetWhenFanoutOvertaken(t *testing.T) {
	const parts = 2
	n := startNode(t, testConfig(t), newMemory(t, pubsub.MemoryConfig{Partitions: parts, MaxLen: 10}))
	const topic = "overtaken"
	s := n.subscribe(t, streamQuery(topic), "")
	s.live(t)
	// One publish of 30: the broker's fan-out wakes after all are stored
	// and only the last 10 are still held.
	n.publishN(t, topic, "e", 30)
	e := s.nextEvent(t)
	if tp, reason := resetOf(t, e); tp != topic || reason != pubsub.ReasonTrimmed {
		t.Fatalf("reset %s %s, want %s %s", tp, reason, topic, pubsub.ReasonTrimmed)
	}
	resetID := e.ID
	if got := data(s.events(t, 10)); !slices.Equal(got, seq("e", 20, 30)) {
		t.Fatalf("after the reset %q, want the 10 events still held", got)
	}
	s.close()
	r := n.subscribe(t, streamQuery(topic), resetID)
	_, start, _ := r.head(t)
	if got := data(start); !slices.Equal(got, seq("e", 20, 30)) {
		t.Fatalf("resume from the reset id: %q, want the 10 events after it", got)
	}
}
