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

// Run implements Broker. It starts Readers loops, each owning a fixed set of
// partitions, and returns once all have stopped. A loop reads with a
// MULTI/EXEC of MGET (epochs and trim positions) and a non-blocking XREAD,
// so every batch is checked against the partition's epoch and trim position
// of the same instant: a Redis that restarted empty or trimmed what this node
// had not read yet is always noticed (and reported through Handler.Start),
// never skipped. When nothing is pending a loop parks in XREAD BLOCK, used
// only as a wake-up; the next snapshot read takes the data.
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
	errs := make([]error, r.cfg.Readers)
	for i := range r.cfg.Readers {
		var parts []int
		for p := i; p < r.cfg.Partitions; p += r.cfg.Readers {
			parts = append(parts, p)
		}
		wg.Go(func() { errs[i] = r.readLoop(ctx, h, parts) })
	}
	wg.Go(func() { r.maintainLoop(ctx) })
	wg.Wait()
	return errors.Join(errs...)
}

// waitFirstContact checks the partition count once Redis answers.
func (r *Redis) waitFirstContact(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := r.checkPartitions(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrUnavailable) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		r.errs.add(opRead, err)
		r.healthy.Store(false)
		r.log.Warn("redis unreachable", "err", err)
		if !sleepCtx(ctx, jitter(backoff)) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// partReader is the state of one partition inside a read loop.
type partReader struct {
	p       int
	key     string
	meta    string
	started bool
	epoch   string
	pos     Pos
	evs     []Event // reused between batches
}

func (r *Redis) readLoop(ctx context.Context, h Handler, parts []int) error {
	prs := make([]*partReader, len(parts))
	for i, p := range parts {
		prs[i] = &partReader{p: p, key: r.streamKey(p), meta: r.metaKey(p)}
	}
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		again, err := r.readOnce(ctx, h, prs)
		if err == nil && !again {
			err = r.waitForData(ctx, prs)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var fatal errFatal
			if errors.As(err, &fatal) {
				return fatal.error
			}
			r.errs.add(opRead, err)
			if r.healthy.Swap(false) {
				r.log.Warn("redis read failed; retrying", "err", err)
			}
			if !sleepCtx(ctx, jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if !r.healthy.Swap(true) {
			r.log.Info("redis reachable")
		}
		backoff = 50 * time.Millisecond
	}
	return nil
}

// readOnce takes one consistent snapshot of every partition of the loop and
// hands what it read to h. It reports whether another read should follow at
// once (a partition had more than ReadCount entries, or a partition was
// (re)started and must be read from its new position).
func (r *Redis) readOnce(ctx context.Context, h Handler, prs []*partReader) (again bool, err error) {
	// Partitions not started yet need their head (last entry) at the same
	// instant as their epoch; started ones need their new entries.
	metas := make([]string, len(prs))
	for i, pr := range prs {
		metas[i] = pr.meta
	}
	var streams []string
	var reading []*partReader
	for _, pr := range prs {
		if pr.started {
			streams = append(streams, pr.key)
			reading = append(reading, pr)
		}
	}
	for _, pr := range reading {
		streams = append(streams, pr.pos.String())
	}
	var mget *redis.SliceCmd
	var xread *redis.XStreamSliceCmd
	heads := make(map[int]*redis.XMessageSliceCmd)
	_, err = r.read.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		mget = pipe.MGet(ctx, metas...)
		for _, pr := range prs {
			if !pr.started {
				heads[pr.p] = pipe.XRevRangeN(ctx, pr.key, "+", "-", 1)
			}
		}
		if len(reading) > 0 {
			xread = pipe.XRead(ctx, &redis.XReadArgs{Streams: streams, Count: int64(r.cfg.ReadCount), Block: -1})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, unavailable("read snapshot", err)
	}
	got := make(map[string][]redis.XMessage)
	if xread != nil {
		res, err := xread.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return false, unavailable("xread", err)
		}
		for _, s := range res {
			got[s.Stream] = s.Messages
		}
	}
	vals := mget.Val()
	for i, pr := range prs {
		raw, _ := vals[i].(string)
		if raw == "" {
			// No epoch: a fresh or wiped Redis. Create one; the next
			// snapshot sees it and (re)starts the partition.
			if err := r.ensureEpoch(ctx, pr.p); err != nil {
				return false, err
			}
			again = true
			continue
		}
		epoch, trimmed, err := parseMeta(raw)
		if err != nil {
			return false, errFatal{err}
		}
		if !pr.started {
			msgs, err := heads[pr.p].Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return false, unavailable("head", err)
			}
			var head Pos
			if len(msgs) > 0 {
				if head, err = ParsePos(msgs[0].ID); err != nil {
					return false, errFatal{fmt.Errorf("pubsub: stream %s has id %q: %w", pr.key, msgs[0].ID, err)}
				}
			}
			pr.started, pr.epoch, pr.pos = true, epoch, head
			h.Start(ID{Partition: pr.p, Epoch: epoch, Pos: head}, "")
			again = true
			continue
		}
		if epoch != pr.epoch {
			// History of the old epoch is gone. The new stream is read from
			// its beginning, so nothing published in the new epoch is missed;
			// what this snapshot read belongs to the old cursor: drop it.
			r.log.Warn("partition epoch changed", "partition", pr.p, "old", pr.epoch, "new", epoch)
			pr.epoch, pr.pos = epoch, Pos{}
			h.Start(ID{Partition: pr.p, Epoch: epoch}, ReasonEpochChanged)
			again = true
			continue
		}
		if pr.pos.Less(trimmed) {
			// Retention removed entries this node never read (it was cut
			// off or frozen longer than the history lasts).
			r.log.Warn("partition trimmed past the reader", "partition", pr.p, "pos", pr.pos.String(), "trimmed", trimmed.String())
			pr.pos = trimmed
			h.Start(ID{Partition: pr.p, Epoch: epoch, Pos: trimmed}, ReasonTrimmed)
		}
		msgs := got[pr.key]
		if len(msgs) == 0 {
			continue
		}
		if len(msgs) >= r.cfg.ReadCount {
			again = true
		}
		pr.evs = pr.evs[:0]
		for _, m := range msgs {
			ev, err := r.decodeEntry(pr.p, epoch, m)
			if err != nil {
				return false, errFatal{err}
			}
			pr.pos = ev.ID.Pos
			if ev.Topic == "" {
				r.log.Warn("skipping stream entry without topic", "partition", pr.p, "id", m.ID)
				continue
			}
			pr.evs = append(pr.evs, ev)
		}
		if len(pr.evs) > 0 {
			h.Deliver(pr.p, pr.evs)
		}
	}
	return again, nil
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

// waitForData parks in XREAD BLOCK until any partition of the loop has an
// entry after its position, or Block elapses. Its result is discarded.
func (r *Redis) waitForData(ctx context.Context, prs []*partReader) error {
	streams := make([]string, 0, 2*len(prs))
	for _, pr := range prs {
		streams = append(streams, pr.key)
	}
	for _, pr := range prs {
		streams = append(streams, pr.pos.String())
	}
	err := r.read.XRead(ctx, &redis.XReadArgs{Streams: streams, Count: 1, Block: r.cfg.Block}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("xread block", err)
	}
	return nil
}

// maintainLoop trims partitions every few seconds, for streams grown by
// publishers that do not run the publish script.
func (r *Redis) maintainLoop(ctx context.Context) {
	for sleepCtx(ctx, jitter(20*time.Second)) {
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
