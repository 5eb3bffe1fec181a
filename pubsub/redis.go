package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssecluster/ssecluster/internal/redisconn"
)

// RedisConfig configures the Redis Streams broker. Exactly one of URL,
// SentinelURL and ClusterURL is required (see redisconn.Config).
type RedisConfig struct {
	// URL of one Redis server, e.g. "redis://127.0.0.1:6379/0" or
	// "rediss://user:password@host:6380/0".
	URL string
	// SentinelURL: the sentinels and master name of a Sentinel group, in
	// go-redis's failover URL form
	// "redis://S1:26379?addr=S2:26379&addr=S3:26379&master_name=NAME".
	SentinelURL string
	// ClusterURL: seed nodes of a Redis Cluster, in go-redis's cluster URL
	// form "redis://H1:6379?addr=H2:6379&addr=H3:6379".
	ClusterURL string
	// CAFile is a PEM file of the authorities trusted for rediss:// URLs;
	// "" means the system's.
	CAFile string
	// Prefix of every key; default "sse". Brokers sharing a Redis and a
	// prefix form one cluster.
	Prefix string
	// Partitions is the number of partition streams; default 16. It is fixed
	// for a cluster: the first node stores it in Redis and nodes configured
	// otherwise refuse to run.
	Partitions int
	// MaxLen is the number of events retained per partition; default 100000.
	// Trimming happens in chunks of max(10, MaxLen/10) beyond MaxLen.
	MaxLen int
	// IdempotencyTTL is how long an idempotency key is remembered after the
	// last publish that carried it; default 10 minutes.
	IdempotencyTTL time.Duration
	// ReadCount is the most entries one read takes per partition; default 512.
	ReadCount int
	// Block is how long a reader waits in XREAD BLOCK before it looks again;
	// default 5 s.
	Block time.Duration
	// Timeout bounds every non-blocking command (so does the caller's
	// context deadline, when sooner); default 2 s. A publish that times out
	// answers ErrOutcomeUnknown.
	Timeout time.Duration
	// WaitReplicas is how many replicas must hold a published event before
	// Publish returns (Redis WAIT, on the connection that stored it); 0,
	// the default, does not wait. In a Redis Cluster it counts the replicas
	// of the shard that holds the event.
	WaitReplicas int
	// WaitTimeout bounds that wait; default 1 s. A publish whose events
	// fewer replicas confirmed in time answers ErrNotReplicated.
	WaitTimeout time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// conn is the topology part of the config.
func (c RedisConfig) conn() redisconn.Config {
	return redisconn.Config{URL: c.URL, SentinelURL: c.SentinelURL, ClusterURL: c.ClusterURL, CAFile: c.CAFile}
}

func (c RedisConfig) withDefaults() RedisConfig {
	if c.Prefix == "" {
		c.Prefix = "sse"
	}
	if c.Partitions == 0 {
		c.Partitions = 16
	}
	if c.MaxLen == 0 {
		c.MaxLen = 100000
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = 10 * time.Minute
	}
	if c.ReadCount == 0 {
		c.ReadCount = 512
	}
	if c.Block == 0 {
		c.Block = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid field of an already defaulted config.
func (c RedisConfig) Validate() error {
	if c.conn().Mode() == redisconn.ModeNone {
		return errors.New("pubsub: a redis url (single, sentinel or cluster) is required")
	}
	if err := c.conn().Validate(); err != nil {
		return err
	}
	switch {
	case c.Partitions < 1 || c.Partitions > MaxPartitions:
		return fmt.Errorf("pubsub: partitions %d out of range 1..%d", c.Partitions, MaxPartitions)
	case c.MaxLen < 1:
		return fmt.Errorf("pubsub: max len %d must be positive", c.MaxLen)
	case c.IdempotencyTTL < time.Second:
		return fmt.Errorf("pubsub: idempotency ttl %s below 1s", c.IdempotencyTTL)
	case c.WaitReplicas < 0 || c.WaitReplicas > MaxWaitReplicas:
		return fmt.Errorf("pubsub: wait replicas %d out of range 0..%d", c.WaitReplicas, MaxWaitReplicas)
	case c.WaitTimeout < time.Millisecond || c.WaitTimeout > time.Minute:
		return fmt.Errorf("pubsub: wait timeout %s out of range 1ms..1m", c.WaitTimeout)
	case c.ReadCount < 1:
		return fmt.Errorf("pubsub: read count %d must be positive", c.ReadCount)
	case c.Block < time.Millisecond:
		return fmt.Errorf("pubsub: block %s below 1ms", c.Block)
	case c.Timeout <= 0:
		return fmt.Errorf("pubsub: timeout %s must be positive", c.Timeout)
	}
	if strings.ContainsAny(c.Prefix, "{} ") {
		return fmt.Errorf("pubsub: prefix %q must not contain braces or spaces", c.Prefix)
	}
	return nil
}

// MaxWaitReplicas bounds RedisConfig.WaitReplicas.
const MaxWaitReplicas = 16

// Redis is the Redis Streams broker. See the README for the data format.
//
// Goroutines: Run starts one reader goroutine per partition and a trimming
// loop, and waits for them; nothing else starts goroutines.
type Redis struct {
	cfg  RedisConfig
	log  *slog.Logger
	mode redisconn.Mode
	// cmd serves publishes and queries; it never retries a command blindly
	// (see Publish). read serves the reader loops only; closed when Run's
	// ctx ends. In a Redis Cluster both are *redis.ClusterClient, and
	// publishes go to the shard's master client from cluster (see
	// publishCluster).
	cmd, read redis.UniversalClient
	cluster   *redis.ClusterClient
	chunk     int
	parts     []partState
	failing   atomic.Int32 // reader loops currently failing
	running   atomic.Bool
	errs      opErrors
	warnings  warnings
}

// partState is what publishes tell a partition's reader: the newest
// position this node stored in it (see readPart's rollback check).
type partState struct {
	mu    sync.Mutex
	epoch string
	acked Pos
}

// noteAcked records that pos of epoch was stored.
func (s *partState) noteAcked(epoch string, pos Pos) {
	s.mu.Lock()
	if s.epoch != epoch || s.acked.Less(pos) {
		s.epoch, s.acked = epoch, pos
	}
	s.mu.Unlock()
}

func (s *partState) lastAcked() (string, Pos) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch, s.acked
}

var _ Broker = (*Redis)(nil)

// NewRedis returns a broker for cfg. It does not contact Redis: a node
// starts while Redis is down and becomes ready once it is reachable.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn := cfg.conn()
	// go-redis retries a command whose reply timed out; for XADD that
	// stores the event twice (SSE-NOTES §3.4). No command of ours is
	// retried blindly: publishes answer ErrOutcomeUnknown instead, reads
	// are retried by their own loops.
	//
	// Commands end by the caller's deadline too, when it comes before
	// Timeout. go-redis ignores context deadlines on the socket otherwise:
	// a Ping bounded to 1 s by /readyz took Timeout against a hung Redis,
	// longer than the load balancer's check allows, so the check failed
	// and the load balancer cut every stream of every node.
	readTimeout := cfg.Timeout
	if cfg.WaitReplicas > 0 {
		readTimeout += cfg.WaitTimeout // a publish's reply comes after its WAIT
	}
	cmd, err := conn.NewClient(redisconn.Tuning{
		MaxRetries: -1, ReadTimeout: readTimeout, WriteTimeout: cfg.Timeout,
		ContextTimeoutEnabled: true, MaxRedirects: 8, ClientName: "ssenode-cmd",
	})
	if err != nil {
		return nil, fmt.Errorf("pubsub: %w", err)
	}
	// Readers: one blocking connection per partition (per server holding
	// it, in a cluster) plus the snapshot reads between blocks.
	read, err := conn.NewClient(redisconn.Tuning{
		MaxRetries: -1, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
		PoolSize: cfg.Partitions + 4, MaxRedirects: 8, ClientName: "ssenode-read",
	})
	if err != nil {
		_ = cmd.Close()
		return nil, fmt.Errorf("pubsub: %w", err)
	}
	r := &Redis{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "pubsub"),
		mode:  conn.Mode(),
		cmd:   cmd,
		read:  read,
		chunk: max(10, cfg.MaxLen/10),
		parts: make([]partState, cfg.Partitions),
	}
	r.cluster, _ = cmd.(*redis.ClusterClient)
	return r, nil
}

