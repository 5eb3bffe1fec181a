package pubsubtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/ssecluster/ssecluster/pubsub"
)

func conformanceCases() []conformanceCase {
	return []conformanceCase{
		{name: "partitions_configured", cfg: Config{Partitions: 4}, run: testPartitions},
		{name: "ping", run: testPing},
		{name: "head_empty", run: testHeadEmpty},
		{name: "publish_ids", run: testPublishIDs},
		{name: "publish_empty", run: testPublishEmpty},
		{name: "run_start_at_head", run: testRunStartAtHead},
		{name: "run_delivers", run: testRunDelivers},
		{name: "run_concurrent_publishers", run: testRunConcurrentPublishers},
		{name: "run_batch_1000", run: testBatch1000},
		{name: "run_handler_behind_retention", cfg: Config{MaxLen: trimMaxLen}, run: testRunBehindRetention},
		{name: "run_stop", run: testRunStop},
		{name: "data_roundtrip", run: testDataRoundTrip},
		{name: "range", run: testRange},
		{name: "range_trimmed", cfg: Config{MaxLen: trimMaxLen}, run: testRangeTrimmed},
		{name: "range_epoch_changed", run: testRangeEpochChanged},
		{name: "range_ahead", run: testRangeAhead},
		{name: "retained", run: testRetained},
		{name: "retained_trimmed", cfg: Config{MaxLen: trimMaxLen}, run: testRetainedTrimmed},
		{name: "idempotency", run: testIdempotency},
		{name: "idempotency_same_batch", run: testIdempotencySameBatch},
		{name: "shared_key", run: testSharedKey},
		{name: "close", run: testClose},
	}
}

func testPartitions(t *testing.T, h *harness) {
	// newHarness checked Partitions() against the configured 4.
	for p := range h.parts {
		if id := h.head(t, p); !id.Pos.IsZero() {
			t.Errorf("Head(%d) of a new broker = %v, want position zero", p, id)
		}
	}
}

func testPing(t *testing.T, h *harness) {
	ctx, cancel := callCtx()
	defer cancel()
	if err := h.b.Ping(ctx); err != nil {
		t.Fatalf("Ping() = %v, want nil", err)
	}
}

func testHeadEmpty(t *testing.T, h *harness) {
	for p, id := range h.heads(t) {
		if !id.Pos.IsZero() {
			t.Errorf("Head(%d) of a new broker = %v, want position zero", p, id)
		}
	}
}

func testPublishIDs(t *testing.T, h *harness) {
	before := h.heads(t)
	var msgs []pubsub.Message
	for i := range 60 {
		msgs = append(msgs, pubsub.Message{Topic: fmt.Sprintf("pub-%d", i%12), Data: fmt.Appendf(nil, "%d", i)})
	}
	ids1 := h.publish(t, msgs...)
	ids2 := h.publish(t, msgs...)

	maxPos := make(map[int]pubsub.Pos) // newest position per partition after ids1
	for _, ids := range [][]pubsub.ID{ids1, ids2} {
		seen := make(map[pubsub.ID]bool)
		lastOfTopic := make(map[string]pubsub.Pos)
		for i, id := range ids {
			topic := msgs[i].Topic
			if id.Epoch != before[id.Partition].Epoch {
				t.Errorf("ID %v: epoch differs from Head's %q, with no history lost", id, before[id.Partition].Epoch)
			}
			if seen[id] {
				t.Errorf("ID %v returned twice in one Publish", id)
			}
			seen[id] = true
			if last, ok := lastOfTopic[topic]; ok && !last.Less(id.Pos) {
				t.Errorf("topic %q: ID %v not after %v, though published later", topic, id, last)
			}
			lastOfTopic[topic] = id.Pos
		}
	}
	for _, id := range ids1 {
		if m := maxPos[id.Partition]; m.Less(id.Pos) {
			maxPos[id.Partition] = id.Pos
		}
	}
	newest := make(map[int]pubsub.ID)
	for _, id := range ids2 {
		if !maxPos[id.Partition].Less(id.Pos) {
			t.Errorf("ID %v of the second Publish not after %v of the first", id, maxPos[id.Partition])
		}
		if n, ok := newest[id.Partition]; !ok || n.Pos.Less(id.Pos) {
			newest[id.Partition] = id
		}
	}
	for p, id := range h.heads(t) {
		want, ok := newest[p]
		if !ok {
			want = before[p]
		}
		if id != want {
			t.Errorf("Head(%d) = %v after publishing, want %v", p, id, want)
		}
	}
}

