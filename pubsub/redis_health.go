package pubsub

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// warnings holds what inspect found wrong with the Redis the broker runs
// on, for the node report. Safe for concurrent use.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) set(list []string) (changed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	changed = !slices.Equal(w.list, list)
	w.list = list
	return changed
}

// Warnings returns what the broker found wrong with Redis's settings at
// its last look (at first contact, then every maintenance round, about
// every 20 s): a maxmemory-policy that may evict the broker's keys, fewer
// connected replicas than WaitReplicas. Empty when all is well.
func (r *Redis) Warnings() []string {
	r.warnings.mu.Lock()
	defer r.warnings.mu.Unlock()
	return slices.Clone(r.warnings.list)
}

// inspect looks at every primary's eviction policy and replicas and
// records what may lose history or fail publishes; new findings are logged
// at error level.
func (r *Redis) inspect(ctx context.Context) {
	var mu sync.Mutex
	var found []string
	look := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory", "replication").Result()
		if err != nil {
			return err
		}
		fields := parseInfo(info)
		addr := c.Options().Addr
		var w []string
		switch policy := fields["maxmemory_policy"]; {
		case strings.HasPrefix(policy, "allkeys-"):
			w = append(w, fmt.Sprintf("redis %s: maxmemory-policy %s may evict partition streams and epochs when memory is full: clients then get resets (history lost); use noeviction", addr, policy))
		case strings.HasPrefix(policy, "volatile-"):
			w = append(w, fmt.Sprintf("redis %s: maxmemory-policy %s may evict idempotency keys when memory is full: a retried publish may then be stored twice; use noeviction", addr, policy))
		}
		if r.cfg.WaitReplicas > 0 {
			n, _ := strconv.Atoi(fields["connected_slaves"])
			if n < r.cfg.WaitReplicas {
				w = append(w, fmt.Sprintf("redis %s: %d replicas connected, publishes wait for %d: every publish will answer 503 until enough replicas are connected", addr, n, r.cfg.WaitReplicas))
			}
		}
		mu.Lock()
		found = append(found, w...)
		mu.Unlock()
		return nil
	}
	var err error
	switch c := r.cmd.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, look)
	case *redis.Client:
		err = look(ctx, c)
	}
	if err != nil {
		r.log.Debug("redis inspection failed", "err", err)
		return // keep the last findings
	}
	slices.Sort(found)
	if r.warnings.set(found) {
		for _, w := range found {
			r.log.Error("redis setting endangers delivery", "warning", w)
		}
	}
}

// parseInfo splits an INFO reply into its fields.
func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.SplitSeq(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m
}
