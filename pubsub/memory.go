package pubsub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryConfig configures NewMemory. The zero value is usable: every zero
// field means its default.
type MemoryConfig struct {
	// Partitions is how many partitions topics hash into. Default 16, at
	// most 128 (see MaxPartitions).
	Partitions int
	// MaxLen is how many events each partition retains, in events. Older
	// events are dropped first; a cursor before a dropped event gets
	// ReasonTrimmed. Default 10000, at most 1<<24.
	MaxLen int
	// IdempotencyTTL is how long a (topic, IdempotencyKey) pair is
	// remembered after its first publish. Default 10 minutes, at most 24 h.
	IdempotencyTTL time.Duration
	// MaxIdempotencyKeys bounds how many pairs are remembered, across all
	// partitions; when full, the oldest pair is forgotten first. Default
	// 100000, at most 1<<24.
	MaxIdempotencyKeys int
}

const (
	memDefaultPartitions         = 16
	memDefaultMaxLen             = 10000
	memDefaultIdempotencyTTL     = 10 * time.Minute
	memDefaultMaxIdempotencyKeys = 100000

	memMaxMaxLen          = 1 << 24
	memMaxIdempotencyTTL  = 24 * time.Hour // Redis IDMP-DURATION's upper bound
	memMaxIdempotencyKeys = 1 << 24

	// memDefaultRangeLimit is the scan bound of a RangeQuery whose Limit is <= 0.
	memDefaultRangeLimit = 1000
	// memRunBatch bounds one Deliver call, so that Run never holds a partition
	// lock (and so delays publishers) for more than memRunBatch copies, and its
	// reused batch slice stays small.
	memRunBatch = 1024
)

// withDefaults returns c with every zero field set to its default.
func (c MemoryConfig) withDefaults() MemoryConfig {
	if c.Partitions == 0 {
		c.Partitions = memDefaultPartitions
	}
	if c.MaxLen == 0 {
		c.MaxLen = memDefaultMaxLen
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = memDefaultIdempotencyTTL
	}
	if c.MaxIdempotencyKeys == 0 {
		c.MaxIdempotencyKeys = memDefaultMaxIdempotencyKeys
	}
	return c
}

// Validate reports every field out of range. Zero fields are valid: they
// mean the default.
func (c MemoryConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		errs = append(errs, fmt.Errorf("pubsub: memory config: Partitions %d not in [1, %d]", c.Partitions, MaxPartitions))
	}
	if c.MaxLen < 1 || c.MaxLen > memMaxMaxLen {
		errs = append(errs, fmt.Errorf("pubsub: memory config: MaxLen %d not in [1, %d]", c.MaxLen, memMaxMaxLen))
	}
	if c.IdempotencyTTL < time.Millisecond || c.IdempotencyTTL > memMaxIdempotencyTTL {
		errs = append(errs, fmt.Errorf("pubsub: memory config: IdempotencyTTL %v not in [1ms, %v]", c.IdempotencyTTL, memMaxIdempotencyTTL))
	}
	if c.MaxIdempotencyKeys < 1 || c.MaxIdempotencyKeys > memMaxIdempotencyKeys {
		errs = append(errs, fmt.Errorf("pubsub: memory config: MaxIdempotencyKeys %d not in [1, %d]", c.MaxIdempotencyKeys, memMaxIdempotencyKeys))
	}
	return errors.Join(errs...)
}

// errMemoryRunning is returned by a Run called while another Run is active.
var errMemoryRunning = errors.New("pubsub: run already active")

