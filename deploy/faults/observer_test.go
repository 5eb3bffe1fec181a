package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/loadtest"
	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

// observer holds a few streams straight to each node (not through the load
// balancer, so that every node's path from Redis to its streams is
// watched), one per node and topic, and records every block with an id in
// the order it came: the stream's start, events, resets. The load
// generator's streams count; these keep the order, which is what tells a
// reset that came before the events of a new history from a silent skip.
//
// Goroutines: one per stream, started by startObserver, ended by stop
// (registered as cleanup too), which waits for them.
type observer struct {
	streams []*obsStream
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	tr      *http.Transport
	once    sync.Once
}

// obsStream is one observed stream and what it received.
type obsStream struct {
	node, base, topic string
	topicIdx          int

	mu    sync.Mutex
	items []obsItem
	drops int // times the stream ended and was opened again
	// silence is the longest time between two blocks of any kind
	// (events, ids, heartbeat comments) within one connection.
	silence time.Duration
	failed  string // why the last attempt failed, while it did
}

type obsKind uint8

const (
	obsID    obsKind = iota // a block with an id and no event: the stream's start, id-only heartbeats
	obsEvent                // a message event of the observed topic
	obsReset                // a reset event
)

// obsItem is one block received.
type obsItem struct {
	kind   obsKind
	atNs   int64
	epoch  string
	pos    pubsub.Pos
	part   int
	seq    int64  // obsEvent
	reason string // obsReset
}

// startObserver opens one stream per node of nodes (name, base URL) and
// topic of topics (indexes into cfg's topic names), and returns once each
// has its first id block (the stream's start) or fails the test after 15 s.
func startObserver(t *testing.T, cfg loadtest.Config, nodes [][2]string, topics int) *observer {
	t.Helper()
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = loadtest.DefaultTopicPrefix // what the load generator's topics are named
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &observer{cancel: cancel, tr: &http.Transport{
		Proxy:       nil,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}}
	for _, n := range nodes {
		for i := range topics {
			s := &obsStream{node: n[0], base: n[1], topic: cfg.Topic(i), topicIdx: i}
			o.streams = append(o.streams, s)
			o.wg.Go(func() { s.run(ctx, o.tr) })
		}
	}
	t.Cleanup(o.stop)
	deadline := time.Now().Add(15 * time.Second)
	for _, s := range o.streams {
		for !s.started() {
			if time.Now().After(deadline) {
				t.Fatalf("observer stream %s %s did not start: %s", s.node, s.topic, s.lastFailure())
			}
			time.Sleep(20 * time.Millisecond) // polling a cross-goroutine state with a deadline
		}
	}
	return o
}

// stop ends every stream and waits for them. Idempotent.
func (o *observer) stop() {
	o.once.Do(func() {
		o.cancel()
		o.wg.Wait()
		o.tr.CloseIdleConnections()
	})
}

// waitFor waits (at most timeout) until every stream's last event of its
// topic has the number want(topic index): the deliveries still in flight
// when the load generator stopped.
func (o *observer) waitFor(timeout time.Duration, want func(topic int) int64) {
	deadline := time.Now().Add(timeout)
	for _, s := range o.streams {
		for s.lastSeq() < want(s.topicIdx) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (s *obsStream) started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items) > 0
}

func (s *obsStream) lastFailure() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *obsStream) lastSeq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.items) - 1; i >= 0; i-- {
		if s.items[i].kind == obsEvent {
			return s.items[i].seq
		}
	}
	return 0
}

// snapshot returns the items received so far.
func (s *obsStream) snapshot() ([]obsItem, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]obsItem(nil), s.items...), s.drops
}

// longestSilence returns the longest time without a block.
func (s *obsStream) longestSilence() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.silence
}

// run holds the stream until ctx ends, opening it again with Last-Event-ID
// after its retry hint (at most 2 s) whenever it ends.
func (s *obsStream) run(ctx context.Context, tr *http.Transport) {
	lastID := ""
	retry := 500 * time.Millisecond
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			s.mu.Lock()
			s.drops++
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(retry, 2*time.Second)):
			}
		}
		var err error
		lastID, retry, err = s.once(ctx, tr, lastID, retry)
		if err != nil && ctx.Err() == nil {
			s.mu.Lock()
			s.failed = err.Error()
			s.mu.Unlock()
		}
	}
}

