package pubsubtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/pubsub"
)

// Config is the shape a conformance case asks of the broker under test.
// Zero fields mean the broker's defaults.
type Config struct {
	// Partitions is the number of partitions; 0 means the broker's default.
	Partitions int
	// MaxLen is the number of events each partition must retain at least; 0
	// means the broker's default. Cases that need trimming pass 50. A broker
	// may retain more than MaxLen (Redis trims in chunks) but never fewer.
	MaxLen int
}

// trimMaxLen is the MaxLen of the cases that need trimming.
const trimMaxLen = 50

// waitTimeout bounds every wait and every broker call of the suite. It is
// generous on purpose: it only decides when a broken broker fails instead of
// hanging, and is never a claim about speed.
const waitTimeout = 20 * time.Second

// Conformance runs the pubsub.Broker contract against the brokers newBroker
// returns: one fresh broker, with empty history, per subtest. The suite
// closes the broker at the end of the subtest, after stopping its Run;
// newBroker must not close it but may register cleanups for what backs it
// (those run after the suite's, as t.Cleanup is last-in first-out).
//
// Subtests run sequentially; do not run Conformance in parallel with other
// tests of the same binary (see the package doc).
func Conformance(t *testing.T, newBroker func(t *testing.T, cfg Config) pubsub.Broker) {
	t.Helper()
	for _, c := range conformanceCases() {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.cfg, newBroker)
			c.run(t, h)
		})
	}
}

// conformanceCase is one row of the suite.
type conformanceCase struct {
	name string
	cfg  Config
	run  func(t *testing.T, h *harness)
}

// harness wraps the broker of one subtest and remembers what was published.
// Its methods take the testing.TB to fail, so nested subtests and
// goroutines use their own.
type harness struct {
	b     pubsub.Broker
	parts int

	closeOnce sync.Once

	mu     sync.Mutex
	ledger map[pubsub.ID]publication // the first message stored under each ID
}

// publication is what the suite published under one ID, and when.
type publication struct {
	msg           pubsub.Message // Data copied before Publish was called
	before, after int64          // Unix ns around the Publish call
}

func newHarness(t *testing.T, cfg Config, newBroker func(*testing.T, Config) pubsub.Broker) *harness {
	t.Helper()
	b := newBroker(t, cfg)
	if b == nil {
		t.Fatal("newBroker returned nil")
	}
	h := &harness{b: b, parts: b.Partitions(), ledger: make(map[pubsub.ID]publication)}
	t.Cleanup(func() { h.close(t) })
	if h.parts <= 0 {
		t.Fatalf("Partitions() = %d, want > 0", h.parts)
	}
	if cfg.Partitions != 0 && h.parts != cfg.Partitions {
		t.Fatalf("Partitions() = %d, want %d as configured", h.parts, cfg.Partitions)
	}
	return h
}

// close closes the broker once; Close must succeed the first time.
func (h *harness) close(t testing.TB) {
	t.Helper()
	h.closeOnce.Do(func() {
		if err := h.b.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	})
}

// callCtx bounds one broker call.
func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitTimeout)
}

