package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Run implements Broker. It starts one reader loop per partition and a
// trimming loop, and returns once all have stopped.
//
// A reader loop alternates two commands on its partition's keys only (one
// hash tag, so one Redis Cluster slot, whatever the topology): a snapshot
// (viewScript: the meta key and the entries from the loop's position on,
// at one instant) and, when nothing is pending, XREAD BLOCK on the stream,
// used only as a wake-up. An event therefore costs each node one wake-up
// and one snapshot of its own partition, independent of how many topics
// and partitions there are; loops of partitions held by different
// Redis Cluster shards run on different servers.
//
// Every snapshot checks the partition against what this node knows: the
// epoch (a Redis restarted empty, a meta key lost), the trim position
// (retention passed a reader that fell behind) and that the loop's
// position and the newest position this node published are still in the
// stream (a failover that promoted a replica lacking them, or an evicted
// stream: history rolled back). Each is reported through Handler.Start,
// never skipped; a rollback first moves the partition to a new epoch
// (bumpScript), so every node, whatever it cached, answers old cursors
// with a reset.
func (r *Redis) Run(ctx context.Context, h Handler) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("pubsub: Run called twice")
	}
	// go-redis cannot interrupt a blocked XREAD by cancelling its context
	// (SSE-NOTES §3.2); closing the reader client can.
	stop := context.AfterFunc(ctx, func() { _ = r.read.Close() })
	defer func() {
		if stop() {
			_ = r.read.Close()
		}
	}()

	if err := r.waitFirstContact(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, r.cfg.Partitions)
	for p := range r.cfg.Partitions {
		wg.Go(func() { errs[p] = r.partLoop(ctx, h, p) })
	}
	wg.Go(func() { r.maintainLoop(ctx) })
	wg.Wait()
	return errors.Join(errs...)
}