// once opens the stream and reads it until it ends.
func (s *obsStream) once(ctx context.Context, tr *http.Transport, lastID string, retry time.Duration) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/v1/events?topic="+url.QueryEscape(s.topic), nil)
	if err != nil {
		return lastID, retry, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return lastID, retry, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return lastID, retry, fmt.Errorf("status %d", resp.StatusCode)
	}
	p := sse.NewParser(resp.Body)
	p.LastEventID = lastID
	last := time.Now()
	for {
		ev, err := p.Next()
		if err != nil {
			return p.LastEventID, retry, err
		}
		now := time.Now()
		s.mu.Lock()
		s.silence = max(s.silence, now.Sub(last))
		s.mu.Unlock()
		last = now
		if ev.Retry >= 0 {
			retry = time.Duration(ev.Retry) * time.Millisecond
		}
		if !ev.HasID {
			continue
		}
		it := obsItem{kind: obsID, atNs: time.Now().UnixNano()}
		if c, err := pubsub.ParseCursor(ev.ID, pubsub.MaxPartitions); err == nil && len(c) == 1 {
			it.part, it.epoch, it.pos = c[0].Partition, c[0].Epoch, c[0].Pos
		} else {
			it.epoch = "?" + ev.ID // one topic: one partition; anything else is wrong
		}
		switch {
		case !ev.Dispatch:
		case ev.Type == "reset":
			var r struct{ Topic, Reason string }
			_ = json.Unmarshal([]byte(ev.Data), &r)
			it.kind, it.reason = obsReset, r.Reason
			if r.Topic != s.topic {
				it.reason = "topic " + r.Topic + ": " + r.Reason
			}
		case ev.Type == "message":
			pl, ok := loadtest.ParsePayload(ev.Data)
			if !ok || pl.Topic != s.topic {
				it.kind, it.seq = obsEvent, -1
			} else {
				it.kind, it.seq = obsEvent, pl.Seq
			}
		default:
			continue
		}
		s.mu.Lock()
		s.items = append(s.items, it)
		s.mu.Unlock()
	}
}

// lostMode is what a case allows of history lost in a failover.
type lostMode uint8

const (
	// lostNone: no history is lost; no reset.
	lostNone lostMode = iota
	// lostUnconfirmed (publishes wait for a replica): only events Redis
	// stored but no replica confirmed are lost. Every confirmed event
	// arrives; a stream that got unconfirmed events before they were lost
	// is reset and then receives them again, stored anew by the
	// publisher's retry.
	lostUnconfirmed
	// lostAcked (publishes do not wait): confirmed events may be lost. A
	// stream may miss some, all before its reset, never after it, and
	// never gets one twice.
	lostAcked
)

// obsRules is what checkObserved holds every stream to.
type obsRules struct {
	mode lostMode
	// batch bounds what a stream may receive again after a reset (the
	// events of the one unconfirmed request its topic's publish
	// connection had in flight).
	batch int
	// total is the number of the last event of each topic (the publisher
	// confirmed them all).
	total func(topic int) int64
	// rolledBack are the partitions whose history a node found rolled back.
	rolledBack map[int]bool
}

