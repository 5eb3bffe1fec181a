package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Range implements Broker with one MULTI/EXEC: the meta key (epoch, trim
// position), the last entry (to refuse cursors from the future) and
// XRANGE (After Until COUNT Limit, all from the same instant.
func (r *Redis) Range(ctx context.Context, q RangeQuery) (_ []Event, _ Pos, err error) {
	defer func() { r.errs.add(opRange, err) }()
	if q.Partition < 0 || q.Partition >= r.cfg.Partitions {
		return nil, Pos{}, fmt.Errorf("pubsub: partition %d out of range", q.Partition)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	empty := !q.After.Less(q.Until) // still validated: epoch, trim, ahead
	key := r.streamKey(q.Partition)
	var meta *redis.StringCmd
	var last, entries *redis.XMessageSliceCmd
	_, err = r.cmd.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		meta = pipe.Get(ctx, r.metaKey(q.Partition))
		last = pipe.XRevRangeN(ctx, key, "+", "-", 1)
		if !empty {
			entries = pipe.XRangeN(ctx, key, "("+q.After.String(), q.Until.String(), int64(limit))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, Pos{}, unavailable("range", err)
	}
	gone := func(reason string) error { return &HistoryGoneError{Partition: q.Partition, Reason: reason} }
	raw, err := meta.Result()
	if errors.Is(err, redis.Nil) {
		return nil, Pos{}, gone(ReasonEpochChanged)
	}
	epoch, trimmed, err := parseMeta(raw)
	if err != nil {
		return nil, Pos{}, err
	}
	if epoch != q.Epoch {
		return nil, Pos{}, gone(ReasonEpochChanged)
	}
	if q.After.Less(trimmed) {
		return nil, Pos{}, gone(ReasonTrimmed)
	}
	var head Pos
	if l := last.Val(); len(l) > 0 {
		if head, err = ParsePos(l[0].ID); err != nil {
			return nil, Pos{}, fmt.Errorf("pubsub: stream %s has id %q: %w", key, l[0].ID, err)
		}
	}
	if head.Less(q.After) {
		return nil, Pos{}, gone(ReasonAhead)
	}
	if empty {
		return nil, q.Until, nil
	}
	msgs, err := entries.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, Pos{}, unavailable("xrange", err)
	}
	scanned := q.Until
	if len(msgs) == limit {
		if scanned, err = ParsePos(msgs[len(msgs)-1].ID); err != nil {
			return nil, Pos{}, fmt.Errorf("pubsub: stream %s has id %q: %w", key, msgs[len(msgs)-1].ID, err)
		}
	}
	var out []Event
	for _, m := range msgs {
		ev, err := r.decodeEntry(q.Partition, epoch, m)
		if err != nil {
			return nil, Pos{}, err
		}
		if ev.Topic == "" || (q.Topics != nil && !slices.Contains(q.Topics, ev.Topic)) {
			continue
		}
		out = append(out, ev)
	}
	return out, scanned, nil
}

// Head implements Broker. A partition without an epoch gets one.
func (r *Redis) Head(ctx context.Context, p int) (_ ID, err error) {
	defer func() { r.errs.add(opHead, err) }()
	if p < 0 || p >= r.cfg.Partitions {
		return ID{}, fmt.Errorf("pubsub: partition %d out of range", p)
	}
	for attempt := 0; ; attempt++ {
		var meta *redis.StringCmd
		var last *redis.XMessageSliceCmd
		_, err := r.cmd.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			meta = pipe.Get(ctx, r.metaKey(p))
			last = pipe.XRevRangeN(ctx, r.streamKey(p), "+", "-", 1)
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return ID{}, unavailable("head", err)
		}
		raw, err := meta.Result()
		if errors.Is(err, redis.Nil) {
			if attempt > 0 {
				return ID{}, fmt.Errorf("%w: partition %d has no epoch", ErrUnavailable, p)
			}
			if err := r.ensureEpoch(ctx, p); err != nil {
				return ID{}, err
			}
			continue
		}
		epoch, _, err := parseMeta(raw)
		if err != nil {
			return ID{}, err
		}
		id := ID{Partition: p, Epoch: epoch}
		if l := last.Val(); len(l) > 0 {
			if id.Pos, err = ParsePos(l[0].ID); err != nil {
				return ID{}, fmt.Errorf("pubsub: partition %d has id %q: %w", p, l[0].ID, err)
			}
		}
		return id, nil
	}
}

// Retained implements Broker with one MULTI/EXEC: the meta key (epoch), the
// first and last entries and XLEN. A partition without an epoch gets one.
func (r *Redis) Retained(ctx context.Context, p int) (_ Retention, err error) {
	defer func() { r.errs.add(opRetained, err) }()
	if p < 0 || p >= r.cfg.Partitions {
		return Retention{}, fmt.Errorf("pubsub: partition %d out of range", p)
	}
	key := r.streamKey(p)
	for attempt := 0; ; attempt++ {
		var meta *redis.StringCmd
		var first, last *redis.XMessageSliceCmd
		var n *redis.IntCmd
		_, err := r.cmd.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			meta = pipe.Get(ctx, r.metaKey(p))
			first = pipe.XRangeN(ctx, key, "-", "+", 1)
			last = pipe.XRevRangeN(ctx, key, "+", "-", 1)
			n = pipe.XLen(ctx, key)
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return Retention{}, unavailable("retained", err)
		}
		raw, err := meta.Result()
		if errors.Is(err, redis.Nil) {
			if attempt > 0 {
				return Retention{}, fmt.Errorf("%w: partition %d has no epoch", ErrUnavailable, p)
			}
			if err := r.ensureEpoch(ctx, p); err != nil {
				return Retention{}, err
			}
			continue
		}
		epoch, _, err := parseMeta(raw)
		if err != nil {
			return Retention{}, err
		}
		ret := Retention{Partition: p, Epoch: epoch, Len: n.Val()}
		for _, x := range []struct {
			cmd *redis.XMessageSliceCmd
			dst *Pos
		}{{first, &ret.First}, {last, &ret.Last}} {
			if l := x.cmd.Val(); len(l) > 0 {
				if *x.dst, err = ParsePos(l[0].ID); err != nil {
					return Retention{}, fmt.Errorf("pubsub: partition %d has id %q: %w", p, l[0].ID, err)
				}
			}
		}
		return ret, nil
	}
}