// waitFirstContact checks the partition count once Redis answers, and
// looks at the settings that decide whether history can be lost.
func (r *Redis) waitFirstContact(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := r.checkPartitions(ctx)
		if err == nil {
			r.inspect(ctx)
			return nil
		}
		if !errors.Is(err, ErrUnavailable) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		r.errs.add(opRead, err)
		r.log.Warn("redis unreachable", "err", err)
		if !sleepCtx(ctx, jitter(backoff)) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// partReader is the state of one partition's reader loop.
type partReader struct {
	p       int
	keys    []string // stream, meta
	started bool
	epoch   string
	pos     Pos    // position of the last entry handed on (or the epoch's base)
	posTS   string // its ts field, when known: tells a new entry with a reused id apart
	bumped  string // epoch this loop created after finding a rollback
	// lossPending is set when a snapshot found history missing and the
	// Start reporting it is still to come (from the next snapshot): the
	// handler must not be resumed before.
	lossPending bool
	evs         []Event
	// hist holds the last positions handed on with their ts, oldest
	// first: after a rollback, where the old and new history part.
	hist []seenPos
}

type seenPos struct {
	pos Pos
	ts  string
}

// histLen is how many positions a reader remembers: a rollback of more
// entries than this starts the new epoch at the newest entry older than all
// of them.
const histLen = 256

// remember records a position handed on.
func (pr *partReader) remember(pos Pos, ts string) {
	if len(pr.hist) == histLen {
		copy(pr.hist, pr.hist[1:])
		pr.hist = pr.hist[:histLen-1]
	}
	pr.hist = append(pr.hist, seenPos{pos, ts})
}

func (r *Redis) partLoop(ctx context.Context, h Handler, p int) error {
	pr := &partReader{p: p, keys: []string{r.streamKey(p), r.metaKey(p)}}
	sus, _ := h.(Suspender)
	suspended, failing := false, false
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		again, err := r.readPart(ctx, h, pr)
		// A read that found history missing while connected: until the
		// Start that reports it, the handler's cache may hold what is gone.
		holdLoss := func() {
			if err == nil && sus != nil && !suspended && pr.lossPending {
				sus.Suspend(p)
				suspended = true
			}
		}
		holdLoss()
		if err == nil && !pr.lossPending {
			if suspended {
				sus.Resume(p)
				suspended = false
			}
			for !again && err == nil && ctx.Err() == nil {
				again, err = r.waitPart(ctx, h, pr)
			}
			holdLoss()
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var fatal errFatal
			if errors.As(err, &fatal) {
				return fatal.error
			}
			if sus != nil && !suspended && pr.started {
				sus.Suspend(p)
				suspended = true
			}
			r.errs.add(opRead, err)
			if rc, ok := r.read.(*redis.ClusterClient); ok {
				// go-redis reloads the slot map by itself only on MOVED,
				// ASK or READONLY (or every few seconds in the background):
				// after a shard's master died, a reader would keep dialing
				// it until then.
				rc.ReloadState(ctx)
			}
			if !failing {
				failing = true
				if r.failing.Add(1) == 1 {
					r.log.Warn("redis read failed; retrying", "partition", p, "err", err)
				}
			}
			if !sleepCtx(ctx, jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if failing {
			failing = false
			if r.failing.Add(-1) == 0 {
				r.log.Info("redis reachable")
			}
		}
		backoff = 50 * time.Millisecond
	}
	return nil
}

// view is one viewScript reply.
type view struct {
	meta    string // "" when the key is missing
	last    Pos
	first   Pos
	n       int64
	entries []redis.XMessage
}

// readView runs viewScript on c. start "" reads no entries.
func (r *Redis) readView(ctx context.Context, c redis.Scripter, p int, start, end string, count int, full bool) (view, error) {
	f := "0"
	if full {
		f = "1"
	}
	res, err := viewScript.Run(ctx, c, []string{r.streamKey(p), r.metaKey(p)}, start, end, count, f).Slice()
	if err != nil {
		return view{}, err
	}
	if len(res) != 5 {
		return view{}, errFatal{fmt.Errorf("pubsub: partition %d: view reply has %d elements", p, len(res))}
	}
	var v view
	v.meta, _ = res[0].(string)
	for _, x := range []struct {
		raw any
		dst *Pos
	}{{res[1], &v.last}, {res[2], &v.first}} {
		if s, _ := x.raw.(string); s != "" {
			if *x.dst, err = ParsePos(s); err != nil {
				return view{}, errFatal{fmt.Errorf("pubsub: partition %d has id %q: %w", p, s, err)}
			}
		}
	}
	v.n, _ = res[3].(int64)
	list, _ := res[4].([]any)
	v.entries = make([]redis.XMessage, 0, len(list))
	for _, e := range list {
		m, err := decodeXMessage(e)
		if err != nil {
			return view{}, errFatal{fmt.Errorf("pubsub: partition %d: %w", p, err)}
		}
		v.entries = append(v.entries, m)
	}
	return v, nil
}

// readTx is the snapshot of a started partition: GET meta and XRANGE from
// start in one MULTI/EXEC, cheaper for Redis than viewScript. In a Redis
// Cluster slot migration the two keys may briefly live on different
// servers, so this read may see the meta key missing, or the stream
// without the loop's position; both only lead to scripts (epochScript,
// bumpScript) that declare both keys, which Redis refuses with TRYAGAIN
// while the keys are split, so a migration can delay but never restart a
// partition.
func (r *Redis) readTx(ctx context.Context, pr *partReader, start string) (view, error) {
	var meta *redis.StringCmd
	var xr *redis.XMessageSliceCmd
	_, err := r.read.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		meta = pipe.Get(ctx, pr.keys[1])
		xr = pipe.XRangeN(ctx, pr.keys[0], start, "+", int64(r.cfg.ReadCount+1))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return view{}, err
	}
	return view{meta: meta.Val(), entries: xr.Val()}, nil
}

// decodeXMessage decodes one XRANGE entry as a script returns it:
// {id, {field, value, ...}}.
func decodeXMessage(e any) (redis.XMessage, error) {
	pair, ok := e.([]any)
	if !ok || len(pair) != 2 {
		return redis.XMessage{}, fmt.Errorf("bad stream entry %v", e)
	}
	id, _ := pair[0].(string)
	kv, _ := pair[1].([]any)
	m := redis.XMessage{ID: id, Values: make(map[string]any, len(kv)/2)}
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		m.Values[k] = kv[i+1]
	}
	return m, nil
}

