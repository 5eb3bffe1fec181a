package node

import (
	"slices"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/ssecluster/ssecluster/pubsub"
)

// replayCache keeps the most recent events of recently active topics, as
// encoded frames, so most resumes are served without reading the broker.
// It is filled only by live fan-out, i.e. with what the broker really
// delivered, in order.
//
// Completeness is what makes it safe. A topic's ring holds every event of
// the topic after ring.since. A topic without a ring had no event after the
// partition's floor: the floor starts at the position this node started
// reading the partition from, and rises to the last event of every ring
// evicted. A query the cache cannot answer completely is a miss, never a
// partial answer.
//
// One mutex guards everything, and the LRU is golang-lru's simplelru (no
// lock of its own), so an eviction and the floor raise it implies are one
// atomic step: no lookup can see the ring gone and the floor not yet raised.
// The critical sections are short (an append; a copy of at most PerTopic
// entries per topic), and the lock is a leaf.
type replayCache struct {
	perTopic int
	maxBytes int64

	mu    sync.Mutex
	lru   *simplelru.LRU[string, *ring]
	bytes int64
	floor []pubsub.Pos
	epoch []string
}

// ring holds the last events of one topic, oldest first.
type ring struct {
	p     int
	since pubsub.Pos // every event of the topic after since is in evs
	evs   []cached   // circular, starting at head
	head  int
	n     int
	bytes int64
}

type cached struct {
	pos     pubsub.Pos
	frame   []byte
	bodyOff int
}

// cachedOverhead approximates the bookkeeping bytes of one cached event.
const cachedOverhead = 64

func newReplayCache(cfg CacheConfig, partitions int) *replayCache {
	c := &replayCache{
		perTopic: cfg.PerTopic,
		maxBytes: cfg.Bytes,
		floor:    make([]pubsub.Pos, partitions),
		epoch:    make([]string, partitions),
	}
	// NewLRU fails only for a size <= 0, which Config.Validate excludes.
	c.lru, _ = simplelru.NewLRU[string, *ring](cfg.Topics, c.onEvictLocked)
	return c
}

// onEvictLocked runs inside LRU calls, under c.mu.
func (c *replayCache) onEvictLocked(_ string, r *ring) {
	last := r.since
	if r.n > 0 {
		last = r.evs[(r.head+r.n-1)%len(r.evs)].pos
	}
	c.bytes -= r.bytes
	if c.floor[r.p].Less(last) {
		c.floor[r.p] = last
	}
}

// startPartition (re)starts partition from.Partition at from: nothing
// before it is known. Rings of the partition are dropped.
func (c *replayCache) startPartition(from pubsub.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, topic := range c.lru.Keys() {
		if r, ok := c.lru.Peek(topic); ok && r.p == from.Partition {
			c.lru.Remove(topic)
		}
	}
	c.floor[from.Partition] = from.Pos
	c.epoch[from.Partition] = from.Epoch
}

// add appends a fanned-out event. Calls for one partition are serialised
// (the partition's fan-out), so a topic's ring only grows in order.
func (c *replayCache) add(id pubsub.ID, topic string, frame []byte, bodyOff int) {
	size := int64(len(frame)) + cachedOverhead
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch[id.Partition] != id.Epoch {
		return
	}
	r, ok := c.lru.Get(topic)
	if !ok {
		r = &ring{p: id.Partition, since: c.floor[id.Partition], evs: make([]cached, 4)}
		c.lru.Add(topic, r) // may evict the oldest topic
	}
	if r.n == c.perTopic {
		old := &r.evs[r.head]
		r.since = old.pos
		r.bytes -= int64(len(old.frame)) + cachedOverhead
		c.bytes -= int64(len(old.frame)) + cachedOverhead
		*old = cached{}
		r.head = (r.head + 1) % len(r.evs)
		r.n--
	}
	if r.n == len(r.evs) { // grow, only while below perTopic
		grown := make([]cached, min(2*len(r.evs), c.perTopic))
		for i := range r.n {
			grown[i] = r.evs[(r.head+i)%len(r.evs)]
		}
		r.evs, r.head = grown, 0
	}
	r.evs[(r.head+r.n)%len(r.evs)] = cached{pos: id.Pos, frame: frame, bodyOff: bodyOff}
	r.n++
	r.bytes += size
	c.bytes += size
	for c.bytes > c.maxBytes && c.lru.Len() > 1 {
		c.lru.RemoveOldest()
	}
}

// lookup appends to dst the events of topics (all in partition p, epoch
// epoch) with after < pos <= until, in partition order, if the cache holds
// all of them. ok is false when it cannot answer completely.
func (c *replayCache) lookup(p int, epoch string, topics []string, after, until pubsub.Pos, dst []cached) ([]cached, bool) {
	start := len(dst)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch[p] != epoch {
		return dst, false
	}
	for _, t := range topics {
		r, ok := c.lru.Get(t)
		if !ok {
			if after.Less(c.floor[p]) {
				return dst[:start], false
			}
			continue // no event of t after the floor
		}
		if after.Less(r.since) {
			return dst[:start], false
		}
		for i := range r.n {
			e := r.evs[(r.head+i)%len(r.evs)]
			if after.Less(e.pos) && !until.Less(e.pos) {
				dst = append(dst, e)
			}
		}
	}
	if len(topics) > 1 {
		slices.SortFunc(dst[start:], func(a, b cached) int {
			switch {
			case a.pos.Less(b.pos):
				return -1
			case b.pos.Less(a.pos):
				return 1
			}
			return 0
		})
	}
	return dst, true
}

// stats returns the number of cached topics and bytes.
func (c *replayCache) stats() (topics int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}
