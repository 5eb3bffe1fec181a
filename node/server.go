package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/ssecluster/ssecluster/node/auth"
	"github.com/ssecluster/ssecluster/node/latency"
	"github.com/ssecluster/ssecluster/node/retry"
	"github.com/ssecluster/ssecluster/node/survival"
	"github.com/ssecluster/ssecluster/pubsub"
)

// Server is one ssecluster node.
type Server struct {
	cfg    Config
	log    *slog.Logger
	broker pubsub.Broker
	echo   *echo.Echo
	hub    *hub
	cache  *replayCache
	conns  *registry
	stats  Stats

	// Measurements for the admin API (report.go).
	started time.Time
	version string
	mode    string
	lat     *latency.Recorder // push latency of live deliveries
	life    *survival.Log     // stream lifetimes
	probe   brokerProbe

	nextID   atomic.Uint64
	stopping atomic.Bool // shutdown began: not ready, new streams shed
	running  atomic.Bool

	publishToken auth.StaticToken // Config.PublishToken

	codec    atomic.Pointer[retry.Codec] // signs retry cookies; nil until the key is known
	admitLim *rate.Limiter               // new streams per second; nil: no limit
	addrs    *addrTable                  // per-address limits; nil: none
	drain    drainer

	handlers sync.WaitGroup // /v1/events handlers still replaying
	flushers sync.WaitGroup // conn flusher goroutines

	deadMu sync.Mutex
	dead   []*conn       // closed conns waiting for the reaper
	poke   chan struct{} // cap 1: wakes the reaper
}

// New returns a node serving cfg on broker b. It starts nothing: call Run
// or Serve.
func New(cfg Config, b pubsub.Broker) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("node: broker is required")
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "node", "node_id", cfg.NodeID),
		broker: b,
		conns:  newRegistry(),
		poke:   make(chan struct{}, 1),
		addrs:  newAddrTable(cfg.MaxStreamsPerAddr, cfg.ConnectRatePerAddr),
		drain:  newDrainer(),

		publishToken: auth.NewStaticToken(cfg.PublishToken),
	}
	if cfg.AdmitRate > 0 {
		s.admitLim = rate.NewLimiter(rate.Limit(cfg.AdmitRate), cfg.AdmitBurst)
	}
	if err := s.initReport(); err != nil {
		return nil, err
	}
	s.cache = newReplayCache(cfg.Cache, b.Partitions())
	s.hub = newHub(s.log, b.Partitions(), s.cache, &s.stats)
	s.echo = s.routes()
	return s, nil
}

// Stats returns the node's live counters.
func (s *Server) Stats() *Stats { return &s.stats }

// OpenStreams returns how many streams the node holds: accepted and not yet
// unregistered after they closed.
func (s *Server) OpenStreams() int { return s.conns.len() }

// Handler returns the node's HTTP handler (for embedding and tests; the
// node still needs Run or Serve to read the broker).
func (s *Server) Handler() http.Handler { return s.echo }

// Run listens on Config.Addr and serves until ctx ends; see Serve.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("node: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves HTTP on ln and reads the broker until ctx ends, then shuts
// down: /readyz turns 503, the listener closes, every stream gets a retry
// hint and is closed, the broker reader stops, and Serve returns once every
// goroutine it started has ended. It returns the first fatal error (a
// broker misconfiguration, a listener failure).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("node: Serve called twice")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       0, // streams live for hours; bodies get BodyTimeout (limitRequest)
		WriteTimeout:      0, // a server-wide write timeout kills streams; per-write deadlines instead
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    s.cfg.hardHeaderCap(),
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}

	var wg sync.WaitGroup
	brokerCtx, stopBroker := context.WithCancel(context.Background())
	defer stopBroker()
	wg.Go(func() {
		if err := s.broker.Run(brokerCtx, s.hub); err != nil {
			cancel(fmt.Errorf("node: broker: %w", err))
		}
	})
	wg.Go(func() { s.sweep(ctx) })
	wg.Go(func() { s.loadCookieKey(ctx) })
	wg.Go(func() { s.drainLoop(ctx) })
	wg.Go(func() { s.probeLoop(ctx) })
	reaperCtx, stopReaper := context.WithCancel(context.Background())
	defer stopReaper()
	wg.Go(func() { s.reapLoop(reaperCtx) })
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	s.log.Info("node listening", "addr", ln.Addr().String(), "version", s.version)
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		cancel(fmt.Errorf("node: serve: %w", err))
		serveErr <- nil
	}

	// Shutdown, in order: not ready; stop accepting and let short requests
	// (publishes) finish; close every stream with a retry hint; stop
	// reading the broker; wait for everything.
	s.stopping.Store(true)
	shutCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if err := srv.Shutdown(shutCtx); err != nil {
		s.log.Warn("http shutdown", "err", err)
		_ = srv.Close()
	}
	<-serveErr
	s.closeAll(ReasonShutdown)
	s.handlers.Wait() // handlers see their conn closed and return
	s.closeAll(ReasonShutdown)
	stopBroker()
	s.flushers.Wait()
	stopReaper()
	wg.Wait()
	s.reapNow() // what closed after the reaper stopped
	s.log.Info("node stopped")
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// closeAll closes every registered stream.
func (s *Server) closeAll(reason CloseReason) {
	var batch []*conn
	for i := range registryShards {
		batch = s.conns.shard(i, batch[:0])
		for _, c := range batch {
			c.close(reason)
		}
	}
}

// reap queues a closed conn for unregistration. It never blocks and takes
// no partition lock, so conns can close under any lock.
func (s *Server) reap(c *conn) {
	s.deadMu.Lock()
	s.dead = append(s.dead, c)
	s.deadMu.Unlock()
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

func (s *Server) reapLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.poke:
			s.reapNow()
		}
	}
}

func (s *Server) reapNow() {
	s.deadMu.Lock()
	dead := s.dead
	s.dead = nil
	s.deadMu.Unlock()
	for _, c := range dead {
		if c.expiry != nil {
			c.expiry.Stop()
		}
		s.hub.unregister(c)
		s.conns.remove(c)
		s.addrs.release(c.addr)
		s.life.CloseAt(c.life, uint8(c.reason), c.closedAt) // before the counter: a report showing the close has it in both
		s.stats.Closed[c.reason].Add(1)
	}
}

// sweep walks one registry shard per tick so every stream is visited every
// Heartbeat/2 (see conn.heartbeat).
func (s *Server) sweep(ctx context.Context) {
	tick := time.NewTicker(s.cfg.Heartbeat / 2 / registryShards)
	defer tick.Stop()
	w := newWctx()
	probe := make([]byte, 512)
	var batch []*conn
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		batch = s.conns.shard(i, batch[:0])
		for _, c := range batch {
			c.heartbeat(w, s.hub, probe)
		}
		clear(batch)
		s.addrs.prune(i, time.Now(), time.Minute)
	}
}

// ready reports whether the node should get new streams.
func (s *Server) ready(ctx context.Context) error {
	if s.stopping.Load() {
		return errors.New("shutting down")
	}
	if s.drain.active.Load() {
		return errors.New("draining")
	}
	if !s.hub.started() {
		return errors.New("broker not read yet")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := s.broker.Ping(ctx)
	s.probe.set(err == nil, time.Now())
	if err != nil {
		// Not echoed: /readyz is public and the cause names Redis's address.
		s.log.Debug("not ready", "err", err)
		return errors.New("broker unreachable")
	}
	return nil
}