// readPart takes one snapshot of the partition and hands what it read to
// h. It reports whether another read should follow at once (more entries
// are pending, or the partition was (re)started).
func (r *Redis) readPart(ctx context.Context, h Handler, pr *partReader) (again bool, err error) {
	// What this node stored, read before the snapshot: it was in Redis
	// before the snapshot ran, so the snapshot must show it.
	ackEpoch, acked := r.parts[pr.p].lastAcked()
	start := ""
	if pr.started {
		start = pr.pos.String() // inclusive: the loop's own position must still be there
		if pr.pos.IsZero() {
			start = "-"
		}
	}
	var v view
	if pr.started {
		v, err = r.readTx(ctx, pr, start)
	} else {
		v, err = r.readView(ctx, r.read, pr.p, start, "+", r.cfg.ReadCount+1, false)
	}
	if err != nil {
		var fatal errFatal
		if errors.As(err, &fatal) {
			return false, err
		}
		return false, unavailable("read snapshot", err)
	}
	return r.process(ctx, h, pr, v, ackEpoch, acked)
}

// process checks one read of the partition (a snapshot, or what a wake-up
// brought: the same shape, entries from the loop's position on) against
// what the loop and this node know, and hands the new events to h. acked
// (of ackEpoch) was read before the read was sent.
func (r *Redis) process(ctx context.Context, h Handler, pr *partReader, v view, ackEpoch string, acked Pos) (again bool, err error) {
	if v.meta == "" {
		// No epoch: a fresh or wiped Redis, or an evicted meta key. Create
		// one; the next snapshot sees it and (re)starts the partition.
		if err := r.ensureEpoch(ctx, pr.p); err != nil {
			return false, err
		}
		return true, nil
	}
	epoch, trimmed, err := parseMeta(v.meta)
	if err != nil {
		return false, errFatal{err}
	}
	if !pr.started {
		pr.started, pr.epoch, pr.pos, pr.posTS, pr.hist = true, epoch, maxPos(v.last, trimmed), "", pr.hist[:0]
		h.Start(ID{Partition: pr.p, Epoch: epoch, Pos: pr.pos}, "")
		return true, nil
	}
	if epoch != pr.epoch {
		// History of the old epoch is gone. The new epoch starts at its
		// base (trimmed), so nothing published in it is missed; what this
		// snapshot read belongs to the old cursor: drop it.
		reason := ReasonEpochChanged
		if epoch == pr.bumped {
			reason = ReasonRolledBack
		}
		r.log.Warn("partition epoch changed", "partition", pr.p, "old", pr.epoch, "new", epoch, "reason", reason)
		pr.epoch, pr.pos, pr.posTS, pr.hist, pr.lossPending = epoch, trimmed, "", pr.hist[:0], false
		h.Start(ID{Partition: pr.p, Epoch: epoch, Pos: trimmed}, reason)
		return true, nil
	}
	msgs := v.entries
	switch {
	case pr.pos.Less(trimmed):
		// Retention removed entries this node never read (it was cut off
		// or frozen longer than the history lasts). The snapshot's entries
		// all lie after the trim position.
		r.log.Warn("partition trimmed past the reader", "partition", pr.p, "pos", pr.pos.String(), "trimmed", trimmed.String())
		pr.pos, pr.posTS = trimmed, ""
		h.Start(ID{Partition: pr.p, Epoch: epoch, Pos: trimmed}, ReasonTrimmed)
	case pr.pos.IsZero() || pr.pos == trimmed:
		// Nothing to check: the position is the epoch's start or the last
		// trimmed entry. An epoch may start at an entry still in the
		// stream (the last one of a rolled-back or meta-less history): it
		// belongs to the old epoch, and is not handed on again.
		if len(msgs) > 0 && !pr.pos.IsZero() && msgs[0].ID == pr.pos.String() {
			msgs = msgs[1:]
		}
	default:
		if len(msgs) == 0 || msgs[0].ID != pr.pos.String() || (pr.posTS != "" && tsOf(msgs[0]) != pr.posTS) {
			return r.rolledBack(ctx, pr, v.meta, pr.pos, pr.hist)
		}
		msgs = msgs[1:]
	}
	full := len(msgs) >= r.cfg.ReadCount
	if ackEpoch == epoch && pr.pos.Less(acked) && trimmed.Less(acked) {
		// This node stored acked after pos: it must be in this batch, or
		// after it when the batch is full.
		seen := false
		var lastID Pos
		for _, m := range msgs {
			if m.ID == acked.String() {
				seen = true
			}
		}
		if len(msgs) > 0 {
			lastID, _ = ParsePos(msgs[len(msgs)-1].ID)
		}
		if !seen && (!full || !lastID.Less(acked)) {
			// The loop's own position is still there: the new epoch
			// starts at it.
			return r.rolledBack(ctx, pr, v.meta, acked, []seenPos{{pr.pos, pr.posTS}})
		}
	}
	if len(msgs) == 0 {
		return false, nil
	}
	pr.evs = pr.evs[:0]
	for _, m := range msgs {
		ev, err := r.decodeEntry(pr.p, epoch, m)
		if err != nil {
			return false, errFatal{err}
		}
		pr.pos, pr.posTS = ev.ID.Pos, tsOf(m)
		pr.remember(pr.pos, pr.posTS)
		if ev.Topic == "" {
			r.log.Warn("skipping stream entry without topic", "partition", pr.p, "id", m.ID)
			continue
		}
		pr.evs = append(pr.evs, ev)
	}
	if len(pr.evs) > 0 {
		h.Deliver(pr.p, pr.evs)
	}
	return full, nil
}