// tryPublish publishes msgs, records them in the ledger and checks the
// returned IDs' shape. It does not call t.Fatal, so goroutines may use it.
func (h *harness) tryPublish(msgs ...pubsub.Message) ([]pubsub.ID, error) {
	saved := make([]pubsub.Message, len(msgs))
	for i, m := range msgs {
		m.Data = bytes.Clone(m.Data)
		saved[i] = m
	}
	ctx, cancel := callCtx()
	defer cancel()
	before := time.Now().UnixNano()
	ids, err := h.b.Publish(ctx, msgs)
	after := time.Now().UnixNano()
	if err != nil {
		return nil, fmt.Errorf("Publish(%d messages): %w", len(msgs), err)
	}
	if len(ids) != len(msgs) {
		return nil, fmt.Errorf("Publish(%d messages) returned %d IDs", len(msgs), len(ids))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, id := range ids {
		if want := pubsub.PartitionOf(msgs[i].Topic, h.parts); id.Partition != want {
			return nil, fmt.Errorf("Publish: ID %v of topic %q has partition %d, want PartitionOf = %d", id, msgs[i].Topic, id.Partition, want)
		}
		if !pubsub.ValidEpoch(id.Epoch) || id.Pos.IsZero() {
			return nil, fmt.Errorf("Publish: ID %v of topic %q: want a valid epoch and a non-zero position", id, msgs[i].Topic)
		}
		if _, dup := h.ledger[id]; !dup {
			h.ledger[id] = publication{msg: saved[i], before: before, after: after}
		}
	}
	return ids, nil
}

func (h *harness) publish(t testing.TB, msgs ...pubsub.Message) []pubsub.ID {
	t.Helper()
	ids, err := h.tryPublish(msgs...)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func (h *harness) head(t testing.TB, p int) pubsub.ID {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	id, err := h.b.Head(ctx, p)
	if err != nil {
		t.Fatalf("Head(%d): %v", p, err)
	}
	if id.Partition != p || !pubsub.ValidEpoch(id.Epoch) {
		t.Fatalf("Head(%d) = %v: want partition %d and a valid epoch", p, id, p)
	}
	return id
}

func (h *harness) heads(t testing.TB) []pubsub.ID {
	t.Helper()
	ids := make([]pubsub.ID, h.parts)
	for p := range ids {
		ids[p] = h.head(t, p)
	}
	return ids
}

// rangeAll pages through q with q.Limit until Until, checking the scan
// position contract of every page, and returns all events.
func (h *harness) rangeAll(t testing.TB, q pubsub.RangeQuery) ([]pubsub.Event, error) {
	t.Helper()
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	var all []pubsub.Event
	for page := 0; ; page++ {
		if page > 100000 {
			t.Fatalf("Range(%+v): no end after %d pages", q, page)
		}
		ctx, cancel := callCtx()
		evs, pos, err := h.b.Range(ctx, q)
		cancel()
		if err != nil {
			return all, err
		}
		if len(evs) > limit {
			t.Fatalf("Range(%+v) returned %d events, more than the %d entries it may scan", q, len(evs), limit)
		}
		prev := q.After
		for _, ev := range evs {
			if ev.ID.Partition != q.Partition || ev.ID.Epoch != q.Epoch {
				t.Fatalf("Range(%+v) returned %v: other partition or epoch", q, ev.ID)
			}
			if !prev.Less(ev.ID.Pos) || pos.Less(ev.ID.Pos) || q.Until.Less(ev.ID.Pos) {
				t.Fatalf("Range(%+v) returned %v: want After < positions increasing <= scanned %v <= Until", q, ev.ID, pos)
			}
			if len(q.Topics) > 0 && !slices.Contains(q.Topics, ev.Topic) {
				t.Fatalf("Range(%+v) returned %v of topic %q, not asked for", q, ev.ID, ev.Topic)
			}
			prev = ev.ID.Pos
		}
		all = append(all, evs...)
		if !q.After.Less(q.Until) {
			if pos.Less(q.Until) {
				t.Fatalf("Range(%+v) with nothing to scan returned position %v, below Until: the caller never ends", q, pos)
			}
			return all, nil
		}
		if pos == q.Until {
			return all, nil
		}
		if !q.After.Less(pos) || q.Until.Less(pos) {
			t.Fatalf("Range(%+v) returned scan position %v: want After < position <= Until, or the caller never ends", q, pos)
		}
		q.After = pos
	}
}

// checkEvent compares ev with what was published under its ID.
func (h *harness) checkEvent(ev pubsub.Event) error {
	h.mu.Lock()
	pub, ok := h.ledger[ev.ID]
	h.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("event %v was never returned by Publish", ev.ID)
	case ev.Topic != pub.msg.Topic || ev.Type != pub.msg.Type:
		return fmt.Errorf("event %v has topic %q type %q, want %q %q", ev.ID, ev.Topic, ev.Type, pub.msg.Topic, pub.msg.Type)
	case !bytes.Equal(ev.Data, pub.msg.Data):
		return fmt.Errorf("event %v has data %s, want %s", ev.ID, abbrev(ev.Data), abbrev(pub.msg.Data))
	case ev.Time < pub.before || ev.Time > pub.after:
		return fmt.Errorf("event %v has Time %d, outside its Publish call [%d, %d]", ev.ID, ev.Time, pub.before, pub.after)
	}
	return nil
}

// checkEvents checks that evs are exactly the events published as want, in
// that order.
func (h *harness) checkEvents(t testing.TB, what string, evs []pubsub.Event, want []pubsub.ID) {
	t.Helper()
	got := make([]pubsub.ID, len(evs))
	for i, ev := range evs {
		got[i] = ev.ID
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%s: %d events, want %d; first difference at %d: got %s, want %s",
			what, len(got), len(want), i, idAt(got, i), idAt(want, i))
	}
	for _, ev := range evs {
		if err := h.checkEvent(ev); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// run is one Run of the broker under test, fed to a recorder.
type run struct {
	rec      *recorder
	cancel   context.CancelFunc
	done     chan struct{} // closed when Run returned
	err      error         // Run's result, valid once done is closed
	stopOnce sync.Once
}

// startRun starts Run with a recorder and waits until Start was called for
// every partition; the run is stopped in t's cleanup, if not before.
func (h *harness) startRun(t testing.TB, g *gate) *run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{rec: newRecorder(h.parts, g), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = h.b.Run(ctx, r.rec)
	}()
	t.Cleanup(func() { h.stopRun(t, r) })
	checkFor(t, waitTimeout, func() error {
		select {
		case <-r.done:
			return stopPolling(fmt.Errorf("Run returned %v before its ctx was cancelled", r.err))
		default:
		}
		if err := r.rec.firstError(); err != nil {
			return stopPolling(err)
		}
		if n := r.rec.startedPartitions(); n < h.parts {
			return fmt.Errorf("Run called Start for %d of %d partitions", n, h.parts)
		}
		return nil
	})
	return r
}

// stopRun cancels Run's ctx, waits for it to return nil and reports the
// handler contract violations seen.
func (h *harness) stopRun(t testing.TB, r *run) {
	t.Helper()
	r.stopOnce.Do(func() {
		if r.rec.gate != nil {
			r.rec.gate.open()
		}
		r.cancel()
		select {
		case <-r.done:
			if r.err != nil {
				t.Errorf("Run returned %v after its ctx was cancelled, want nil", r.err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %v after its ctx was cancelled", waitTimeout)
		}
		r.rec.report(t)
	})
}

// waitDelivered waits until every ID in want was delivered.
func (h *harness) waitDelivered(t testing.TB, r *run, want []pubsub.ID) {
	t.Helper()
	checkFor(t, waitTimeout, func() error {
		if err := r.rec.firstError(); err != nil {
			return stopPolling(err)
		}
		got := make(map[pubsub.ID]bool)
		for p := range h.parts {
			_, evs := r.rec.snapshot(p)
			for _, ev := range evs {
				got[ev.ID] = true
			}
		}
		missing := 0
		var example pubsub.ID
		for _, id := range want {
			if !got[id] {
				missing++
				example = id
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d events not delivered, e.g. %v", missing, len(want), example)
		}
		return nil
	})
}

// checkDelivered checks that Run delivered exactly the events published as
// want, each once, per partition in position order, intact, with one Start
// per partition and no reset.
func (h *harness) checkDelivered(t testing.TB, r *run, want []pubsub.ID) {
	t.Helper()
	if err := r.rec.firstError(); err != nil {
		t.Fatal(err)
	}
	byPart := make([][]pubsub.ID, h.parts)
	for _, id := range want {
		byPart[id.Partition] = append(byPart[id.Partition], id)
	}
	for p, ids := range byPart {
		slices.SortFunc(ids, func(a, b pubsub.ID) int { return comparePos(a.Pos, b.Pos) })
		ids = slices.Compact(ids) // idempotent publishes return one ID twice
		starts, evs := r.rec.snapshot(p)
		if len(starts) != 1 {
			t.Fatalf("partition %d: %d Start calls %v, want exactly 1 (no reset happened)", p, len(starts), starts)
		}
		h.checkEvents(t, fmt.Sprintf("Run, partition %d", p), evs, ids)
	}
}

func comparePos(a, b pubsub.Pos) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

func firstDiff(got, want []pubsub.ID) int {
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			return i
		}
	}
	return -1
}

func idAt(ids []pubsub.ID, i int) string {
	if i < len(ids) {
		return ids[i].String()
	}
	return "(none)"
}

func abbrev(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// topicsIn returns n topics named prefix-<i> that hash to partition p.
func topicsIn(p, parts, n int, prefix string) []string {
	var ts []string
	for i := 0; len(ts) < n; i++ {
		t := fmt.Sprintf("%s-%d", prefix, i)
		if pubsub.PartitionOf(t, parts) == p {
			ts = append(ts, t)
		}
	}
	return ts
}

// permanentError makes checkFor give up at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }

func stopPolling(err error) error { return permanentError{err} }

// checkFor calls f until it returns nil, and fails t with f's last error
// if that takes longer than timeout or f returns a stopPolling error. It
// polls; it never assumes something happened because time passed.
func checkFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if pe := (permanentError{}); errors.As(err, &pe) {
			t.Fatal(pe.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}
