// Command ssenode runs one ssecluster node. With REDIS_URL unset it runs
// standalone on an in-memory broker; with it, it joins the cluster that
// shares that Redis. Every flag has a matching environment variable (the
// flag name upper-cased, dashes as underscores); a flag given on the command
// line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ssecluster/ssecluster/internal/flagenv"
	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/pubsub"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ssenode:", err)
		os.Exit(1)
	}
}

// options is everything configurable, before it becomes component configs.
type options struct {
	httpAddr, adminAddr, adminToken, publishToken, nodeID string
	redisURL, redisPrefix                                 string
	partitions, streamMaxLen                              int
	idempotencyTTL                                        time.Duration
	heartbeat, retryMin, retryMax                         time.Duration
	maxTopics, maxBatch, maxPending                       int
	maxBody                                               int64
	cacheTopics, cachePerTopic                            int
	cacheBytes                                            int64
	logLevel                                              string
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("ssenode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.httpAddr, "http-addr", ":8080", "public HTTP listen address (streams, publish, health)")
	fs.StringVar(&o.adminAddr, "admin-addr", ":9090", "admin API listen address (reserved for the admin API)")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token of the admin API (reserved for the admin API)")
	fs.StringVar(&o.publishToken, "publish-token", "", "when set, POST /v1/publish requires Authorization: Bearer <token>")
	fs.StringVar(&o.nodeID, "node-id", "", "node name in logs and the X-SSE-Node header (default: hostname)")
	fs.StringVar(&o.redisURL, "redis-url", "", "Redis URL, e.g. redis://127.0.0.1:6379/0; unset = standalone in-memory broker")
	fs.StringVar(&o.redisPrefix, "redis-prefix", "sse", "prefix of every Redis key")
	fs.IntVar(&o.partitions, "partitions", 16, "partition streams topics hash into (fixed per cluster)")
	fs.IntVar(&o.streamMaxLen, "stream-maxlen", 0, "events retained per partition (0 = 100000 with Redis, 10000 in memory)")
	fs.DurationVar(&o.idempotencyTTL, "idempotency-ttl", 10*time.Minute, "how long publish idempotency keys are remembered")
	fs.DurationVar(&o.heartbeat, "heartbeat", 15*time.Second, "longest silence on an idle stream")
	fs.DurationVar(&o.retryMin, "retry-min", time.Second, "lowest reconnection hint (retry:) sent to clients")
	fs.DurationVar(&o.retryMax, "retry-max", 5*time.Second, "highest reconnection hint (retry:) sent to clients")
	fs.IntVar(&o.maxTopics, "max-topics", 32, "most topics per stream")
	fs.IntVar(&o.maxBatch, "max-batch", 1000, "most events per publish request")
	fs.Int64Var(&o.maxBody, "max-body-bytes", 1<<20, "largest publish request body")
	fs.IntVar(&o.maxPending, "max-pending-bytes", 1<<20, "most bytes queued for a stream that reads slowly before it is closed")
	fs.IntVar(&o.cacheTopics, "cache-topics", 10000, "replay cache: most topics")
	fs.IntVar(&o.cachePerTopic, "cache-per-topic", 256, "replay cache: most events per topic")
	fs.Int64Var(&o.cacheBytes, "cache-bytes", 64<<20, "replay cache: most bytes")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := flagenv.Apply(fs, "", getenv); err != nil {
		return nil, err
	}
	if o.nodeID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "node"
		}
		o.nodeID = h
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	var broker pubsub.Broker
	mode := "standalone, in-memory broker (set REDIS_URL to run a cluster)"
	if o.redisURL == "" {
		broker, err = pubsub.NewMemory(pubsub.MemoryConfig{
			Partitions: o.partitions, MaxLen: o.streamMaxLen, IdempotencyTTL: o.idempotencyTTL,
		})
	} else {
		mode = "cluster, redis broker"
		broker, err = pubsub.NewRedis(pubsub.RedisConfig{
			URL: o.redisURL, Prefix: o.redisPrefix, Partitions: o.partitions,
			MaxLen: o.streamMaxLen, IdempotencyTTL: o.idempotencyTTL, Logger: log,
		})
	}
	if err != nil {
		return err
	}
	defer broker.Close()

	srv, err := node.New(node.Config{
		Addr:         o.httpAddr,
		NodeID:       o.nodeID,
		PublishToken: o.publishToken,
		MaxTopics:    o.maxTopics,
		Heartbeat:    o.heartbeat,
		RetryMin:     o.retryMin,
		RetryMax:     o.retryMax,
		MaxPending:   o.maxPending,
		MaxBodyBytes: o.maxBody,
		MaxBatch:     o.maxBatch,
		Cache:        node.CacheConfig{Topics: o.cacheTopics, PerTopic: o.cachePerTopic, Bytes: o.cacheBytes},
		Logger:       log,
	}, broker)
	if err != nil {
		return err
	}
	log.Info("starting ssenode",
		"mode", mode,
		"node_id", o.nodeID,
		"http_addr", o.httpAddr,
		"redis_url", redactURL(o.redisURL),
		"partitions", o.partitions,
		"publish_token_set", o.publishToken != "",
		"heartbeat", o.heartbeat.String(),
		"retry", o.retryMin.String()+".."+o.retryMax.String(),
	)
	return srv.Run(ctx)
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