// rolledBack handles a snapshot that lacks missing, a position this node
// saw in the stream or stored there: the history went back. It moves the
// partition to a new epoch that starts at the newest of known (oldest
// first) still in the stream, on the server publishes go to, unless that
// server still holds missing (this loop's connection points at a server
// that is no longer the primary: an error, retried).
func (r *Redis) rolledBack(ctx context.Context, pr *partReader, meta string, missing Pos, known []seenPos) (bool, error) {
	epoch := NewEpoch()
	args := []any{meta, epoch, missing.String()}
	for i := len(known) - 1; i >= 0; i-- {
		if k := known[i]; k.pos != missing && !k.pos.IsZero() {
			args = append(args, k.pos.String(), k.ts)
		}
	}
	res, err := bumpScript.Run(ctx, r.cmd, pr.keys, args...).Slice()
	if err != nil {
		return false, unavailable("new epoch after rollback", err)
	}
	code, _ := res[0].(int64)
	switch code {
	case 1:
		r.log.Error("partition history rolled back: events this node read or stored are gone from Redis (failover to a replica that lacked them, or eviction); clients of the partition get a reset",
			"partition", pr.p, "missing", missing.String(), "old_epoch", pr.epoch, "new_epoch", epoch)
		pr.bumped = epoch
		pr.lossPending = true
	case 2:
		pr.lossPending = true // the meta changed under us: the next snapshot sees why
	case 3:
		return false, fmt.Errorf("%w: partition %d: %s is missing on the read connection's server but present on the primary", ErrUnavailable, pr.p, missing)
	}
	return true, nil
}

