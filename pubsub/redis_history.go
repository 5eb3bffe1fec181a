package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Range implements Broker with one viewScript run: the meta key (epoch,
// trim position), the last entry (to refuse cursors from the future) and
// XRANGE After Until COUNT Limit+1, all from the same instant. The range
// starts at After itself: a position past the trim point must still be in
// the stream, or the history after it was rolled back (a failover to a
// replica that lacked it, an evicted stream) and the caller must reset
// rather than get whatever was written since.
func (r *Redis) Range(ctx context.Context, q RangeQuery) (_ []Event, _ Pos, err error) {
	defer func() { r.errs.add(opRange, err) }()
	if q.Partition < 0 || q.Partition >= r.cfg.Partitions {
		return nil, Pos{}, fmt.Errorf("pubsub: partition %d out of range", q.Partition)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	start := q.After.String()
	if q.After.IsZero() {
		start = "-"
	}
	v, err := r.readView(ctx, r.cmd, q.Partition, start, maxPos(q.After, q.Until).String(), limit+1, false)
	if err != nil {
		return nil, Pos{}, unavailable("range", unwrapFatal(err))
	}
	gone := func(reason string) error { return &HistoryGoneError{Partition: q.Partition, Reason: reason} }
	if v.meta == "" {
		return nil, Pos{}, gone(ReasonEpochChanged)
	}
	epoch, trimmed, err := parseMeta(v.meta)
	if err != nil {
		return nil, Pos{}, err
	}
	if epoch != q.Epoch {
		return nil, Pos{}, gone(ReasonEpochChanged)
	}
	if q.After.Less(trimmed) {
		return nil, Pos{}, gone(ReasonTrimmed)
	}
	if v.last.Less(q.After) {
		return nil, Pos{}, gone(ReasonAhead)
	}
	msgs := v.entries
	switch {
	case q.After.IsZero():
	case q.After == trimmed:
		// The epoch's start (or last trimmed entry); an epoch may start at
		// an entry still held, which belongs to the old epoch.
		if len(msgs) > 0 && msgs[0].ID == start {
			msgs = msgs[1:]
		}
	default:
		if len(msgs) == 0 || msgs[0].ID != start {
			return nil, Pos{}, gone(ReasonRolledBack)
		}
		msgs = msgs[1:]
	}
	if !q.After.Less(q.Until) {
		return nil, q.Until, nil
	}
	scanned := q.Until
	if len(msgs) >= limit {
		msgs = msgs[:limit]
		if scanned, err = ParsePos(msgs[len(msgs)-1].ID); err != nil {
			return nil, Pos{}, fmt.Errorf("pubsub: partition %d has id %q: %w", q.Partition, msgs[len(msgs)-1].ID, err)
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

// unwrapFatal strips the reader's errFatal marker, which means nothing to
// callers of the queries.
func unwrapFatal(err error) error {
	var fatal errFatal
	if errors.As(err, &fatal) {
		return fatal.error
	}
	return err
}

// viewWithEpoch reads partition p, creating its epoch first when missing.
func (r *Redis) viewWithEpoch(ctx context.Context, p int, full bool, op string) (view, string, error) {
	for attempt := 0; ; attempt++ {
		v, err := r.readView(ctx, r.cmd, p, "", "", 0, full)
		if err != nil {
			return view{}, "", unavailable(op, unwrapFatal(err))
		}
		if v.meta == "" {
			if attempt > 0 {
				return view{}, "", fmt.Errorf("%w: partition %d has no epoch", ErrUnavailable, p)
			}
			if err := r.ensureEpoch(ctx, p); err != nil {
				return view{}, "", err
			}
			continue
		}
		epoch, _, err := parseMeta(v.meta)
		if err != nil {
			return view{}, "", err
		}
		return v, epoch, nil
	}
}

// Head implements Broker. A partition without an epoch gets one.
func (r *Redis) Head(ctx context.Context, p int) (_ ID, err error) {
	defer func() { r.errs.add(opHead, err) }()
	if p < 0 || p >= r.cfg.Partitions {
		return ID{}, fmt.Errorf("pubsub: partition %d out of range", p)
	}
	v, epoch, err := r.viewWithEpoch(ctx, p, false, "head")
	if err != nil {
		return ID{}, err
	}
	return ID{Partition: p, Epoch: epoch, Pos: v.last}, nil
}

// Retained implements Broker with one viewScript run: the meta key
// (epoch), the first and last entries and XLEN. A partition without an
// epoch gets one.
func (r *Redis) Retained(ctx context.Context, p int) (_ Retention, err error) {
	defer func() { r.errs.add(opRetained, err) }()
	if p < 0 || p >= r.cfg.Partitions {
		return Retention{}, fmt.Errorf("pubsub: partition %d out of range", p)
	}
	v, epoch, err := r.viewWithEpoch(ctx, p, true, "retained")
	if err != nil {
		return Retention{}, err
	}
	return Retention{Partition: p, Epoch: epoch, First: v.first, Last: v.last, Len: v.n}, nil
}