// checkObserved checks each observed stream's blocks, in order:
//
//   - events of a topic come with consecutive numbers from 1, each once;
//   - every event carries the epoch the stream is in: the one of its
//     start, or of the reset it got last; a block with another epoch
//     before its reset is a silent skip;
//   - a reset comes only on a partition a node found rolled back (and
//     with lostNone never), and every stream of such a partition gets one;
//   - after a reset the numbers go on from where they were (lostAcked: or
//     further, the events lost skipped, never back; lostUnconfirmed: at
//     most rules.batch back, never further);
//   - the last event is the topic's last.
//
// It returns the problems found, one line each, at most a few per stream,
// and the earlier copies of the events received again after a reset
// (lostUnconfirmed), which the caller checks are gone from Redis.
func checkObserved(o *observer, rules obsRules) (bad []string, again []redelivery) {
	seen := make(map[redelivery]bool)
	for _, s := range o.streams {
		items, _ := s.snapshot()
		name := s.node + " " + s.topic
		var problems []string
		cur := 0 // the block being checked, for the context of a problem
		add := func(format string, args ...any) {
			if len(problems) < 3 {
				problems = append(problems, name+": "+fmt.Sprintf(format, args...)+"; blocks "+describeItems(items, cur-4, cur+2))
			}
		}
		epoch, part := "", -1
		var at pubsub.Pos                   // the stream's position in its epoch
		var prev, hi int64                  // the previous event's number, the highest
		first := make(map[int64]pubsub.Pos) // where each number came first
		afterReset := false                 // the next event is the first after a reset
		resets := 0
		for i, it := range items {
			cur = i
			if strings.HasPrefix(it.epoch, "?") {
				add("block %d has id %q: not one partition's", i, it.epoch[1:])
				continue
			}
			if part >= 0 && it.part != part {
				add("block %d is of partition %d, the stream's is %d", i, it.part, part)
			}
			part = it.part
			switch it.kind {
			case obsReset:
				resets++
				if rules.mode == lostNone {
					add("reset (%s) at block %d: history was not lost", it.reason, i)
				} else if !rules.rolledBack[it.part] {
					add("reset (%s) on partition %d, which no node found rolled back", it.reason, it.part)
				}
				epoch, at, afterReset = it.epoch, it.pos, true
				continue
			case obsID:
				switch {
				case epoch == "":
					epoch = it.epoch
				case it.epoch != epoch:
					add("block %d moves the stream from epoch %s to %s without a reset", i, epoch, it.epoch)
					epoch = it.epoch
				case it.pos.Less(at):
					add("block %d moves the stream back from %s to %s", i, at, it.pos)
				}
				at = maxPosOf(at, it.pos)
				continue
			}
			switch {
			case it.epoch != epoch:
				add("event %d (block %d) of epoch %s while the stream is in %s: a new history without a reset", it.seq, i, it.epoch, epoch)
				epoch = it.epoch
			case !at.Less(it.pos):
				// Within an epoch each stream entry comes once, after the
				// position the stream is at (a reset's included: the new
				// epoch starts after it).
				add("event %d at %s, not after the stream's position %s: delivered again", it.seq, it.pos, at)
			}
			at = it.pos
			n := it.seq
			switch {
			case n < 0:
				add("block %d: not a payload of its topic", i)
				continue
			case afterReset && rules.mode == lostUnconfirmed:
				// The unconfirmed tail may come again, nothing may be
				// skipped: the confirmed events are all kept.
				if n > hi+1 || hi-n+1 > int64(rules.batch) {
					add("first event after the reset is %d, after %d: want %d..%d", n, hi, max(1, hi-int64(rules.batch)+1), hi+1)
				}
				for k := n; k <= hi; k++ {
					if r := (redelivery{it.part, k, first[k]}); !seen[r] {
						seen[r] = true
						again = append(again, r)
					}
				}
			case afterReset && rules.mode == lostAcked:
				// Whatever was lost lies before the reset.
				if n <= hi {
					add("first event after the reset is %d, after %d: received twice", n, hi)
				}
			case n == prev+1:
			case n <= prev:
				add("event %d again (or late) after %d (block %d)", n, prev, i)
			default:
				add("events %d..%d missing before block %d, without a reset", prev+1, n-1, i)
			}
			afterReset = false
			prev, hi = n, max(hi, n)
			if _, ok := first[n]; !ok {
				first[n] = it.pos
			}
		}
		if rules.mode != lostNone && part >= 0 && rules.rolledBack[part] && resets == 0 {
			add("partition %d was rolled back, but the stream got no reset", part)
		}
		if want := rules.total(s.topicIdx); prev != want {
			add("last event %d, the topic's last is %d", prev, want)
		}
		bad = append(bad, problems...)
	}
	if len(bad) > maxProblems {
		n := len(bad)
		bad = append(bad[:maxProblems], fmt.Sprintf("... and %d more problems", n-maxProblems))
	}
	return bad, again
}

// maxProblems bounds the problems checkObserved returns.
const maxProblems = 20

// redelivery is an event a stream received again after a reset: its
// number and where (partition, stream entry) it came the first time.
type redelivery struct {
	part int
	seq  int64
	pos  pubsub.Pos
}

func maxPosOf(a, b pubsub.Pos) pubsub.Pos {
	if a.Less(b) {
		return b
	}
	return a
}

// describeItems renders items[from:to] (clamped), one token each:
// "21@ep:1796603543512-0" for event 21 of epoch ep at that stream entry,
// "reset(reason)@ep:pos", "id@ep:pos"; each with its receive time.
func describeItems(items []obsItem, from, to int) string {
	from, to = max(from, 0), min(to, len(items))
	var b strings.Builder
	for i := from; i < to; i++ {
		it := items[i]
		if i > from {
			b.WriteString(" ")
		}
		switch it.kind {
		case obsEvent:
			fmt.Fprintf(&b, "[%d]%d", i, it.seq)
		case obsReset:
			fmt.Fprintf(&b, "[%d]reset(%s)", i, it.reason)
		default:
			fmt.Fprintf(&b, "[%d]id", i)
		}
		fmt.Fprintf(&b, "@%s:%s/%s", it.epoch, it.pos, time.Unix(0, it.atNs).Format("15:04:05.000"))
	}
	return b.String()
}