// Memory is a Broker that keeps everything in the process: for a single node,
// and for tests. It has the semantics of the Redis broker: positions imitate
// Redis auto IDs (wall-clock milliseconds, then a sequence within a
// millisecond), every partition keeps its last MaxLen events, and its epochs
// are new in every process, so a restart is an epoch change for every
// cursor a client kept.
//
// Memory is bounded: at most Partitions×MaxLen events (each event's size is
// whatever the publisher validated), MaxIdempotencyKeys remembered keys, and
// one reused batch of at most 1024 events inside Run.
//
// # Goroutines
//
// Memory starts none. Run does its work on the goroutine that calls it:
//
//	| goroutine | owner          | stops on          | waited by                     |
//	|-----------|----------------|-------------------|-------------------------------|
//	| Run loop  | caller of Run  | ctx done, Close   | the caller (Run blocks)       |
//
// The Handler is called on that goroutine, one call at a time, so calls for
// one partition are trivially serialised. Run sleeps on a 1-slot wake
// channel that every Publish pokes without blocking: a poke that arrives
// while Run is delivering stays in the slot, so no publish is missed and
// no publisher waits for Run.
//
// # Locks
//
// Each partition has a mutex guarding its ring, head and trim watermark.
// The idempotency table has one mutex. Order: partition, then idempotency
// table; the idempotency mutex is a leaf. The Handler is never called with a
// lock held.
type Memory struct {
	cfg   MemoryConfig
	now   func() time.Time // time.Now; tests replace it before first use
	parts []memPartition
	idem  memIdemTable

	// wake has capacity 1: Publish pokes it without blocking after storing,
	// Run drains it before scanning the partitions.
	wake chan struct{}
	done chan struct{} // closed by Close; ends Run

	keysMu  sync.Mutex // guards keys; a leaf
	keys    map[string][]byte
	closed  atomic.Bool
	running atomic.Bool
}

var _ Broker = (*Memory)(nil)

// memPartition is one append-only log. Event number n (0-based, counting every
// event ever stored) lives in ring[n%maxLen] while n >= added-len(ring).
type memPartition struct {
	mu      sync.Mutex
	epoch   string        // fixed for the life of the Memory
	ring    []Event       // grows up to maxLen, then is overwritten in place
	added   atomic.Uint64 // events ever stored; written under mu, read by Run without it
	last    Pos           // position of the newest event; zero when empty
	trimmed Pos           // W: position of the newest dropped event; zero when none
}

// NewMemory returns an empty in-memory broker with a new epoch in every
// partition.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Memory{
		cfg:   cfg,
		now:   time.Now,
		parts: make([]memPartition, cfg.Partitions),
		idem:  memIdemTable{ttl: cfg.IdempotencyTTL, max: cfg.MaxIdempotencyKeys},
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	for i := range m.parts {
		m.parts[i].epoch = NewEpoch()
	}
	return m, nil
}

// Partitions returns the configured number of partitions.
func (m *Memory) Partitions() int { return len(m.parts) }