// Mode returns the Redis topology the broker runs on.
func (r *Redis) Mode() string { return string(r.mode) }

// Partitions implements Broker.
func (r *Redis) Partitions() int { return r.cfg.Partitions }

// Keys. Every key of a partition carries the hash tag {<prefix>:<p>}, so a
// partition's keys live in one Redis Cluster slot and one script can touch
// them all.
func (r *Redis) streamKey(p int) string { return fmt.Sprintf("{%s:%d}:events", r.cfg.Prefix, p) }
func (r *Redis) metaKey(p int) string   { return fmt.Sprintf("{%s:%d}:meta", r.cfg.Prefix, p) }
func (r *Redis) idemKey(p int, topic, key string) string {
	// Topics never contain spaces, so the first space separates them.
	return fmt.Sprintf("{%s:%d}:idem:%s %s", r.cfg.Prefix, p, topic, key)
}
func (r *Redis) clusterKey() string { return r.cfg.Prefix + ":partitions" }

// parseMeta splits the meta value "<epoch> <trimmed>" where trimmed is the
// position of the last event retention removed ("0-0" when none).
func parseMeta(v string) (epoch string, trimmed Pos, err error) {
	e, t, ok := strings.Cut(v, " ")
	if !ok || !ValidEpoch(e) {
		return "", Pos{}, fmt.Errorf("pubsub: bad meta %q", v)
	}
	trimmed, err = ParsePos(t)
	if err != nil {
		return "", Pos{}, fmt.Errorf("pubsub: bad meta %q: %w", v, err)
	}
	return e, trimmed, nil
}

