package pubsubtest

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ssecluster/ssecluster/pubsub"
)

// recorder is the pubsub.Handler the suite gives to Run. It keeps a copy of
// everything it is handed and checks, as calls arrive, what the Handler
// contract promises: Start before Deliver, reason "" only the first time,
// calls of one partition never concurrent, positions strictly increasing.
type recorder struct {
	parts int
	gate  *gate         // nil, or holds Deliver of one partition until opened
	busy  []atomic.Bool // per partition: a Handler call is in progress

	mu     sync.Mutex
	starts [][]startCall
	events [][]pubsub.Event // Data copied: it is only valid during Deliver
	errs   []string
}

// startCall is one Start; at is how many events of the partition had been
// delivered before it, so events[at:] (up to the next Start) is the segment
// it opens.
type startCall struct {
	from   pubsub.ID
	reason string
	at     int
}

// maxRecorderErrors bounds the violations kept: one broken broker must not
// print a million lines.
const maxRecorderErrors = 20

var _ pubsub.Handler = (*recorder)(nil)

func newRecorder(parts int, g *gate) *recorder {
	return &recorder{
		parts:  parts,
		gate:   g,
		busy:   make([]atomic.Bool, parts),
		starts: make([][]startCall, parts),
		events: make([][]pubsub.Event, parts),
	}
}

func (r *recorder) failLocked(format string, args ...any) {
	if len(r.errs) < maxRecorderErrors {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
}

func (r *recorder) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failLocked(format, args...)
}

// enter flags a Handler call for partition p; the contract serialises them.
func (r *recorder) enter(p int) {
	if r.busy[p].Swap(true) {
		r.fail("concurrent Handler calls for partition %d", p)
	}
}

func (r *recorder) leave(p int) { r.busy[p].Store(false) }

// lastPosLocked is the position after which the next event of p must come:
// the last delivered event of the current segment, else its Start position.
func (r *recorder) lastPosLocked(p int) pubsub.Pos {
	s := r.starts[p][len(r.starts[p])-1]
	if evs := r.events[p]; len(evs) > s.at {
		return evs[len(evs)-1].ID.Pos
	}
	return s.from.Pos
}

func (r *recorder) Start(from pubsub.ID, reason string) {
	p := from.Partition
	if p < 0 || p >= r.parts {
		r.fail("Start(%v, %q): partition out of range [0, %d)", from, reason, r.parts)
		return
	}
	r.enter(p)
	defer r.leave(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !pubsub.ValidEpoch(from.Epoch) {
		r.failLocked("Start(%v, %q): invalid epoch", from, reason)
	}
	if len(r.starts[p]) == 0 {
		if reason != "" {
			r.failLocked("first Start of partition %d has reason %q, want \"\"", p, reason)
		}
	} else {
		prev := r.starts[p][len(r.starts[p])-1]
		switch reason {
		case pubsub.ReasonTrimmed:
			if from.Epoch != prev.from.Epoch {
				r.failLocked("Start(%v, %q): epoch differs from %q without ReasonEpochChanged", from, reason, prev.from.Epoch)
			} else if last := r.lastPosLocked(p); from.Pos.Less(last) {
				r.failLocked("Start(%v, %q): goes back before %v, already delivered", from, reason, last)
			}
		case pubsub.ReasonEpochChanged:
			if from.Epoch == prev.from.Epoch {
				r.failLocked("Start(%v, %q): epoch did not change", from, reason)
			}
		default:
			r.failLocked("Start(%v, %q): a later Start needs ReasonTrimmed or ReasonEpochChanged", from, reason)
		}
	}
	r.starts[p] = append(r.starts[p], startCall{from: from, reason: reason, at: len(r.events[p])})
}

func (r *recorder) Deliver(p int, evs []pubsub.Event) {
	if p < 0 || p >= r.parts {
		r.fail("Deliver(%d, %d events): partition out of range [0, %d)", p, len(evs), r.parts)
		return
	}
	r.enter(p)
	defer r.leave(p)
	if r.gate != nil && r.gate.partition == p {
		r.gate.wait()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.starts[p]) == 0 {
		r.failLocked("Deliver(%d) before any Start of the partition", p)
		return
	}
	epoch := r.starts[p][len(r.starts[p])-1].from.Epoch
	prev := r.lastPosLocked(p)
	for _, ev := range evs {
		switch {
		case ev.ID.Partition != p:
			r.failLocked("Deliver(%d) got event %v of another partition", p, ev.ID)
		case ev.ID.Epoch != epoch:
			r.failLocked("Deliver(%d) got event %v, want epoch %q from Start", p, ev.ID, epoch)
		case !prev.Less(ev.ID.Pos):
			r.failLocked("Deliver(%d) got event %v, not after %v", p, ev.ID, prev)
		}
		prev = ev.ID.Pos
		ev.Data = bytes.Clone(ev.Data)
		r.events[p] = append(r.events[p], ev)
	}
}

// startedPartitions returns how many partitions have had a Start.
func (r *recorder) startedPartitions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.starts {
		if len(s) > 0 {
			n++
		}
	}
	return n
}

// snapshot returns copies of what partition p received so far.
func (r *recorder) snapshot(p int) ([]startCall, []pubsub.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]startCall(nil), r.starts[p]...), append([]pubsub.Event(nil), r.events[p]...)
}

// firstError returns the first contract violation seen, if any.
func (r *recorder) firstError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("handler saw: %s (%d violations in all)", r.errs[0], len(r.errs))
}

// report fails t with every violation seen.
func (r *recorder) report(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		t.Errorf("handler contract: %s", e)
	}
}

// gate holds Deliver calls of one partition until it is opened, to make a
// handler fall behind on purpose.
type gate struct {
	partition int
	entered   chan struct{} // closed when the first held Deliver arrives
	release   chan struct{} // closed by open
	enterOnce sync.Once
	openOnce  sync.Once
}

func newGate(p int) *gate {
	return &gate{partition: p, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) wait() {
	g.enterOnce.Do(func() { close(g.entered) })
	<-g.release
}

func (g *gate) open() { g.openOnce.Do(func() { close(g.release) }) }

func (g *gate) hasEntered() bool {
	select {
	case <-g.entered:
		return true
	default:
		return false
	}
}
