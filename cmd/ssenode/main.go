// Command ssenode runs one ssecluster node. With REDIS_URL unset it runs
// standalone on an in-memory broker; with it, it joins the cluster that
// shares that Redis. Every flag has a matching environment variable (the
// flag name upper-cased, dashes as underscores); a flag given on the command
// line wins. The one exception is -healthcheck, the container image's
// probe: it GETs the node's /healthz and exits 0 (200) or 1.
//
// "ssenode token [flags]" prints a JWT for the node's authorization, signed
// with JWT_SECRET or a private key file (see -h and the README's
// Authorization section).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ssecluster/ssecluster/admin"
	"github.com/ssecluster/ssecluster/internal/flagenv"
	"github.com/ssecluster/ssecluster/internal/redisconn"
	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/auth"
	"github.com/ssecluster/ssecluster/node/retry"
	"github.com/ssecluster/ssecluster/pubsub"
)

// version is stamped at link time (-ldflags "-X main.version=v1.2.3", as
// the Dockerfile does with its VERSION build argument); empty, the node
// reports its build info (module version and VCS revision when known).
var version string

func main() {
	// SIGINT stops at once (every stream gets a hint and is closed); SIGTERM
	// drains first, and a second SIGTERM stops at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	term := make(chan os.Signal, 2)
	signal.Notify(term, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == "token" {
		err = mintToken(os.Args[2:], os.Getenv, os.Stdout, os.Stderr)
	} else {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stderr, term)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ssenode:", err)
		os.Exit(1)
	}
}

