package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssecluster/ssecluster/internal/redisconn"
)

// RedisRegistryConfig configures a RedisRegistry. One of URL, SentinelURL
// and ClusterURL is required: the broker's (see redisconn.Config).
type RedisRegistryConfig struct {
	// URL of one Redis server, e.g. "redis://127.0.0.1:6379/0".
	URL string
	// SentinelURL: the sentinels and master name of a Sentinel group.
	SentinelURL string
	// ClusterURL: seed nodes of a Redis Cluster.
	ClusterURL string
	// CAFile: PEM authorities trusted for rediss:// URLs.
	CAFile string
	// Prefix of every key; default "sse" (REDIS_PREFIX). Nodes sharing a
	// Redis and a prefix see each other.
	Prefix string
	// Timeout bounds every command; default 2 s.
	Timeout time.Duration
}

func (c RedisRegistryConfig) withDefaults() RedisRegistryConfig {
	if c.Prefix == "" {
		c.Prefix = "sse"
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	return c
}

// RedisRegistry is the Registry of a cluster, in Redis. Every key carries
// the hash tag {<prefix>:admin}, so they all live in one Redis Cluster
// slot and one script or MGET may touch several (the admin data is small):
//
//	{<prefix>:admin}:nodes         sorted set: node id -> expiry (Redis clock, ms); an index, pruned on every publish
//	{<prefix>:admin}:node:<id>     string, JSON {"report":…,"merge":…}, expires after the publish ttl
//	{<prefix>:admin}:topics:<id>   string, JSON {"topics":[{"topic","subscribers"}…],"truncated"}, same ttl
//	{<prefix>:admin}:cmd:<id>      list of JSON commands, oldest first, at most 100, expires after the send ttl
//
// A node is live while its node key exists: liveness is Redis's expiry, so
// the nodes' clocks play no part. The index only saves a SCAN over the
// whole keyspace (which holds every idempotency key).
//
// It uses its own go-redis client: the registry is an admin concern and
// the broker's clients are tuned for streams (no retries for XADD).
type RedisRegistry struct {
	cfg RedisRegistryConfig
	rdb redis.UniversalClient
}

var _ Registry = (*RedisRegistry)(nil)

// NewRedisRegistry returns a registry on cfg.URL. It does not contact
// Redis: every call reports ErrRegistryUnavailable until it is reachable.
func NewRedisRegistry(cfg RedisRegistryConfig) (*RedisRegistry, error) {
	cfg = cfg.withDefaults()
	conn := redisconn.Config{URL: cfg.URL, SentinelURL: cfg.SentinelURL, ClusterURL: cfg.ClusterURL, CAFile: cfg.CAFile}
	if conn.Mode() == redisconn.ModeNone {
		return nil, errors.New("admin: registry redis url is required")
	}
	if strings.ContainsAny(cfg.Prefix, "{} ") {
		return nil, fmt.Errorf("admin: registry prefix %q must not contain braces or spaces", cfg.Prefix)
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("admin: registry timeout %s must be positive", cfg.Timeout)
	}
	// One retry (a pooled connection that died with a Redis restart) and
	// one dial: the loop calls again within a second anyway, and an admin
	// request during an outage should answer 503 soon rather than retry
	// for seconds. A retry is safe: every command is idempotent but RPUSH,
	// and a drain command sent twice drains once. Pool: one publisher loop
	// and a few admin requests.
	rdb, err := conn.NewClient(redisconn.Tuning{
		MaxRetries: 1, DialerRetries: 1, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
		PoolSize: 4, ClientName: "ssenode-admin",
	})
	if err != nil {
		return nil, fmt.Errorf("admin: registry: %w", err)
	}
	return &RedisRegistry{cfg: cfg, rdb: rdb}, nil
}

// Close releases the client's connections.
func (r *RedisRegistry) Close() error { return r.rdb.Close() }

func (r *RedisRegistry) tag() string                { return "{" + r.cfg.Prefix + ":admin}" }
func (r *RedisRegistry) indexKey() string           { return r.tag() + ":nodes" }
func (r *RedisRegistry) nodeKey(id string) string   { return r.tag() + ":node:" + id }
func (r *RedisRegistry) topicsKey(id string) string { return r.tag() + ":topics:" + id }
func (r *RedisRegistry) cmdKey(id string) string    { return r.tag() + ":cmd:" + id }

// publishScript stores a node's entry and topics with one expiry and
// indexes the node until then, by Redis's clock (TIME), so a node with a
// skewed clock can neither hide another nor linger. Index members past
// their expiry are pruned on the way.
// KEYS: node key, topics key, index. ARGV: node id, entry, topics, ttl ms.
var publishScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl)
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. now)
return 1
`)

// sendScript queues a command for a live node only.
// KEYS: node key, command list. ARGV: command, ttl ms, max queued.
var sendScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`)

