package node

import (
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

// hub fans broker events out to local streams. It implements
// pubsub.Handler: the broker calls Start and Deliver, serialised per
// partition.
type hub struct {
	log   *slog.Logger
	parts []*partition
	cache *replayCache
	stats *Stats
	// fanOutMin is the number of streams per fan-out worker below which one
	// goroutine writes a whole batch (defaultFanOutMin; tests lower it).
	fanOutMin int
	// readLag is how old (ns) the newest event of the last batch was when
	// the hub received it; see BrokerStatus.ReadLagMs.
	readLag atomic.Int64
}

var (
	_ pubsub.Handler   = (*hub)(nil)
	_ pubsub.Suspender = (*hub)(nil)
)

// partition is the subscriber registry of one broker partition.
type partition struct {
	p int

	mu      sync.Mutex // held by fan-out for a whole batch, by (un)registration and Start
	started bool
	epoch   string
	topics  map[string][]subRef
	ready   chan struct{} // closed by the first Start

	// suspended is set while the broker's reader of the partition has
	// lost its store (pubsub.Suspender): the store may have failed over to
	// a replica that lacks what the replay cache holds, so resumes are
	// served from the broker, as on any other node, until the reader has
	// checked its position again.
	suspended atomic.Bool

	// head is the last position fanned out completely: every event at or
	// below it has been handed to every stream subscribed at that time.
	// Set after the sends, so a reader of head never skips an event.
	// headMu is a leaf lock (readers hold conn.mu; no allocation per batch,
	// unlike an atomic pointer).
	headMu  sync.Mutex
	head    pubsub.ID
	headSet bool

	// Fan-out scratch, owned by the goroutine in Deliver/Start (serialised
	// by mu): ws[0] for Start and small batches, ws[i] for fan-out worker i.
	w      *wctx
	ws     []*wctx
	gen    uint64
	groups []group
	frames []frameRef
}

type subRef struct {
	c *conn
	k int32 // index into c.parts
}

// group is what one stream gets from one batch.
type group struct {
	c   *conn
	k   int32
	evs []int32 // indexes into partition.frames
}

// frameRef is one event of a batch, encoded once for every stream.
type frameRef struct {
	pos     pubsub.Pos
	frame   []byte // "id: <event id>\n" + body + "\n"
	bodyOff int    // frame[bodyOff:] is the body + "\n", for streams with their own id line
	ts      int64  // publish time, Unix ns (see publishTime)
}

// publishTime is when ev was published, Unix ns: its ts field, or, for
// entries written without one (plain XADDs from other publishers), the
// millisecond of its stream ID (the store's clock when it was stored).
func publishTime(ev *pubsub.Event) int64 {
	if ev.Time > 0 {
		return ev.Time
	}
	return int64(ev.ID.Pos.Ms) * int64(time.Millisecond)
}

func newHub(log *slog.Logger, partitions int, cache *replayCache, stats *Stats) *hub {
	h := &hub{log: log, cache: cache, stats: stats, parts: make([]*partition, partitions), fanOutMin: defaultFanOutMin}
	workers := max(1, runtime.GOMAXPROCS(0))
	for p := range h.parts {
		part := &partition{p: p, topics: make(map[string][]subRef), ready: make(chan struct{}), ws: make([]*wctx, workers)}
		for i := range part.ws {
			// Fan-out worker i of partition p records push latency on its
			// own shard (modulo the recorder's shards).
			part.ws[i] = newWctx()
			part.ws[i].shard = p*workers + i
		}
		part.w = part.ws[0]
		h.parts[p] = part
	}
	return h
}

// setHead records the partition's new head.
func (part *partition) setHead(id pubsub.ID) {
	part.headMu.Lock()
	part.head, part.headSet = id, true
	part.headMu.Unlock()
}

// headID returns the partition's head; ok is false before the first Start.
func (part *partition) headID() (id pubsub.ID, ok bool) {
	part.headMu.Lock()
	defer part.headMu.Unlock()
	return part.head, part.headSet
}

// encodeEvent encodes ev once: its id line, then its body. It reports
// false for an event type that cannot be sent safely (plain XADDs from
// outside may carry anything).
func encodeEvent(ev *pubsub.Event) (frame []byte, bodyOff int, ok bool) {
	var typ sse.Type
	if ev.Type != "" {
		t, err := sse.NewType(ev.Type)
		if err != nil || t == resetType {
			return nil, 0, false
		}
		typ = t
	}
	var idb [96]byte
	id := ev.ID.AppendText(idb[:0])
	frame = make([]byte, 0, len(id)+len(ev.Data)+len(ev.Type)+32)
	frame = sse.AppendID(frame, id)
	bodyOff = len(frame)
	frame = sse.AppendBody(frame, typ, ev.Data)
	frame = append(frame, '\n')
	return frame, bodyOff, true
}

// Suspend implements pubsub.Suspender.
func (h *hub) Suspend(p int) { h.parts[p].suspended.Store(true) }

// Resume implements pubsub.Suspender.
func (h *hub) Resume(p int) { h.parts[p].suspended.Store(false) }

// Start implements pubsub.Handler.
func (h *hub) Start(from pubsub.ID, reason string) {
	part := h.parts[from.Partition]
	part.mu.Lock()
	defer part.mu.Unlock()
	if !part.started {
		part.started, part.epoch = true, from.Epoch
		h.cache.startPartition(from)
		part.setHead(from)
		close(part.ready)
		return
	}
	// History between the old head and from is gone: every stream of the
	// partition gets a reset event per topic and continues from `from`.
	h.log.Warn("partition history lost; resetting its streams", "partition", from.Partition, "reason", reason)
	part.epoch = from.Epoch
	h.cache.startPartition(from)
	w := part.w
	for topic, subs := range part.topics {
		for _, s := range subs {
			c := s.c
			c.mu.Lock()
			cp := &c.parts[s.k]
			cp.epoch, cp.cur, cp.floor = from.Epoch, from.Pos, pubsub.Pos{}
			b := w.buf[:chunkHeadroom]
			b = appendReset(b, c, topic, reason)
			c.sendLocked(w, c.frameChunk(b))
			w.buf = b[:0]
			c.mu.Unlock()
			h.stats.Resets.Add(1)
		}
	}
	part.setHead(from)
}

var resetType = sse.Type("reset")

// appendReset appends a reset event for topic carrying the stream's
// current cursor.
func appendReset(b []byte, c *conn, topic, reason string) []byte {
	b = c.appendIDLine(b)
	b = sse.AppendBody(b, resetType, resetData(topic, reason))
	return append(b, '\n')
}

// maxWrite is where fan-out stops appending to one write for a stream and
// sends what it has, so a burst does not grow the scratch buffer unbounded.
const maxWrite = 64 << 10

// Deliver implements pubsub.Handler: encode each event once, group the
// batch per stream, then write each stream's share with one write.
func (h *hub) Deliver(p int, evs []pubsub.Event) {
	part := h.parts[p]
	part.mu.Lock()
	defer part.mu.Unlock()
	part.gen++
	gen := part.gen
	part.groups = part.groups[:0]
	part.frames = part.frames[:0]
	for i := range evs {
		ev := &evs[i]
		frame, bodyOff, ok := encodeEvent(ev)
		if !ok {
			h.stats.EventsDropped.Add(1)
			h.log.Warn("dropping event with an event type that cannot be sent", "topic", ev.Topic, "id", ev.ID.String())
			continue
		}
		h.cache.add(ev.ID, ev.Topic, frame, bodyOff)
		fi := int32(len(part.frames))
		part.frames = append(part.frames, frameRef{pos: ev.ID.Pos, frame: frame, bodyOff: bodyOff, ts: publishTime(ev)})
		for _, s := range part.topics[ev.Topic] {
			cp := &s.c.parts[s.k]
			if !cp.floor.Less(ev.ID.Pos) {
				continue // the client saw it already (cursor from a node ahead of us)
			}
			if cp.batchGen != gen {
				cp.batchGen = gen
				cp.batchIdx = int32(len(part.groups))
				if len(part.groups) < cap(part.groups) {
					part.groups = part.groups[:len(part.groups)+1]
				} else {
					part.groups = append(part.groups, group{})
				}
				g := &part.groups[cp.batchIdx]
				g.c, g.k, g.evs = s.c, s.k, g.evs[:0]
			}
			g := &part.groups[cp.batchIdx]
			g.evs = append(g.evs, fi)
		}
	}
	if n := len(evs); n > 0 {
		h.readLag.Store(time.Now().UnixNano() - publishTime(&evs[n-1]))
	}
	h.stats.Deliveries.Add(h.fanOut(part))
	if n := len(evs); n > 0 {
		part.setHead(evs[n-1].ID)
	}
}

// defaultFanOutMin is the number of streams per worker below which one
// goroutine writes the whole batch: spreading a write-syscall-bound fan-out
// over the cores shortens the time to the last subscriber of a big topic,
// and below a few hundred writes starting goroutines is not worth it.
const defaultFanOutMin = 512

// fanOut writes the batch's groups, over several goroutines for big
// batches. It owns those goroutines and returns once they have finished.
// A stream is in exactly one group, so its bytes keep their order.
func (h *hub) fanOut(part *partition) int64 {
	groups := part.groups
	workers := min(len(part.ws), len(groups)/h.fanOutMin)
	if workers <= 1 {
		return writeGroups(part.frames, groups, part.ws[0])
	}
	var wg sync.WaitGroup
	var total atomic.Int64
	size := (len(groups) + workers - 1) / workers
	for i := 1; i < workers; i++ {
		chunk, w := groups[min(i*size, len(groups)):min((i+1)*size, len(groups))], part.ws[i]
		wg.Go(func() { total.Add(writeGroups(part.frames, chunk, w)) })
	}
	total.Add(writeGroups(part.frames, groups[:size], part.ws[0]))
	wg.Wait()
	return total.Load()
}

// writeGroups writes to each group's stream its share of the batch, in one
// write when it fits, and returns the number of events written or queued.
func writeGroups(frames []frameRef, groups []group, w *wctx) int64 {
	var delivered int64
	for gi := range groups {
		g := &groups[gi]
		c := g.c
		c.mu.Lock()
		if !c.closed {
			single := len(c.parts) == 1
			cp := &c.parts[g.k]
			b := w.buf[:chunkHeadroom]
			w.ts = w.ts[:0]
			for _, fi := range g.evs {
				f := &frames[fi]
				cp.cur = f.pos
				w.ts = append(w.ts, f.ts)
				if single {
					b = append(b, f.frame...)
				} else {
					b = c.appendIDLine(b)
					b = append(b, f.frame[f.bodyOff:]...)
				}
				if len(b) >= maxWrite {
					c.sendLocked(w, c.frameChunk(b))
					b = w.buf[:chunkHeadroom]
				}
			}
			if len(b) > chunkHeadroom {
				c.sendLocked(w, c.frameChunk(b))
			}
			if cap(b) <= 4*maxWrite {
				w.buf = b[:0]
			}
			delivered += int64(len(g.evs))
		}
		c.mu.Unlock()
		g.c = nil // do not pin closed conns until the next batch
	}
	return delivered
}

// regFloor is the floor a stream asks for in one partition: live events at
// or below Pos are skipped, if the partition is still in Epoch.
type regFloor struct {
	Epoch string
	Pos   pubsub.Pos
}

// registration is the outcome of register in one partition.
type registration struct {
	// head is the partition head at registration: events after it reach
	// the stream live, events up to it must come from history.
	head pubsub.ID
	// at is the stream's position at registration (the head, or the
	// floor). Fan-out may move the conn's own position on as soon as the
	// locks are released, with events that wait in its queue, so only at
	// may be told to the client before those are written.
	at pubsub.ID
}

// register subscribes c to its topics in every partition of c.parts at one
// instant, holding all their locks (taken in ascending partition order;
// c.parts is sorted). Registering one partition at a time would let a live
// event of the first carry a cursor naming a partition not yet registered.
// floors[k] applies to c.parts[k]. It reports false if a partition has not
// started yet, or c is closed.
func (h *hub) register(c *conn, floors []regFloor) ([]registration, bool) {
	for k := range c.parts {
		h.parts[c.parts[k].p].mu.Lock()
	}
	defer func() {
		for k := range c.parts {
			h.parts[c.parts[k].p].mu.Unlock()
		}
	}()
	for k := range c.parts {
		if !h.parts[c.parts[k].p].started {
			return nil, false
		}
	}
	regs := make([]registration, len(c.parts))
	c.mu.Lock()
	if c.closed {
		// Closed while it was being set up: the reaper may have
		// unregistered it already, so it must not be registered now.
		c.mu.Unlock()
		return nil, false
	}
	for k := range c.parts {
		cp := &c.parts[k]
		part := h.parts[cp.p]
		head, _ := part.headID() // set: the partition started
		cp.epoch, cp.cur = part.epoch, head.Pos
		if f := floors[k]; f.Epoch == part.epoch && head.Pos.Less(f.Pos) {
			cp.floor, cp.cur = f.Pos, f.Pos
		}
		regs[k] = registration{head: head, at: pubsub.ID{Partition: cp.p, Epoch: cp.epoch, Pos: cp.cur}}
	}
	c.mu.Unlock()
	for k := range c.parts {
		part := h.parts[c.parts[k].p]
		for _, t := range c.parts[k].topics {
			part.topics[t] = append(part.topics[t], subRef{c: c, k: int32(k)})
		}
	}
	return regs, true
}

// unregister removes c from every partition it registered with.
func (h *hub) unregister(c *conn) {
	for k := range c.parts {
		cp := &c.parts[k]
		part := h.parts[cp.p]
		part.mu.Lock()
		for _, t := range cp.topics {
			subs := part.topics[t]
			for i := range subs {
				if subs[i].c == c {
					subs[i] = subs[len(subs)-1]
					subs[len(subs)-1] = subRef{}
					subs = subs[:len(subs)-1]
					break
				}
			}
			if len(subs) == 0 {
				delete(part.topics, t)
			} else {
				part.topics[t] = subs
			}
		}
		part.mu.Unlock()
	}
}

// started reports whether every partition has had its first Start.
func (h *hub) started() bool {
	for _, part := range h.parts {
		select {
		case <-part.ready:
		default:
			return false
		}
	}
	return true
}

// subscribers returns how many local streams subscribe to topic.
func (h *hub) subscribers(topic string) int {
	part := h.parts[pubsub.PartitionOf(topic, len(h.parts))]
	part.mu.Lock()
	defer part.mu.Unlock()
	return len(part.topics[topic])
}
