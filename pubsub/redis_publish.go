package pubsub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// pubGroup is the messages of one partition in a Publish: one script run.
type pubGroup struct {
	p    int
	idx  []int // indexes into msgs
	keys []string
	args []any
	cmd  *redis.Cmd
}

// Publish implements Broker. Messages are grouped by partition; each group
// is stored by one script run, so a group is atomic and ordered. The groups
// of one server go in one pipeline on one connection, followed by WAIT when
// WaitReplicas is set (WAIT counts the replicas holding every write of its
// connection). An error leaves the other groups stored (retry with the same
// idempotency keys is safe).
func (r *Redis) Publish(ctx context.Context, msgs []Message) (_ []ID, err error) {
	defer func() { r.errs.add(opPublish, err) }()
	if len(msgs) == 0 {
		return nil, nil
	}
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	var groups []*pubGroup
	byPart := make(map[int]*pubGroup)
	for i, m := range msgs {
		p := PartitionOf(m.Topic, r.cfg.Partitions)
		g := byPart[p]
		if g == nil {
			g = &pubGroup{p: p, keys: []string{r.streamKey(p), r.metaKey(p)}}
			g.args = []any{NewEpoch(), r.cfg.MaxLen, r.chunk, int64(r.cfg.IdempotencyTTL / time.Second), 0}
			byPart[p] = g
			groups = append(groups, g)
		}
		ki := 0
		if m.IdempotencyKey != "" {
			g.keys = append(g.keys, r.idemKey(p, m.Topic, m.IdempotencyKey))
			ki = len(g.keys)
		}
		g.idx = append(g.idx, i)
		g.args = append(g.args, m.Topic, m.Type, m.Data, now, ki)
	}
	for _, g := range groups {
		g.args[4] = len(g.idx)
	}

	var waitErr error
	if r.cluster != nil {
		waitErr, err = r.publishCluster(ctx, groups)
	} else {
		waitErr, err = r.publishOn(ctx, r.cmd, groups)
	}
	if err != nil {
		return nil, err
	}
	ids := make([]ID, len(msgs))
	var firstErr error
	for _, g := range groups {
		res, err := g.cmd.Slice()
		if err != nil {
			if firstErr == nil {
				firstErr = classify(fmt.Sprintf("publish partition %d", g.p), err)
			}
			continue
		}
		epoch, idList, err := parsePublishReply(res, len(g.idx))
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("%w: publish partition %d: %w", ErrOutcomeUnknown, g.p, err)
			}
			continue
		}
		// Stored, whatever WAIT says: the reader checks it is kept.
		r.parts[g.p].noteAcked(epoch, idList[len(idList)-1])
		for j, mi := range g.idx {
			ids[mi] = ID{Partition: g.p, Epoch: epoch, Pos: idList[j]}
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if waitErr != nil {
		return nil, waitErr
	}
	return ids, nil
}

// pipeliner is what publishOn needs of a client: a *redis.Client, the
// failover client, or a Redis Cluster shard's master client.
type pipeliner interface {
	Pipeline() redis.Pipeliner
	redis.Scripter
}

// publishOn runs groups on one server's connection, then WAIT. It returns
// the WAIT's verdict (nil, or ErrNotReplicated) and an error only when
// nothing can be said per group; each group's outcome is in its cmd.
func (r *Redis) publishOn(ctx context.Context, c pipeliner, groups []*pubGroup) (waitErr, err error) {
	for attempt := 0; ; attempt++ {
		pipe := c.Pipeline()
		for _, g := range groups {
			g.cmd = publishScript.EvalSha(ctx, pipe, g.keys, g.args...)
		}
		var wait *redis.IntCmd
		if r.cfg.WaitReplicas > 0 {
			// The connection's read timeout covers the wait (NewRedis).
			wait = redis.NewIntCmd(ctx, "wait", r.cfg.WaitReplicas, r.cfg.WaitTimeout.Milliseconds())
			_ = pipe.Process(ctx, wait)
		}
		_, _ = pipe.Exec(ctx) // errors are read per command
		allNoScript := true
		for _, g := range groups {
			if !redis.HasErrorPrefix(g.cmd.Err(), "NOSCRIPT") {
				allNoScript = false
			}
		}
		if !allNoScript || attempt > 0 {
			// A restarted Redis forgot the script; NOSCRIPT means nothing
			// ran, so loading it and running everything again cannot store
			// twice. (Groups that did run are deduplicated only by
			// idempotency keys, so retry only when every group failed with
			// NOSCRIPT.)
			return r.waitVerdict(wait), nil
		}
		if err := publishScript.Load(ctx, c).Err(); err != nil {
			return nil, classify("load publish script", err)
		}
	}
}