// Publish stores msgs, copying their Data, and returns their IDs. It never
// blocks on Run or on a Handler. Errors: ErrClosed after Close, or the
// context's error when ctx is already done (then nothing is stored).
func (m *Memory) Publish(ctx context.Context, msgs []Message) ([]ID, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pubsub: publish: %w", err)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	ids := make([]ID, len(msgs))
	now := m.now()
	for i := range msgs {
		id, err := m.publishOne(&msgs[i], now)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	select {
	case m.wake <- struct{}{}:
	default: // a wake-up is already pending; Run will see these events too
	}
	return ids, nil
}

func (m *Memory) publishOne(msg *Message, now time.Time) (ID, error) {
	p := PartitionOf(msg.Topic, len(m.parts))
	pt := &m.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if m.closed.Load() {
		return ID{}, ErrClosed
	}
	// The partition lock makes lookup and insert of a key atomic: every
	// publish of (topic, key) takes this same lock, because the topic fixes
	// the partition.
	key := memIdemKey{topic: msg.Topic, key: msg.IdempotencyKey}
	if key.key != "" {
		if id, ok := m.idem.get(key, now); ok {
			return id, nil
		}
	}
	id := ID{Partition: p, Epoch: pt.epoch, Pos: pt.nextPosLocked(now)}
	pt.appendLocked(Event{
		ID:    id,
		Topic: msg.Topic,
		Type:  msg.Type,
		Data:  bytes.Clone(msg.Data), // the caller may reuse its buffer
		Time:  now.UnixNano(),
	}, m.cfg.MaxLen)
	if key.key != "" {
		m.idem.put(key, id, now)
	}
	return id, nil
}

// nextPosLocked imitates a Redis auto ID: (now in ms, 0), or, when the clock
// has not moved past the last position's ms (same ms, or a clock that went
// back), the last ms with the next sequence number.
func (pt *memPartition) nextPosLocked(now time.Time) Pos {
	next := Pos{Ms: uint64(max(now.UnixMilli(), 0))}
	if !pt.last.Less(next) {
		next = pt.last.Next()
	}
	return next
}

func (pt *memPartition) appendLocked(ev Event, maxLen int) {
	n := pt.added.Load()
	if len(pt.ring) < maxLen {
		if len(pt.ring) == cap(pt.ring) {
			// Grow by doubling, but never past maxLen: the bound is exact.
			grown := make([]Event, len(pt.ring), min(max(2*cap(pt.ring), 16), maxLen))
			copy(grown, pt.ring)
			pt.ring = grown
		}
		pt.ring = append(pt.ring, ev)
	} else {
		i := n % uint64(maxLen)
		pt.trimmed = pt.ring[i].ID.Pos
		pt.ring[i] = ev
	}
	pt.last = ev.ID.Pos
	pt.added.Store(n + 1)
}

// heldLocked returns the number of the oldest event still held and the
// number after the newest.
func (pt *memPartition) heldLocked() (first, end uint64) {
	end = pt.added.Load()
	return end - uint64(len(pt.ring)), end
}

func (pt *memPartition) atLocked(n uint64) *Event {
	return &pt.ring[n%uint64(cap(pt.ring))]
}

// Run calls h.Start for every partition with its head at the time Run starts
// and reason "", then delivers every later event, per partition in order,
// in batches of whatever is available (at most 1024 events per Deliver),
// until ctx is done (it returns nil) or the broker is closed (ErrClosed). If
// h is so slow that retention drops events Run had not delivered yet, Run
// calls h.Start(ID{p, epoch, W}, ReasonTrimmed) and goes on with the oldest
// event held. Events passed to Deliver share storage with the broker: the
// slice is reused after the call and Data must not be modified. Only one Run
// may be active at a time.
func (m *Memory) Run(ctx context.Context, h Handler) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if !m.running.CompareAndSwap(false, true) {
		return errMemoryRunning
	}
	defer m.running.Store(false)
	if ctx.Err() != nil {
		return nil
	}

	// next[p] is the number of the next event to deliver. It is read
	// together with the head, under the partition lock, so that Start's
	// position and the first delivered event leave no gap and no overlap.
	next := make([]uint64, len(m.parts))
	starts := make([]ID, len(m.parts))
	for p := range m.parts {
		pt := &m.parts[p]
		pt.mu.Lock()
		next[p] = pt.added.Load()
		starts[p] = ID{Partition: p, Epoch: pt.epoch, Pos: pt.last}
		pt.mu.Unlock()
	}
	for _, id := range starts {
		h.Start(id, "")
	}

	var batch []Event // reused for every Deliver
	for {
		pending := false
		for p := range m.parts {
			if m.parts[p].added.Load() == next[p] {
				continue
			}
			var (
				more bool
				err  error
			)
			batch, more, err = m.deliver(p, &next[p], batch, h)
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			pending = pending || more
		}
		if pending {
			continue // batches left over: go round again before sleeping
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.done:
			return ErrClosed
		case <-m.wake:
		}
	}
}

// deliver hands partition p's next batch after *next to h and advances
// *next. It reports whether more events are waiting.
func (m *Memory) deliver(p int, next *uint64, batch []Event, h Handler) ([]Event, bool, error) {
	pt := &m.parts[p]
	pt.mu.Lock()
	if m.closed.Load() {
		pt.mu.Unlock()
		return batch, false, ErrClosed
	}
	first, end := pt.heldLocked()
	var gone ID
	if *next < first {
		// Retention overtook the handler: events between *next and first
		// are gone. W is exactly the position of event first-1.
		gone = ID{Partition: p, Epoch: pt.epoch, Pos: pt.trimmed}
		*next = first
	}
	stop := min(end, *next+memRunBatch)
	batch = batch[:0]
	for n := *next; n < stop; n++ {
		batch = append(batch, *pt.atLocked(n))
	}
	pt.mu.Unlock()

	// Outside the lock: a slow handler must not block publishers. The
	// copied events stay valid because nobody mutates an event's Data.
	if gone.Epoch != "" {
		h.Start(gone, ReasonTrimmed)
	}
	h.Deliver(p, batch)
	clear(batch) // let dropped events' Data be collected
	*next = stop
	return batch, stop < end, nil
}