// storedEntry is the JSON value of a node key.
type storedEntry struct {
	Report json.RawMessage `json:"report"`
	Merge  json.RawMessage `json:"merge"`
}

// storedTopics is the JSON value of a topics key.
type storedTopics struct {
	Topics    []TopicCount `json:"topics"`
	Truncated bool         `json:"truncated"`
}

// Publish implements Registry.
func (r *RedisRegistry) Publish(ctx context.Context, e Entry, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("admin: registry ttl %s below 1ms", ttl)
	}
	entry, err := json.Marshal(storedEntry{Report: e.Report, Merge: e.Merge})
	if err != nil {
		return fmt.Errorf("admin: encode entry: %w", err)
	}
	topics, err := json.Marshal(storedTopics{Topics: e.Topics.Topics, Truncated: e.Topics.Truncated})
	if err != nil {
		return fmt.Errorf("admin: encode topics: %w", err)
	}
	keys := []string{r.nodeKey(e.NodeID), r.topicsKey(e.NodeID), r.indexKey()}
	if err := publishScript.Run(ctx, r.rdb, keys, e.NodeID, entry, topics, ttl.Milliseconds()).Err(); err != nil {
		return unavailable("publish", err)
	}
	return nil
}

// Remove implements Registry.
func (r *RedisRegistry) Remove(ctx context.Context, nodeID string) error {
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, r.nodeKey(nodeID), r.topicsKey(nodeID), r.cmdKey(nodeID))
		p.ZRem(ctx, r.indexKey(), nodeID)
		return nil
	})
	if err != nil {
		return unavailable("remove", err)
	}
	return nil
}

// live returns the indexed node ids and the values of their keys made by
// key (nil for a node whose entry expired).
func (r *RedisRegistry) live(ctx context.Context, key func(string) string) ([]string, []any, error) {
	ids, err := r.rdb.ZRange(ctx, r.indexKey(), 0, -1).Result()
	if err != nil {
		return nil, nil, unavailable("list", err)
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = key(id)
	}
	vals, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, nil, unavailable("list", err)
	}
	return ids, vals, nil
}

// Nodes implements Registry. ZRANGE returns members in lexicographic order
// when scores tie, but scores differ: the result is sorted here.
func (r *RedisRegistry) Nodes(ctx context.Context) ([]Entry, error) {
	ids, vals, err := r.live(ctx, r.nodeKey)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(ids))
	for i, id := range ids {
		s, ok := vals[i].(string)
		if !ok { // expired
			continue
		}
		var st storedEntry
		if err := json.Unmarshal([]byte(s), &st); err != nil {
			continue // not ours to fail on: someone else's bytes under our prefix
		}
		out = append(out, Entry{NodeID: id, Report: st.Report, Merge: st.Merge})
	}
	sortEntries(out)
	return out, nil
}

// Topics implements Registry.
func (r *RedisRegistry) Topics(ctx context.Context) ([]NodeTopics, error) {
	ids, vals, err := r.live(ctx, r.topicsKey)
	if err != nil {
		return nil, err
	}
	out := make([]NodeTopics, 0, len(ids))
	for i, id := range ids {
		s, ok := vals[i].(string)
		if !ok {
			continue
		}
		var st storedTopics
		if err := json.Unmarshal([]byte(s), &st); err != nil {
			continue
		}
		out = append(out, NodeTopics{NodeID: id, Topics: st.Topics, Truncated: st.Truncated})
	}
	sortNodeTopics(out)
	return out, nil
}

// Send implements Registry.
func (r *RedisRegistry) Send(ctx context.Context, nodeID string, c Command, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("admin: command ttl %s below 1ms", ttl)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("admin: encode command: %w", err)
	}
	n, err := sendScript.Run(ctx, r.rdb, []string{r.nodeKey(nodeID), r.cmdKey(nodeID)},
		b, ttl.Milliseconds(), maxQueuedCommands).Int()
	if err != nil {
		return unavailable("send", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrUnknownNode, nodeID)
	}
	return nil
}

// Receive implements Registry. Commands that do not decode are dropped.
func (r *RedisRegistry) Receive(ctx context.Context, nodeID string) ([]Command, error) {
	var lr *redis.StringSliceCmd
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		lr = p.LRange(ctx, r.cmdKey(nodeID), 0, -1)
		p.Del(ctx, r.cmdKey(nodeID))
		return nil
	})
	if err != nil {
		return nil, unavailable("receive", err)
	}
	var out []Command
	for _, s := range lr.Val() {
		var c Command
		if json.Unmarshal([]byte(s), &c) == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// unavailable wraps a Redis error as ErrRegistryUnavailable, keeping the
// cause for logs.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrRegistryUnavailable, op, err)
}