// options is everything configurable: the node's config, bound to flags
// directly, and what becomes the broker's.
type options struct {
	node                      node.Config
	adminAddr, adminToken     string
	adminInterval, adminTTL   time.Duration
	redis                     redisconn.Config
	redisPrefix               string
	waitReplicas              int
	waitTimeout               time.Duration
	partitions, streamMaxLen  int
	idempotencyTTL            time.Duration
	cookieKey, trustedProxies string
	logLevel                  string
	healthcheck               bool
	jwt                       auth.Config
	jwtSecret, jwtKeyFile     string
	corsOrigins               string
	adminRate                 float64
	adminBurst                int
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	n := &o.node
	fs := flag.NewFlagSet("ssenode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&n.Addr, "http-addr", ":8080", "public HTTP listen address (streams, publish, health)")
	fs.StringVar(&o.adminAddr, "admin-addr", ":9090", "admin API listen address (keep it off the public load balancer)")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token of the admin API; unset: the admin API listens on 127.0.0.1 only")
	fs.DurationVar(&o.adminInterval, "admin-report-interval", 2*time.Second, "how often the node publishes its admin report to the cluster registry")
	fs.DurationVar(&o.adminTTL, "admin-report-ttl", 10*time.Second, "how long a published report lives: a node that stops publishing leaves the cluster view after it")
	fs.StringVar(&n.PublishToken, "publish-token", "", "when set, POST /v1/publish requires Authorization: Bearer <token> (or a JWT granting the topics)")
	fs.StringVar(&o.jwtSecret, "jwt-secret", "", "HS256 secret (32+ bytes) verifying JWTs; turns authorization on (prefer the environment variable)")
	fs.StringVar(&o.jwtKeyFile, "jwt-public-key-file", "", "PEM file of an RSA (RS256) or ECDSA P-256 (ES256) public key verifying JWTs; turns authorization on")
	fs.DurationVar(&o.jwt.Leeway, "jwt-leeway", auth.DefaultLeeway, "clock skew tolerated on a token's exp and nbf (0: none)")
	fs.StringVar(&o.jwt.Audience, "jwt-audience", "", "when set, a token's aud must contain it")
	fs.StringVar(&o.jwt.Issuer, "jwt-issuer", "", "when set, a token's iss must equal it")
	fs.StringVar(&n.AuthCookie, "jwt-cookie", "sse_token", "cookie a stream's token may come in (after Authorization: Bearer and the token query parameter)")
	fs.StringVar(&o.corsOrigins, "cors-origins", "", "comma-separated origins browsers may call from (scheme://host[:port], *.domain, or *); default: none with JWT, * for streams only without")
	fs.BoolVar(&n.CORSCredentials, "cors-credentials", false, "let allowed origins send cookies (not with *)")
	fs.StringVar(&n.NodeID, "node-id", "", "node name in logs and the X-SSE-Node header (default: hostname)")
	fs.StringVar(&o.redis.URL, "redis-url", "", "one Redis: redis://[user:password@]host:port/db or rediss:// (TLS); unset (with the two below) = standalone in-memory broker")
	fs.StringVar(&o.redis.SentinelURL, "redis-sentinel-url", "", "Redis behind Sentinel: redis://S1:26379?addr=S2:26379&addr=S3:26379&master_name=NAME (sentinels, master name; password=... for the master)")
	fs.StringVar(&o.redis.ClusterURL, "redis-cluster-url", "", "Redis Cluster: redis://H1:6379?addr=H2:6379&addr=H3:6379 (seed nodes)")
	fs.StringVar(&o.redis.CAFile, "redis-ca-file", "", "PEM file of the authorities trusted for rediss:// (default: the system's)")
	fs.IntVar(&o.waitReplicas, "publish-wait-replicas", 0, "publish answers 200 only once this many replicas hold the events (Redis WAIT; 0: do not wait)")
	fs.DurationVar(&o.waitTimeout, "publish-wait-timeout", time.Second, "how long a publish waits for those replicas before answering 503 publish_not_replicated")
	fs.StringVar(&o.redisPrefix, "redis-prefix", "sse", "prefix of every Redis key")
	fs.IntVar(&o.partitions, "partitions", 16, "partition streams topics hash into (fixed per cluster)")
	fs.IntVar(&o.streamMaxLen, "stream-maxlen", 0, "events retained per partition (0 = 100000 with Redis, 10000 in memory)")
	fs.DurationVar(&o.idempotencyTTL, "idempotency-ttl", 10*time.Minute, "how long publish idempotency keys are remembered")
	fs.DurationVar(&n.Heartbeat, "heartbeat-interval", 15*time.Second, "longest silence on an idle stream")
	fs.DurationVar(&n.Retry.Base, "retry-base", retry.DefaultBase, "retry hints: widest hint of a first attempt (full jitter over [0, min(cap, base*2^attempt)])")
	fs.DurationVar(&n.Retry.Cap, "retry-cap", retry.DefaultCap, "retry hints: widest hint of any attempt")
	fs.DurationVar(&n.Retry.HealthyAfter, "retry-healthy-after", 0, "retry hints: stream lifetime that resets the attempt count (default: the cap; at least the cap)")
	fs.IntVar(&n.Retry.EarlyLimit, "retry-early-limit", retry.DefaultEarlyLimit, "early reconnects in a row answered with a short 200 before 429")
	fs.BoolVar(&n.Retry.NoJitter, "retry-no-jitter", false, "benchmarks only: every hint exactly min(cap, base*2^attempt), no jitter")
	fs.StringVar(&o.cookieKey, "retry-cookie-key", "", "secret (16+ bytes) signing the retry cookie, the same on every node (default: a key shared through Redis)")
	fs.DurationVar(&n.DrainWindow, "drain-window", 30*time.Second, "SIGTERM: streams are closed spread over this window, then the node exits")
	fs.IntVar(&n.MaxStreams, "max-streams", 0, "most streams of this node (default: the open-file limit minus a tenth)")
	fs.Float64Var(&n.AdmitRate, "admit-rate", 2000, "new streams admitted per second (token bucket; negative: no limit)")
	fs.IntVar(&n.AdmitBurst, "admit-burst", 0, "admission bucket size (default: admit-rate)")
	fs.IntVar(&n.MaxStreamsPerAddr, "max-streams-per-addr", 0, "most streams of one source address (0: no limit)")
	fs.Float64Var(&n.ConnectRatePerAddr, "connect-rate-per-addr", 0, "new streams per second of one source address (0: no limit)")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-For names the source address")
	fs.DurationVar(&n.DeadPeerTimeout, "dead-peer-timeout", 30*time.Second, "unacknowledged bytes older than this drop the connection (TCP_USER_TIMEOUT)")
	fs.IntVar(&n.MaxTopics, "max-topics", 32, "most topics per stream")
	fs.IntVar(&n.MaxBatch, "max-batch", 1000, "most events per publish request")
	fs.Int64Var(&n.MaxBodyBytes, "max-body-bytes", 1<<20, "largest publish request body (413 beyond)")
	fs.IntVar(&n.MaxDataBytes, "max-data-bytes", 256<<10, "largest data of one published event (413 beyond)")
	fs.IntVar(&n.MaxHeaderBytes, "max-header-bytes", 32<<10, "largest request header fields (431 beyond)")
	fs.IntVar(&n.MaxURLBytes, "max-url-bytes", 16<<10, "longest request target, path and query (414 beyond)")
	fs.IntVar(&n.MaxCursorBytes, "max-cursor-bytes", 0, "longest Last-Event-ID (400 beyond; default 64 per max-topics)")
	fs.DurationVar(&n.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time a client has to send its request headers (slow clients are cut off)")
	fs.DurationVar(&n.BodyTimeout, "body-timeout", 10*time.Second, "time a publisher has to send its request body (408 beyond)")
	fs.Float64Var(&o.adminRate, "admin-rate", 20, "admin API requests per second of one source address (429 beyond; negative: no limit)")
	fs.IntVar(&o.adminBurst, "admin-burst", 40, "admin API rate limit burst")
	fs.IntVar(&n.MaxPending, "max-pending-bytes", 1<<20, "most bytes queued for a stream that reads slowly before it is closed")
	fs.IntVar(&n.Cache.Topics, "cache-topics", 10000, "replay cache: most topics")
	fs.IntVar(&n.Cache.PerTopic, "cache-per-topic", 256, "replay cache: most events per topic")
	fs.Int64Var(&n.Cache.Bytes, "cache-bytes", 64<<20, "replay cache: most bytes")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.healthcheck, "healthcheck", false, "check GET /healthz on http-addr (127.0.0.1 for a wildcard host) and exit 0 if it answers 200, else 1 (the container image's HEALTHCHECK)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	// -healthcheck is a command-line mode only: HEALTHCHECK in a node's
	// environment must not turn the node into a probe.
	if err := flagenv.Apply(fs, "", getenv, "healthcheck"); err != nil {
		return nil, err
	}
	if err := o.redis.Validate(); err != nil {
		return nil, err
	}
	if o.redis.Mode() == redisconn.ModeNone && o.waitReplicas != 0 {
		return nil, errors.New("PUBLISH_WAIT_REPLICAS needs Redis (REDIS_URL, REDIS_SENTINEL_URL or REDIS_CLUSTER_URL): the in-memory broker has no replicas")
	}
	if o.waitReplicas < 0 || o.waitReplicas > pubsub.MaxWaitReplicas {
		return nil, fmt.Errorf("PUBLISH_WAIT_REPLICAS %d out of range 0..%d", o.waitReplicas, pubsub.MaxWaitReplicas)
	}
	if o.waitTimeout < time.Millisecond || o.waitTimeout > time.Minute {
		return nil, fmt.Errorf("PUBLISH_WAIT_TIMEOUT %s out of range 1ms..1m", o.waitTimeout)
	}
	n.Version = version
	if o.waitReplicas > 0 {
		// A publish's deadline covers its WAIT too.
		n.PublishTimeout = 5*time.Second + o.waitTimeout
	}
	if n.NodeID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "node"
		}
		n.NodeID = h
	}
	if o.cookieKey != "" {
		n.CookieKey = []byte(o.cookieKey)
	}
	for origin := range strings.SplitSeq(o.corsOrigins, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			n.CORSOrigins = append(n.CORSOrigins, origin)
		}
	}
	o.jwt.Secret = []byte(o.jwtSecret)
	if o.jwt.Leeway == 0 {
		o.jwt.Leeway = -1 // an explicit 0 is no leeway (auth.Config reads 0 as its default)
	}
	if o.jwtKeyFile != "" {
		pem, err := os.ReadFile(o.jwtKeyFile)
		if err != nil {
			return nil, fmt.Errorf("jwt public key: %w", err)
		}
		o.jwt.PublicKeyPEM = pem
	}
	for p := range strings.SplitSeq(o.trustedProxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("trusted proxies: %w", err)
		}
		n.TrustedProxies = append(n.TrustedProxies, prefix)
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, term <-chan os.Signal) error {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	if o.healthcheck {
		return healthcheck(ctx, o.node.Addr)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	var broker pubsub.Broker
	mode := "standalone, in-memory broker (set REDIS_URL, REDIS_SENTINEL_URL or REDIS_CLUSTER_URL to run a cluster)"
	redisMode := o.redis.Mode()
	if redisMode == redisconn.ModeNone {
		broker, err = pubsub.NewMemory(pubsub.MemoryConfig{
			Partitions: o.partitions, MaxLen: o.streamMaxLen, IdempotencyTTL: o.idempotencyTTL,
		})
	} else {
		mode = "cluster, redis broker (" + string(redisMode) + ")"
		broker, err = pubsub.NewRedis(pubsub.RedisConfig{
			URL: o.redis.URL, SentinelURL: o.redis.SentinelURL, ClusterURL: o.redis.ClusterURL, CAFile: o.redis.CAFile,
			Prefix: o.redisPrefix, Partitions: o.partitions,
			MaxLen: o.streamMaxLen, IdempotencyTTL: o.idempotencyTTL, Logger: log,
			WaitReplicas: o.waitReplicas, WaitTimeout: o.waitTimeout,
		})
	}
	if err != nil {
		return err
	}
	defer broker.Close()

	cfg := o.node
	cfg.Logger = log
	if o.jwt.Enabled() {
		v, err := auth.New(o.jwt)
		if err != nil {
			return err
		}
		cfg.Auth = v
	} else {
		warnOpen(log, cfg.PublishToken != "")
	}
	srv, err := node.New(cfg, broker)
	if err != nil {
		return err
	}
	var registry admin.Registry = admin.NewLocalRegistry()
	if redisMode != redisconn.ModeNone {
		rr, err := admin.NewRedisRegistry(admin.RedisRegistryConfig{
			URL: o.redis.URL, SentinelURL: o.redis.SentinelURL, ClusterURL: o.redis.ClusterURL, CAFile: o.redis.CAFile,
			Prefix: o.redisPrefix,
		})
		if err != nil {
			return err
		}
		defer rr.Close()
		registry = rr
	}
	adm, err := admin.New(admin.Config{
		Addr: o.adminAddr, Token: o.adminToken, NodeID: cfg.NodeID,
		Interval: o.adminInterval, TTL: o.adminTTL, Logger: log,
		Rate: o.adminRate, Burst: o.adminBurst,
	}, srv, registry)
	if err != nil {
		return err
	}
	log.Info("starting ssenode",
		"mode", mode,
		"node_id", cfg.NodeID,
		"http_addr", cfg.Addr,
		"redis", redactURL(o.redis.Redacted()),
		"publish_wait_replicas", o.waitReplicas,
		"partitions", o.partitions,
		"publish_token_set", cfg.PublishToken != "",
		"auth", authMode(o.jwt),
		"cors_origins", cfg.CORSOrigins,
		"admin_addr", adm.Addr(),
		"admin_token_set", o.adminToken != "",
		"heartbeat", cfg.Heartbeat.String(),
		"retry_base", cfg.Retry.Base.String(),
		"retry_cap", cfg.Retry.Cap.String(),
		"drain_window", cfg.DrainWindow.String(),
	)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // ends with ctx
		select {
		case <-ctx.Done():
			return
		case <-term:
		}
		log.Info("SIGTERM: draining, then stopping (a second SIGTERM stops at once)", "window", cfg.DrainWindow.String())
		select {
		case <-srv.Drain(0):
		case <-term:
			log.Warn("second SIGTERM: stopping now")
		case <-ctx.Done():
		}
		cancel()
	})
	// The admin API lives as long as the node; a failure of either stops
	// both.
	var adminErr error
	wg.Go(func() {
		if adminErr = adm.Run(ctx); adminErr != nil {
			cancel()
		}
	})
	err = srv.Run(ctx)
	cancel() // the goroutines above end with ctx, also when Run failed
	wg.Wait()
	return errors.Join(err, adminErr)
}

// warnOpen says loudly that the node runs without authorization.
func warnOpen(log *slog.Logger, publishToken bool) {
	publish := "anyone who can reach it may publish to any topic (set PUBLISH_TOKEN or JWT_SECRET)"
	if publishToken {
		publish = "publishing needs PUBLISH_TOKEN"
	}
	log.Warn("AUTHORIZATION IS OFF: no JWT_SECRET or JWT_PUBLIC_KEY_FILE is set, so anyone who can reach this node may subscribe to any topic; " +
		publish + ". Fine on a laptop; never expose an open node to the internet (README: Authorization).")
}

// authMode names the verification keys configured, never their values.
func authMode(c auth.Config) string {
	var m []string
	if len(c.Secret) > 0 {
		m = append(m, "HS256")
	}
	if len(c.PublicKeyPEM) > 0 {
		m = append(m, "public key (RS256/ES256)")
	}
	if len(m) == 0 {
		return "off"
	}
	return "jwt " + strings.Join(m, " + ")
}

// redactURL hides the password of a Redis URL.
func redactURL(u string) string {
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
			return u[:scheme+3] + "***" + u[at:]
		}
	}
	return u
}
