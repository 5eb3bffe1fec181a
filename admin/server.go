package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ssecluster/ssecluster/internal/apierr"
	"github.com/ssecluster/ssecluster/node"
)

// Node is what the admin API needs of a node; *node.Server implements it.
type Node interface {
	// Report returns the node's report at now (GET /admin/v1/node).
	Report(now time.Time) node.Report
	// MergeData returns what cluster figures are merged from.
	MergeData(now time.Time) node.MergeData
	// Topics returns every topic with local subscribers.
	Topics() []node.TopicCount
	// TopicInfo returns a topic's subscribers, stream position and
	// retained history.
	TopicInfo(ctx context.Context, topic string) (node.TopicDetail, error)
	// Connections returns up to limit streams (of topic, when not empty)
	// with ids after after, by id, and the id to continue after (0: done).
	Connections(topic string, limit int, after uint64) ([]node.ConnInfo, uint64)
	// Kick closes stream id with a retry hint (reason kicked); false when
	// there is no such stream.
	Kick(id uint64) bool
	// Drain starts draining the node (node.Server.Drain).
	Drain(window time.Duration) <-chan struct{}
	// DrainStatus returns the drain's progress.
	DrainStatus() node.DrainStatus
}

var _ Node = (*node.Server)(nil)

// Server is a node's admin API. See the package doc.
type Server struct {
	cfg     Config
	addr    string // the listen address: cfg.Addr, made loopback without a token
	nodeID  string
	node    Node
	reg     Registry
	log     *slog.Logger
	echo    *echo.Echo
	metrics *prometheus.Registry
	now     func() time.Time
	// rejected counts the admin listener's error answers (401s included).
	rejected apierr.Counts

	running sync.Mutex // held by Serve: one Serve at a time
}

// New returns the admin API of n, publishing to and reading the cluster
// from reg. It starts nothing: call Run or Serve.
func New(cfg Config, n Node, reg Registry) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if n == nil || reg == nil {
		return nil, errors.New("admin: node and registry are required")
	}
	addr, _, err := listenAddr(cfg.Addr, cfg.Token)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, addr: addr, node: n, reg: reg, now: time.Now}
	s.nodeID = cfg.NodeID
	if s.nodeID == "" {
		s.nodeID = n.Report(s.now()).NodeID
	}
	s.log = cfg.Logger.With("component", "admin", "node_id", s.nodeID)
	s.metrics = newMetrics(n, s.now, &s.rejected)
	s.echo = s.routes()
	return s, nil
}

// Addr returns the address Run listens on: Config.Addr, with its host
// rewritten to 127.0.0.1 when there is no token.
func (s *Server) Addr() string { return s.addr }

// Handler returns the admin HTTP handler (for tests and embedding; the
// registry loop runs only in Serve).
func (s *Server) Handler() http.Handler { return s.echo }

// Run listens on Addr and serves until ctx ends; see Serve.
func (s *Server) Run(ctx context.Context) error {
	if s.addr != s.cfg.Addr {
		s.log.Warn("no admin token: the admin API listens on loopback only (set ADMIN_TOKEN to expose it)",
			"configured_addr", s.cfg.Addr, "addr", s.addr)
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("admin: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves the admin API on ln and runs the registry loop (publish the
// node's report every Interval, take commands every CommandPoll) until ctx
// ends. Then it stops accepting, lets requests finish (5 s at most),
// removes the node from the registry and returns once every goroutine it
// started has ended. It returns a listener failure.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.running.TryLock() {
		_ = ln.Close()
		return errors.New("admin: Serve called twice at once")
	}
	defer s.running.Unlock()

	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // bodies are a few bytes (drain)
		// No WriteTimeout: net/http/pprof's profile and trace run for as
		// long as asked (?seconds=N), and refuse N above a WriteTimeout.
		WriteTimeout:   0,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	var wg sync.WaitGroup
	wg.Go(func() { s.registryLoop(loopCtx) })
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- srv.Serve(ln) })
	s.log.Info("admin listening", "addr", ln.Addr().String(), "token_set", s.cfg.Token != "")

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("admin: serve: %w", err)
	}
	stopLoop()
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil {
		_ = srv.Close()
	}
	wg.Wait()
	// A clean stop leaves the cluster view at once rather than after TTL.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RegistryTimeout)
	defer rcancel()
	if rerr := s.reg.Remove(rctx, s.nodeID); rerr != nil {
		s.log.Warn("leaving the registry", "err", rerr)
	}
	s.log.Info("admin stopped")
	return err
}