// SharedKey implements Broker: the key is the string <prefix>:key:<name>,
// set once with SET NX and never expired.
func (r *Redis) SharedKey(ctx context.Context, name string) (_ []byte, err error) {
	defer func() { r.errs.add(opSharedKey, err) }()
	key := r.cfg.Prefix + ":key:" + name
	if err := r.cmd.SetNX(ctx, key, newSharedKey(), 0).Err(); err != nil {
		return nil, unavailable("shared key", err)
	}
	v, err := r.cmd.Get(ctx, key).Bytes()
	if err != nil {
		return nil, unavailable("shared key", err)
	}
	if len(v) != SharedKeySize {
		return nil, fmt.Errorf("pubsub: shared key %s holds %d bytes, want %d", key, len(v), SharedKeySize)
	}
	return v, nil
}

// Ping implements Broker.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.cmd.Ping(ctx).Err(); err != nil {
		err = unavailable("ping", err)
		r.errs.add(opPing, err)
		return err
	}
	return nil
}

// ErrorCounts returns how many store operations failed since NewRedis, by
// operation (StoreOps names; zeros included). A failure is an error from
// Redis or the network, a timeout included; a caller giving up, a closed
// broker and history that is gone are not failures.
func (r *Redis) ErrorCounts() map[string]int64 { return r.errs.snapshot() }

// Close implements Broker.
func (r *Redis) Close() error {
	err := r.cmd.Close()
	if !r.running.Load() {
		_ = r.read.Close() // Run closes it otherwise; a second Close only errors
	}
	return err
}

// classify maps a go-redis error of a command that may have reached Redis.
// Errors that prove nothing was executed are ErrUnavailable; everything else
// (timeouts, broken connections after the write) is ErrOutcomeUnknown.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var opErr *net.OpError
	switch {
	case errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("%w: %s: %w", ErrClosed, op, err)
	case redis.HasErrorPrefix(err, "OOM"):
		return fmt.Errorf("%w: %w: %s: %w", ErrUnavailable, ErrStoreFull, op, err)
	case errors.As(err, &opErr) && opErr.Op == "dial",
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted),
		isRejectedBeforeRun(err):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrOutcomeUnknown, op, err)
}

// isRejectedBeforeRun reports Redis error replies that refuse a command
// before running it.
func isRejectedBeforeRun(err error) bool {
	for _, p := range []string{"LOADING", "READONLY", "OOM", "MASTERDOWN", "BUSY", "NOSCRIPT", "MISCONF", "NOREPLICAS",
		"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "CROSSSLOT"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// unavailable wraps an error of a read-only command.
func unavailable(op string, err error) error {
	if errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("%w: %s: %w", ErrClosed, op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// jitter returns a random duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var errNoMeta = errors.New("pubsub: partition has no epoch yet")

// ensureEpoch creates the meta key of partition p when missing.
func (r *Redis) ensureEpoch(ctx context.Context, p int) error {
	if err := epochScript.Run(ctx, r.cmd, []string{r.streamKey(p), r.metaKey(p)}, NewEpoch()).Err(); err != nil {
		return unavailable("create epoch", err)
	}
	return nil
}

// checkPartitions stores the partition count on first contact and refuses a
// cluster whose nodes disagree on it: topics would hash differently.
func (r *Redis) checkPartitions(ctx context.Context) error {
	key := r.clusterKey()
	if err := r.cmd.SetNX(ctx, key, r.cfg.Partitions, 0).Err(); err != nil {
		return unavailable("store partitions", err)
	}
	got, err := r.cmd.Get(ctx, key).Int()
	if err != nil {
		return unavailable("read partitions", err)
	}
	if got != r.cfg.Partitions {
		return fmt.Errorf("pubsub: redis key %s says %d partitions, this node is configured with %d", key, got, r.cfg.Partitions)
	}
	return nil
}

// errFatal marks errors Run must return instead of retrying.
type errFatal struct{ error }

func (e errFatal) Unwrap() error { return e.error }