func testPublishEmpty(t *testing.T, h *harness) {
	ctx, cancel := callCtx()
	defer cancel()
	for _, msgs := range [][]pubsub.Message{nil, {}} {
		ids, err := h.b.Publish(ctx, msgs)
		if err != nil || len(ids) != 0 {
			t.Errorf("Publish(%#v) = %v, %v; want no IDs and no error", msgs, ids, err)
		}
	}
}

// spread returns n messages over k topics named prefix-<i>.
func spread(prefix string, n, k int) []pubsub.Message {
	types := []string{"", "message", "update"}
	msgs := make([]pubsub.Message, n)
	for i := range msgs {
		msgs[i] = pubsub.Message{
			Topic: fmt.Sprintf("%s-%d", prefix, i%k),
			Type:  types[i%len(types)],
			Data:  fmt.Appendf(nil, "%s payload %d", prefix, i),
		}
	}
	return msgs
}

func testRunStartAtHead(t *testing.T, h *harness) {
	h.publish(t, spread("pre", 40, 13)...) // before Run: must not be delivered
	heads := h.heads(t)
	r := h.startRun(t, nil)
	for p := range h.parts {
		starts, _ := r.rec.snapshot(p)
		if len(starts) != 1 || starts[0].from != heads[p] || starts[0].reason != "" {
			t.Errorf("partition %d: Start calls %+v, want one Start(%v, \"\") at the head", p, starts, heads[p])
		}
	}
	post := h.publish(t, spread("post", 40, 13)...)
	h.waitDelivered(t, r, post)
	h.checkDelivered(t, r, post) // exactly post: nothing of pre
}

func testRunDelivers(t *testing.T, h *harness) {
	r := h.startRun(t, nil)
	var want []pubsub.ID
	for b := range 5 {
		want = append(want, h.publish(t, spread(fmt.Sprintf("run%d", b), 20, 7)...)...)
	}
	h.waitDelivered(t, r, want)
	h.checkDelivered(t, r, want)
}