// tsOf returns an entry's ts field ("" when it has none).
func tsOf(m redis.XMessage) string {
	s, _ := m.Values["ts"].(string)
	return s
}

func maxPos(a, b Pos) Pos {
	if a.Less(b) {
		return b
	}
	return a
}

// decodeEntry turns a stream entry into an Event. Missing fields decode as
// empty (plain XADDs from other publishers may omit event or ts).
func (r *Redis) decodeEntry(p int, epoch string, m redis.XMessage) (Event, error) {
	pos, err := ParsePos(m.ID)
	if err != nil {
		return Event{}, fmt.Errorf("pubsub: partition %d entry id %q: %w", p, m.ID, err)
	}
	ev := Event{ID: ID{Partition: p, Epoch: epoch, Pos: pos}}
	ev.Topic, _ = m.Values["topic"].(string)
	ev.Type, _ = m.Values["event"].(string)
	if d, ok := m.Values["data"].(string); ok {
		ev.Data = []byte(d)
	}
	if ts, ok := m.Values["ts"].(string); ok {
		ev.Time, _ = strconv.ParseInt(ts, 10, 64)
	}
	return ev, nil
}

// waitPart parks in XREAD BLOCK until the partition has entries after the
// loop's position, or the block time elapses, and hands what arrived to
// process. The XREAD goes in one pipeline with GET meta and XRANGE of the
// loop's own position: Redis runs those right after the XREAD is served,
// so the entries come with the same checks as a snapshot's (an epoch or
// trim position changed before they were read shows in the meta; a
// position gone shows in the XRANGE), at the cost of one round trip and
// three plain commands per wake-up. It reports whether a snapshot should
// follow at once.
func (r *Redis) waitPart(ctx context.Context, h Handler, pr *partReader) (again bool, err error) {
	ackEpoch, acked := r.parts[pr.p].lastAcked()
	// Below the read timeout: a pipeline's reply must come within it.
	block := min(r.cfg.Block, r.cfg.Timeout/2)
	var xr *redis.XStreamSliceCmd
	var meta *redis.StringCmd
	var self *redis.XMessageSliceCmd
	_, err = r.read.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		xr = pipe.XRead(ctx, &redis.XReadArgs{Streams: []string{pr.keys[0], pr.pos.String()}, Count: int64(r.cfg.ReadCount), Block: block})
		meta = pipe.Get(ctx, pr.keys[1])
		if !pr.pos.IsZero() {
			self = pipe.XRangeN(ctx, pr.keys[0], pr.pos.String(), pr.pos.String(), 1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, unavailable("xread block", err)
	}
	if errors.Is(xr.Err(), redis.Nil) || len(xr.Val()) == 0 {
		return true, nil // nothing new: a snapshot checks the partition again
	}
	if meta.Err() != nil && !errors.Is(meta.Err(), redis.Nil) {
		return false, unavailable("xread block", meta.Err())
	}
	v := view{meta: meta.Val()}
	if self != nil {
		v.entries = append(v.entries, self.Val()...)
	}
	v.entries = append(v.entries, xr.Val()[0].Messages...)
	again, err = r.process(ctx, h, pr, v, ackEpoch, acked)
	return again || len(xr.Val()[0].Messages) >= r.cfg.ReadCount, err
}

// maintainLoop trims partitions every few seconds, for streams grown by
// publishers that do not run the publish script.
func (r *Redis) maintainLoop(ctx context.Context) {
	for sleepCtx(ctx, jitter(20*time.Second)) {
		r.inspect(ctx)
		for p := range r.cfg.Partitions {
			err := maintainScript.Run(ctx, r.cmd, []string{r.streamKey(p), r.metaKey(p)}, NewEpoch(), r.cfg.MaxLen, r.chunk).Err()
			if err != nil && ctx.Err() == nil {
				r.errs.add(opTrim, err)
				r.log.Debug("trim failed", "partition", p, "err", err)
				break
			}
		}
	}
}