// Range implements Broker.Range. Returned events are the caller's: their
// Data is copied (into one allocation per call). The scanned position is
// q.Until whenever nothing at or before q.Until was left unscanned, even if
// exactly q.Limit entries were scanned.
func (m *Memory) Range(ctx context.Context, q RangeQuery) ([]Event, Pos, error) {
	if m.closed.Load() {
		return nil, Pos{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, Pos{}, fmt.Errorf("pubsub: range: %w", err)
	}
	if err := m.checkPartition(q.Partition); err != nil {
		return nil, Pos{}, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = memDefaultRangeLimit
	}
	match := memTopicFilter(q.Topics)

	pt := &m.parts[q.Partition]
	pt.mu.Lock()
	if m.closed.Load() {
		pt.mu.Unlock()
		return nil, Pos{}, ErrClosed
	}
	switch {
	case q.Epoch != pt.epoch:
		pt.mu.Unlock()
		return nil, Pos{}, &HistoryGoneError{Partition: q.Partition, Reason: ReasonEpochChanged}
	case pt.last.Less(q.After):
		pt.mu.Unlock()
		return nil, Pos{}, &HistoryGoneError{Partition: q.Partition, Reason: ReasonAhead}
	case q.After.Less(pt.trimmed):
		pt.mu.Unlock()
		return nil, Pos{}, &HistoryGoneError{Partition: q.Partition, Reason: ReasonTrimmed}
	}
	first, end := pt.heldLocked()
	// Positions increase with event numbers: binary search for the first
	// event after q.After.
	n := first + uint64(sort.Search(int(end-first), func(i int) bool {
		return q.After.Less(pt.atLocked(first + uint64(i)).ID.Pos)
	}))
	if !q.After.IsZero() && q.After != pt.trimmed && (n == first || pt.atLocked(n-1).ID.Pos != q.After) {
		// Not a position this partition held: as the Redis broker says
		// of a position a failover rolled back.
		pt.mu.Unlock()
		return nil, Pos{}, &HistoryGoneError{Partition: q.Partition, Reason: ReasonRolledBack}
	}
	var (
		evs     []Event
		size    int
		scanned int
		lastPos = q.Until
	)
	for ; n < end && scanned < limit; n++ {
		ev := pt.atLocked(n)
		if q.Until.Less(ev.ID.Pos) {
			break
		}
		scanned++
		lastPos = ev.ID.Pos
		if match(ev.Topic) {
			evs = append(evs, *ev)
			size += len(ev.Data)
		}
	}
	if n >= end || q.Until.Less(pt.atLocked(n).ID.Pos) {
		lastPos = q.Until // nothing left at or before Until: complete
	}
	pt.mu.Unlock()

	// Data in the ring is immutable, so the copy can happen unlocked.
	buf := make([]byte, 0, size)
	for i := range evs {
		d := evs[i].Data
		if d == nil {
			continue
		}
		start := len(buf)
		buf = append(buf, d...)
		evs[i].Data = buf[start:len(buf):len(buf)]
	}
	return evs, lastPos, nil
}

// memTopicFilter returns a predicate for RangeQuery.Topics; no topics (nil or
// empty) match every topic.
func memTopicFilter(topics []string) func(string) bool {
	switch {
	case len(topics) == 0:
		return func(string) bool { return true }
	case len(topics) <= 8:
		return func(t string) bool {
			for _, x := range topics {
				if x == t {
					return true
				}
			}
			return false
		}
	default:
		set := make(map[string]struct{}, len(topics))
		for _, x := range topics {
			set[x] = struct{}{}
		}
		return func(t string) bool { _, ok := set[t]; return ok }
	}
}

// Head implements Broker.Head.
func (m *Memory) Head(ctx context.Context, p int) (ID, error) {
	if m.closed.Load() {
		return ID{}, ErrClosed
	}
	if err := m.checkPartition(p); err != nil {
		return ID{}, err
	}
	pt := &m.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return ID{Partition: p, Epoch: pt.epoch, Pos: pt.last}, nil
}

// Retained implements Broker.Retained.
func (m *Memory) Retained(ctx context.Context, p int) (Retention, error) {
	if m.closed.Load() {
		return Retention{}, ErrClosed
	}
	if err := m.checkPartition(p); err != nil {
		return Retention{}, err
	}
	pt := &m.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	r := Retention{Partition: p, Epoch: pt.epoch}
	if first, end := pt.heldLocked(); end > first {
		r.First, r.Last, r.Len = pt.atLocked(first).ID.Pos, pt.last, int64(end-first)
	}
	return r, nil
}

func (m *Memory) checkPartition(p int) error {
	if p < 0 || p >= len(m.parts) {
		return fmt.Errorf("pubsub: partition %d not in [0, %d)", p, len(m.parts))
	}
	return nil
}

// Ping returns nil, or ErrClosed after Close.
func (m *Memory) Ping(ctx context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Close drops all events and keys and ends an active Run, which returns
// ErrClosed. Later calls of any method return ErrClosed; Close itself may be
// called again and returns nil.
func (m *Memory) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(m.done)
	for p := range m.parts {
		pt := &m.parts[p]
		pt.mu.Lock()
		pt.ring = nil
		pt.mu.Unlock()
	}
	m.idem.reset()
	return nil
}

// memIdemKey is what a publish is deduplicated on.
type memIdemKey struct{ topic, key string }

type memIdemEntry struct {
	id      ID
	expires time.Time
	seq     uint64 // matches the memIdemRef that will forget this entry
}

type memIdemRef struct {
	key     memIdemKey
	expires time.Time
	seq     uint64
}

// memIdemTable remembers the first ID of every (topic, key) for ttl, at most
// max of them. Every entry gets the same ttl, so insertion order is expiry
// order and one FIFO serves both the TTL and the bound: expired and
// excess entries are dropped from its front. A key stored again after it
// expired leaves a stale ref behind; seq tells it apart.
type memIdemTable struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[memIdemKey]memIdemEntry
	fifo    []memIdemRef // live refs are fifo[head:]
	head    int
	seq     uint64
}