func testRunConcurrentPublishers(t *testing.T, h *harness) {
	const workers, batches, size, topics = 8, 25, 10, 16
	r := h.startRun(t, nil)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		want []pubsub.ID
	)
	for w := range workers {
		wg.Go(func() {
			lastOfTopic := make(map[string]pubsub.Pos)
			for b := range batches {
				msgs := make([]pubsub.Message, size)
				for i := range msgs {
					msgs[i] = pubsub.Message{
						Topic: fmt.Sprintf("conc-%d", (w+b+i)%topics),
						Data:  fmt.Appendf(nil, "w%d b%d i%d", w, b, i),
					}
				}
				ids, err := h.tryPublish(msgs...)
				if err != nil {
					t.Error(err)
					return
				}
				for i, id := range ids {
					if last, ok := lastOfTopic[msgs[i].Topic]; ok && !last.Less(id.Pos) {
						t.Errorf("publisher %d, topic %q: ID %v not after its earlier %v", w, msgs[i].Topic, id, last)
					}
					lastOfTopic[msgs[i].Topic] = id.Pos
				}
				mu.Lock()
				want = append(want, ids...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	h.waitDelivered(t, r, want)
	h.checkDelivered(t, r, want)
}

func testBatch1000(t *testing.T, h *harness) {
	r := h.startRun(t, nil)
	ids := h.publish(t, spread("batch", 1000, 100)...)
	h.waitDelivered(t, r, ids)
	h.checkDelivered(t, r, ids)

	byPart := make(map[int][]pubsub.ID)
	for _, id := range ids {
		byPart[id.Partition] = append(byPart[id.Partition], id)
	}
	for p, want := range byPart {
		slices.SortFunc(want, func(a, b pubsub.ID) int { return comparePos(a.Pos, b.Pos) })
		head := h.head(t, p)
		evs, err := h.rangeAll(t, pubsub.RangeQuery{Partition: p, Epoch: head.Epoch, Until: head.Pos})
		if err != nil {
			t.Fatalf("Range of partition %d: %v", p, err)
		}
		h.checkEvents(t, fmt.Sprintf("Range of partition %d", p), evs, want)
	}
}

// testRunBehindRetention holds the handler while far more than MaxLen events
// are published, then checks that Run either delivered every event or
// announced the loss with Start(ReasonTrimmed) before going on: never a
// silent gap, never a duplicate.
func testRunBehindRetention(t *testing.T, h *harness) {
	const topic = "behind"
	p := pubsub.PartitionOf(topic, h.parts)
	g := newGate(p)
	r := h.startRun(t, g)
	ids := h.publish(t, pubsub.Message{Topic: topic, Data: []byte("first")})
	checkFor(t, waitTimeout, func() error {
		if err := r.rec.firstError(); err != nil {
			return stopPolling(err)
		}
		if !g.hasEntered() {
			return errors.New("the first event was not handed to Deliver")
		}
		return nil
	})
	for b := range 30 {
		msgs := make([]pubsub.Message, 100)
		for i := range msgs {
			msgs[i] = pubsub.Message{Topic: topic, Data: fmt.Appendf(nil, "b%d i%d", b, i)}
		}
		ids = append(ids, h.publish(t, msgs...)...)
	}
	g.open()
	last := ids[len(ids)-1]
	checkFor(t, waitTimeout, func() error {
		if err := r.rec.firstError(); err != nil {
			return stopPolling(err)
		}
		_, evs := r.rec.snapshot(p)
		if len(evs) == 0 || evs[len(evs)-1].ID != last {
			return fmt.Errorf("newest event %v not delivered yet", last)
		}
		return nil
	})

	starts, evs := r.rec.snapshot(p)
	for k, s := range starts {
		end := len(evs)
		if k+1 < len(starts) {
			end = starts[k+1].at
		}
		next := slices.IndexFunc(ids, func(id pubsub.ID) bool { return s.from.Pos.Less(id.Pos) })
		for j, ev := range evs[s.at:end] {
			if next < 0 || next+j >= len(ids) || ev.ID != ids[next+j] {
				t.Fatalf("after Start(%v, %q), event %d delivered is %v, want %s: a gap or a duplicate without a Start",
					s.from, s.reason, j, ev.ID, idAt(ids, next+j))
			}
			if err := h.checkEvent(ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	for q := range h.parts {
		if s, _ := r.rec.snapshot(q); q != p && len(s) != 1 {
			t.Errorf("partition %d, never published to, got Start calls %+v", q, s)
		}
	}
	t.Logf("%d events published, %d delivered, %d Start calls", len(ids), len(evs), len(starts))
}

func testRunStop(t *testing.T, h *harness) {
	// Taken after the broker exists: what it (and its backing store) keeps
	// until Close is not a leak; anything Run or Close leaves behind is.
	ignore := goleak.IgnoreCurrent()
	r := h.startRun(t, nil)
	ids := h.publish(t, spread("stop", 10, 3)...)
	h.waitDelivered(t, r, ids)
	h.stopRun(t, r) // fails if Run does not return nil within waitTimeout
	h.close(t)
	goleak.VerifyNone(t, ignore)
}

func testDataRoundTrip(t *testing.T, h *harness) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	big := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	payloads := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"nul", []byte("\x00")},
		{"nul_inside", []byte("a\x00b\x00")},
		{"cr", []byte("a\rb")},
		{"lf", []byte("a\nb")},
		{"crlf", []byte("a\r\nb\r\n")},
		{"trailing_cr", []byte("\r")},
		{"invalid_utf8", []byte("\xff\xfe\xc3\x28")},
		{"sse_lookalike", []byte("data: x\n\nid: 1\nretry: 5\n\n")},
		{"all_bytes", allBytes},
		{"64KiB", big},
	}
	types := []string{"", "message", "a.b-c_d"}

	r := h.startRun(t, nil)
	buf := make([]byte, 0, len(big)) // reused for every message, as a caller may
	var ids []pubsub.ID
	for i, pl := range payloads {
		msg := pubsub.Message{Topic: "data-" + pl.name, Type: types[i%len(types)]}
		if pl.data != nil {
			buf = append(buf[:0], pl.data...)
			msg.Data = buf
		}
		ids = append(ids, h.publish(t, msg)...)
		for j := range buf {
			buf[j] = 'X' // the broker must have copied Data
		}
	}
	h.waitDelivered(t, r, ids)
	h.checkDelivered(t, r, ids)
	for i, id := range ids {
		// Each payload has its own topic: (0, id.Pos] holds one event of it.
		q := pubsub.RangeQuery{Partition: id.Partition, Epoch: id.Epoch, Until: id.Pos,
			Topics: []string{"data-" + payloads[i].name}}
		evs, err := h.rangeAll(t, q)
		if err != nil {
			t.Fatal(err)
		}
		h.checkEvents(t, "Range of one event", evs, []pubsub.ID{id})
	}
}

func testRange(t *testing.T, h *harness) {
	const n = 30
	p := pubsub.PartitionOf("range", h.parts)
	topics := topicsIn(p, h.parts, 3, "range")
	noise := ""
	for i := 0; h.parts > 1 && noise == ""; i++ {
		if c := fmt.Sprintf("noise-%d", i); pubsub.PartitionOf(c, h.parts) != p {
			noise = c
		}
	}
	ids := make([]pubsub.ID, n)
	topicOf := make(map[pubsub.ID]string, n)
	for i := range ids {
		msgs := []pubsub.Message{{Topic: topics[i%3], Type: "t", Data: fmt.Appendf(nil, "range %d", i)}}
		if noise != "" {
			msgs = append(msgs, pubsub.Message{Topic: noise, Data: []byte("noise")})
		}
		ids[i] = h.publish(t, msgs...)[0]
		topicOf[ids[i]] = topics[i%3]
	}
	head := h.head(t, p)
	if head != ids[n-1] {
		t.Fatalf("Head(%d) = %v, want the last published %v", p, head, ids[n-1])
	}
	var zero pubsub.Pos
	queries := []struct {
		name         string
		after, until pubsub.Pos
		topics       []string
	}{
		{"all", zero, head.Pos, nil},
		{"one_topic", zero, head.Pos, topics[:1]},
		{"two_topics", zero, head.Pos, []string{topics[0], topics[2]}},
		{"after_middle", ids[9].Pos, head.Pos, nil},
		{"until_middle", zero, ids[19].Pos, nil},
		{"after_until_topic", ids[4].Pos, ids[24].Pos, topics[1:2]},
		{"after_last_of_topic", ids[27].Pos, head.Pos, topics[:1]},
		{"at_head", head.Pos, head.Pos, nil},
		{"unknown_topic", zero, head.Pos, []string{"range-unknown"}},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			var want []pubsub.ID
			for _, id := range ids {
				if q.after.Less(id.Pos) && !q.until.Less(id.Pos) && (q.topics == nil || slices.Contains(q.topics, topicOf[id])) {
					want = append(want, id)
				}
			}
			rq := pubsub.RangeQuery{Partition: p, Epoch: head.Epoch, After: q.after, Until: q.until, Topics: q.topics}
			ctx, cancel := callCtx()
			defer cancel()
			evs, pos, err := h.b.Range(ctx, rq)
			if err != nil {
				t.Fatalf("Range(%+v): %v", rq, err)
			}
			if pos != q.until {
				t.Errorf("Range(%+v) scanned to %v, want Until: %d entries are below the default limit", rq, pos, n)
			}
			h.checkEvents(t, "Range", evs, want)
			for _, limit := range []int{1, 2, 5} {
				rq.Limit = limit
				evs, err := h.rangeAll(t, rq)
				if err != nil {
					t.Fatalf("Range(%+v): %v", rq, err)
				}
				h.checkEvents(t, fmt.Sprintf("Range pages with Limit %d", limit), evs, want)
			}
		})
	}
}

// publishPastRetention publishes six times trimMaxLen events to topic, in
// batches of trimMaxLen, so retention must have trimmed the partition, and
// returns their IDs in order.
func publishPastRetention(t *testing.T, h *harness, topic string) []pubsub.ID {
	t.Helper()
	var ids []pubsub.ID
	for b := range 6 {
		msgs := make([]pubsub.Message, trimMaxLen)
		for i := range msgs {
			msgs[i] = pubsub.Message{Topic: topic, Data: fmt.Appendf(nil, "b%d i%d", b, i)}
		}
		ids = append(ids, h.publish(t, msgs...)...)
	}
	return ids
}

// testRangeTrimmed publishes far more than MaxLen events and then tries a
// cursor at every one of them: older cursors must get ReasonTrimmed, newer
// ones the complete rest, at least MaxLen of the newest must still work, and
// the border must be one place (what is held is a suffix).
func testRangeTrimmed(t *testing.T, h *harness) {
	const topic = "trim"
	p := pubsub.PartitionOf(topic, h.parts)
	ids := publishPastRetention(t, h, topic)
	head := h.head(t, p)
	if head != ids[len(ids)-1] {
		t.Fatalf("Head(%d) = %v after trimming, want the last published %v", p, head, ids[len(ids)-1])
	}
	const unknown = -2
	border := unknown // the oldest cursor (-1 = zero position) that still works
	for i := -1; i < len(ids); i++ {
		var after pubsub.Pos
		if i >= 0 {
			after = ids[i].Pos
		}
		evs, err := h.rangeAll(t, pubsub.RangeQuery{Partition: p, Epoch: head.Epoch, After: after, Until: head.Pos})
		var gone *pubsub.HistoryGoneError
		if errors.As(err, &gone) {
			if gone.Reason != pubsub.ReasonTrimmed || gone.Partition != p {
				t.Fatalf("Range after cursor %d: %v, want partition %d %s", i, err, p, pubsub.ReasonTrimmed)
			}
			if border != unknown {
				t.Fatalf("cursor %d is trimmed but the older cursor %d was not", i, border)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Range after cursor %d: %v", i, err)
		}
		if border == unknown {
			border = i
		}
		h.checkEvents(t, fmt.Sprintf("Range after cursor %d", i), evs, ids[i+1:])
	}
	switch retained := len(ids) - 1 - border; {
	case border == unknown:
		t.Fatal("every cursor is trimmed, even the head")
	case border < 1:
		t.Fatalf("cursor %d still works after %d events with MaxLen %d: the zero position and the first event should be trimmed", border, len(ids), trimMaxLen)
	case retained < trimMaxLen:
		t.Fatalf("only %d events held, want at least MaxLen %d", retained, trimMaxLen)
	default:
		t.Logf("%d of %d events held with MaxLen %d", retained, len(ids), trimMaxLen)
	}
	// The other partitions are untouched.
	for q := range h.parts {
		if q == p {
			continue
		}
		id := h.head(t, q)
		if _, err := h.rangeAll(t, pubsub.RangeQuery{Partition: q, Epoch: id.Epoch, Until: id.Pos}); err != nil {
			t.Fatalf("Range of untouched partition %d: %v", q, err)
		}
	}
}

func expectGone(t testing.TB, what string, err error, p int, reason string) {
	t.Helper()
	var gone *pubsub.HistoryGoneError
	if !errors.As(err, &gone) || gone.Partition != p || gone.Reason != reason {
		t.Fatalf("%s: err = %v, want *HistoryGoneError{Partition: %d, Reason: %s}", what, err, p, reason)
	}
}

func testRangeEpochChanged(t *testing.T, h *harness) {
	const topic = "epoch"
	p := pubsub.PartitionOf(topic, h.parts)
	ids := h.publish(t, spread(topic, 3, 1)...)
	head := h.head(t, p)
	other := pubsub.NewEpoch()
	for other == head.Epoch {
		other = pubsub.NewEpoch()
	}
	for _, after := range []pubsub.Pos{{}, ids[0].Pos, head.Pos} {
		ctx, cancel := callCtx()
		_, _, err := h.b.Range(ctx, pubsub.RangeQuery{Partition: p, Epoch: other, After: after, Until: head.Pos})
		cancel()
		expectGone(t, fmt.Sprintf("Range in epoch %q after %v", other, after), err, p, pubsub.ReasonEpochChanged)
	}
}

func testRangeAhead(t *testing.T, h *harness) {
	const topic = "ahead"
	p := pubsub.PartitionOf(topic, h.parts)
	h.publish(t, spread(topic, 3, 1)...)
	head := h.head(t, p)
	type query struct {
		p     int
		epoch string
		after pubsub.Pos
	}
	queries := []query{
		{p, head.Epoch, head.Pos.Next()},
		{p, head.Epoch, pubsub.Pos{Ms: head.Pos.Ms + 3600_000}},
	}
	if h.parts > 1 {
		empty := (p + 1) % h.parts
		queries = append(queries, query{empty, h.head(t, empty).Epoch, pubsub.Pos{Ms: 1}})
	}
	for _, q := range queries {
		ctx, cancel := callCtx()
		_, _, err := h.b.Range(ctx, pubsub.RangeQuery{Partition: q.p, Epoch: q.epoch, After: q.after, Until: q.after})
		cancel()
		expectGone(t, fmt.Sprintf("Range of partition %d after %v", q.p, q.after), err, q.p, pubsub.ReasonAhead)
	}
}

// retained calls Retained and checks it agrees with Head.
func (h *harness) retained(t testing.TB, p int) pubsub.Retention {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	r, err := h.b.Retained(ctx, p)
	if err != nil {
		t.Fatalf("Retained(%d): %v", p, err)
	}
	head := h.head(t, p)
	if r.Partition != p || r.Epoch != head.Epoch || r.Last != head.Pos {
		t.Fatalf("Retained(%d) = %+v; want partition %d, Head's epoch %q and position %v", p, r, p, head.Epoch, head.Pos)
	}
	if (r.Len == 0) != r.First.IsZero() || (r.Len == 0) != r.Last.IsZero() || r.Last.Less(r.First) {
		t.Fatalf("Retained(%d) = %+v: want zero positions exactly when empty, First <= Last", p, r)
	}
	return r
}

// testRetained: an empty partition holds nothing; after publishing, the
// oldest and newest entries and the count, per partition.
func testRetained(t *testing.T, h *harness) {
	for p := range h.parts {
		if r := h.retained(t, p); r.Len != 0 {
			t.Fatalf("Retained(%d) of a new broker = %+v, want empty", p, r)
		}
	}
	ids := h.publish(t, spread("retained", 5, 1)...)
	p := ids[0].Partition
	var other []pubsub.ID
	if h.parts > 1 {
		o := topicOutside(p, h.parts)
		other = h.publish(t, pubsub.Message{Topic: o, Data: []byte("x")}, pubsub.Message{Topic: o, Data: []byte("y")})
	}
	r := h.retained(t, p)
	if r.First != ids[0].Pos || r.Last != ids[4].Pos || r.Len != 5 {
		t.Errorf("Retained(%d) = %+v; want first %v, last %v, 5 entries", p, r, ids[0].Pos, ids[4].Pos)
	}
	if len(other) > 0 {
		q := other[0].Partition
		if r := h.retained(t, q); r.First != other[0].Pos || r.Last != other[1].Pos || r.Len != 2 {
			t.Errorf("Retained(%d) = %+v; want first %v, last %v, 2 entries", q, r, other[0].Pos, other[1].Pos)
		}
	}
}

// topicOutside returns a topic that is not in partition p.
func topicOutside(p, parts int) string {
	for i := 0; ; i++ {
		if t := fmt.Sprintf("retained-other-%d", i); pubsub.PartitionOf(t, parts) != p {
			return t
		}
	}
}

// testRetainedTrimmed: after retention dropped entries, First is the oldest
// event Range still returns, and Len counts what is held.
func testRetainedTrimmed(t *testing.T, h *harness) {
	const topic = "retained-trim"
	p := pubsub.PartitionOf(topic, h.parts)
	ids := publishPastRetention(t, h, topic)
	r := h.retained(t, p)
	i := slices.IndexFunc(ids, func(id pubsub.ID) bool { return id.Pos == r.First })
	switch {
	case i < 1:
		t.Fatalf("Retained(%d) = %+v: first %v is not one of the published events after the first", p, r, r.First)
	case r.Len != int64(len(ids)-i) || r.Len < trimMaxLen:
		t.Fatalf("Retained(%d) = %+v: want %d entries (from event %d on), at least MaxLen %d", p, r, len(ids)-i, i, trimMaxLen)
	}
	evs, err := h.rangeAll(t, pubsub.RangeQuery{Partition: p, Epoch: r.Epoch, After: ids[i-1].Pos, Until: r.Last})
	if err != nil {
		t.Fatalf("Range after the event before First: %v", err)
	}
	h.checkEvents(t, "Range after the event before First", evs, ids[i:])
	if i >= 2 {
		ctx, cancel := callCtx()
		_, _, err := h.b.Range(ctx, pubsub.RangeQuery{Partition: p, Epoch: r.Epoch, After: ids[i-2].Pos, Until: r.Last})
		cancel()
		expectGone(t, "Range from before the oldest entry", err, p, pubsub.ReasonTrimmed)
	}
}

func testIdempotency(t *testing.T, h *harness) {
	const a, b = "idem-a", "idem-b"
	r := h.startRun(t, nil)
	first := h.publish(t, pubsub.Message{Topic: a, Data: []byte("first"), IdempotencyKey: "k1"})[0]
	again := h.publish(t, pubsub.Message{Topic: a, Data: []byte("retry"), IdempotencyKey: "k1"})[0]
	if again != first {
		t.Fatalf("retry with the same (topic, key) returned %v, want the first ID %v", again, first)
	}
	otherTopic := h.publish(t, pubsub.Message{Topic: b, Data: []byte("other topic"), IdempotencyKey: "k1"})[0]
	if otherTopic == first {
		t.Fatalf("same key on another topic returned the first ID %v, want a new event", first)
	}
	otherKey := h.publish(t, pubsub.Message{Topic: a, Data: []byte("other key"), IdempotencyKey: "k2"})[0]
	noKey1 := h.publish(t, pubsub.Message{Topic: a, Data: []byte("no key")})[0]
	noKey2 := h.publish(t, pubsub.Message{Topic: a, Data: []byte("no key")})[0]
	if otherKey == first || noKey1 == noKey2 {
		t.Fatalf("distinct messages share IDs: %v %v %v %v", first, otherKey, noKey1, noKey2)
	}
	want := []pubsub.ID{first, otherTopic, otherKey, noKey1, noKey2}
	h.waitDelivered(t, r, want)
	h.checkDelivered(t, r, want) // the retry was not stored, so not delivered

	head := h.head(t, first.Partition)
	evs, err := h.rangeAll(t, pubsub.RangeQuery{Partition: first.Partition, Epoch: first.Epoch, Until: head.Pos, Topics: []string{a}})
	if err != nil {
		t.Fatal(err)
	}
	h.checkEvents(t, "Range of topic "+a, evs, []pubsub.ID{first, otherKey, noKey1, noKey2})
}

func testIdempotencySameBatch(t *testing.T, h *harness) {
	const topic = "idem-batch"
	ids := h.publish(t,
		pubsub.Message{Topic: topic, Data: []byte("one"), IdempotencyKey: "k"},
		pubsub.Message{Topic: topic, Data: []byte("two"), IdempotencyKey: "k"},
		pubsub.Message{Topic: topic, Data: []byte("three"), IdempotencyKey: "other"},
	)
	if ids[1] != ids[0] || ids[2] == ids[0] {
		t.Fatalf("IDs %v: want the second equal to the first (same key), the third new", ids)
	}
	head := h.head(t, ids[0].Partition)
	evs, err := h.rangeAll(t, pubsub.RangeQuery{Partition: ids[0].Partition, Epoch: ids[0].Epoch, Until: head.Pos})
	if err != nil {
		t.Fatal(err)
	}
	h.checkEvents(t, "Range", evs, []pubsub.ID{ids[0], ids[2]})
}

func testClose(t *testing.T, h *harness) {
	id := h.publish(t, pubsub.Message{Topic: "close", Data: []byte("x")})[0]
	h.close(t)
	ctx, cancel := callCtx()
	defer cancel()
	if _, err := h.b.Publish(ctx, []pubsub.Message{{Topic: "close"}}); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, err := h.b.Head(ctx, id.Partition); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Head after Close: %v, want ErrClosed", err)
	}
	if _, _, err := h.b.Range(ctx, pubsub.RangeQuery{Partition: id.Partition, Epoch: id.Epoch, Until: id.Pos}); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Range after Close: %v, want ErrClosed", err)
	}
	if _, err := h.b.Retained(ctx, id.Partition); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Retained after Close: %v, want ErrClosed", err)
	}
	if err := h.b.Ping(ctx); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
}

// testSharedKey: a name always gives the same key, another name another.
func testSharedKey(t *testing.T, h *harness) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	a, err := h.b.SharedKey(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.b.SharedKey(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.b.SharedKey(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != pubsub.SharedKeySize || !bytes.Equal(a, again) || bytes.Equal(a, b) {
		t.Errorf("keys a %x, a again %x, b %x: want %d bytes, a stable, b different", a, again, b, pubsub.SharedKeySize)
	}
}