// waitVerdict turns WAIT's reply into an error when too few replicas
// confirmed.
func (r *Redis) waitVerdict(wait *redis.IntCmd) error {
	if wait == nil {
		return nil
	}
	n, err := wait.Result()
	if err != nil {
		return fmt.Errorf("%w: %w: wait: %w", ErrOutcomeUnknown, ErrNotReplicated, err)
	}
	if n < int64(r.cfg.WaitReplicas) {
		return fmt.Errorf("%w: %w: %d of %d replicas within %s", ErrOutcomeUnknown, ErrNotReplicated, n, r.cfg.WaitReplicas, r.cfg.WaitTimeout)
	}
	return nil
}

// publishCluster runs the groups on the masters of their slots, one
// pipeline per master, concurrently. It does not use the cluster client's
// own routing for them: that retries a command whose reply timed out or
// whose connection broke (go-redis ClusterClient.process), which for a
// publish may store it twice. It follows only the redirections that prove
// the script did not run (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, READONLY, a
// failed dial), until ctx ends: a slot moving or a shard failing over
// delays a publish, never duplicates it.
func (r *Redis) publishCluster(ctx context.Context, groups []*pubGroup) (waitErr, err error) {
	pending := groups
	backoff := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		byNode := make(map[*redis.Client][]*pubGroup)
		var order []*redis.Client
		for _, g := range pending {
			c, err := r.cluster.MasterForKey(ctx, g.keys[0])
			if err != nil {
				return nil, classify(fmt.Sprintf("publish partition %d: find master", g.p), err)
			}
			if byNode[c] == nil {
				order = append(order, c)
			}
			byNode[c] = append(byNode[c], g)
		}
		waits := make([]error, len(order))
		var wg sync.WaitGroup
		for i, c := range order {
			wg.Go(func() {
				var err error
				waits[i], err = r.publishOn(ctx, c, byNode[c])
				if err != nil {
					for _, g := range byNode[c] {
						g.cmd = redis.NewCmd(ctx)
						g.cmd.SetErr(err)
					}
				}
			})
		}
		wg.Wait()
		var again []*pubGroup
		for i, c := range order {
			moved := false
			for _, g := range byNode[c] {
				if notRun(g.cmd.Err()) {
					again = append(again, g)
					moved = true
				}
			}
			if !moved && waits[i] != nil && waitErr == nil {
				waitErr = waits[i]
			}
		}
		if len(again) == 0 {
			return waitErr, nil
		}
		r.cluster.ReloadState(ctx)
		if !sleepCtx(ctx, backoff) {
			return waitErr, nil // the groups keep their last error
		}
		backoff = min(2*backoff, 200*time.Millisecond)
		pending = again
	}
}

// notRun reports errors that prove a script did not run on the server
// that answered: the slot is elsewhere or unavailable.
func notRun(err error) bool {
	if err == nil {
		return false
	}
	for _, p := range []string{"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "MASTERDOWN", "LOADING"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

func parsePublishReply(res []any, n int) (string, []Pos, error) {
	if len(res) != 2 {
		return "", nil, fmt.Errorf("pubsub: publish reply has %d elements", len(res))
	}
	epoch, ok := res[0].(string)
	if !ok || !ValidEpoch(epoch) {
		return "", nil, fmt.Errorf("pubsub: publish reply epoch %v", res[0])
	}
	list, ok := res[1].([]any)
	if !ok || len(list) != n {
		return "", nil, fmt.Errorf("pubsub: publish reply ids %v", res[1])
	}
	out := make([]Pos, n)
	for i, v := range list {
		s, ok := v.(string)
		if !ok {
			return "", nil, fmt.Errorf("pubsub: publish reply id %v", v)
		}
		p, err := ParsePos(s)
		if err != nil {
			return "", nil, fmt.Errorf("pubsub: publish reply id %q: %w", s, err)
		}
		out[i] = p
	}
	return epoch, out, nil
}