func (t *memIdemTable) get(k memIdemKey, now time.Time) (ID, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	e, ok := t.entries[k]
	if !ok || !now.Before(e.expires) {
		return ID{}, false
	}
	return e.id, true
}

func (t *memIdemTable) put(k memIdemKey, id ID, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	for len(t.fifo)-t.head >= t.max {
		t.popLocked()
	}
	if t.entries == nil {
		t.entries = make(map[memIdemKey]memIdemEntry)
	}
	t.seq++
	exp := now.Add(t.ttl)
	t.entries[k] = memIdemEntry{id: id, expires: exp, seq: t.seq}
	t.fifo = append(t.fifo, memIdemRef{key: k, expires: exp, seq: t.seq})
}

func (t *memIdemTable) expireLocked(now time.Time) {
	for t.head < len(t.fifo) && !now.Before(t.fifo[t.head].expires) {
		t.popLocked()
	}
}

func (t *memIdemTable) popLocked() {
	r := t.fifo[t.head]
	t.fifo[t.head] = memIdemRef{}
	t.head++
	if e, ok := t.entries[r.key]; ok && e.seq == r.seq {
		delete(t.entries, r.key)
	}
	switch {
	case t.head == len(t.fifo):
		t.fifo, t.head = t.fifo[:0], 0
	case t.head >= 1024 && 2*t.head >= len(t.fifo):
		// Compact, so the backing array stays below about 2×max refs.
		n := copy(t.fifo, t.fifo[t.head:])
		clear(t.fifo[n:])
		t.fifo, t.head = t.fifo[:n], 0
	}
}

func (t *memIdemTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

func (t *memIdemTable) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries, t.fifo, t.head = nil, nil, 0
}

// SharedKey implements Broker: the key lives as long as the Memory.
func (m *Memory) SharedKey(ctx context.Context, name string) ([]byte, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	m.keysMu.Lock()
	defer m.keysMu.Unlock()
	k, ok := m.keys[name]
	if !ok {
		if m.keys == nil {
			m.keys = make(map[string][]byte)
		}
		k = newSharedKey()
		m.keys[name] = k
	}
	return append([]byte(nil), k...), nil
}
