package node

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// drainer is the state of a drain: /readyz turns 503 and new streams are
// refused at once, then the node's streams are closed one by one, spread
// evenly over the window, each with its own jittered retry hint, so the
// reconnect wave reaches the other nodes as a steady trickle.
type drainer struct {
	active atomic.Bool
	req    chan time.Duration // cap 1: the first Drain's window
	done   chan struct{}      // closed when every stream was closed (by the drain, or by the node stopping during it)

	mu      sync.Mutex // guards what follows
	started time.Time
	window  time.Duration
	total   int
	closed  int
}

func newDrainer() drainer {
	return drainer{req: make(chan time.Duration, 1), done: make(chan struct{})}
}

// DrainStatus is the progress of a drain.
type DrainStatus struct {
	Draining bool          `json:"draining"`
	Started  time.Time     `json:"started_at,omitzero"`
	Window   time.Duration `json:"-"`
	WindowS  float64       `json:"window_s"`
	Streams  int           `json:"streams"` // streams to close (those open when it started)
	Closed   int           `json:"closed"`  // closed so far
	Done     bool          `json:"done"`
}

// Drain starts draining the node over window (Config.DrainWindow when 0):
// it is not ready from now on and refuses new streams, and closes its
// streams spread evenly over the window. Only the first call starts a
// drain; every call returns a channel closed once the drain is over. The
// node keeps running (publishes are served) until its Serve ends.
func (s *Server) Drain(window time.Duration) <-chan struct{} {
	if window <= 0 {
		window = s.cfg.DrainWindow
	}
	if s.drain.active.CompareAndSwap(false, true) {
		s.log.Info("draining", "window", window.String(), "streams", s.conns.len())
		s.drain.mu.Lock()
		s.drain.started, s.drain.window = time.Now(), window
		s.drain.mu.Unlock()
		s.drain.req <- window // cap 1, first and only send
	}
	return s.drain.done
}

// DrainStatus returns the progress of the drain.
func (s *Server) DrainStatus() DrainStatus {
	d := &s.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	st := DrainStatus{Draining: d.active.Load(), Started: d.started, Window: d.window, WindowS: d.window.Seconds(), Streams: d.total, Closed: d.closed}
	select {
	case <-d.done:
		st.Done = true
	default:
	}
	return st
}

// drainLoop performs the drain when one is asked for, until ctx ends.
func (s *Server) drainLoop(ctx context.Context) {
	var window time.Duration
	select {
	case <-ctx.Done():
		return
	case window = <-s.drain.req:
	}
	d := &s.drain
	finished := false
	defer func() {
		if !finished { // the node stopped first: its shutdown closes the rest
			close(d.done)
		}
	}()
	d.mu.Lock()
	start := d.started
	d.mu.Unlock()
	var conns []*conn
	for i := range registryShards {
		conns = s.conns.shard(i, conns)
	}
	rand.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	d.mu.Lock()
	d.total = len(conns)
	d.mu.Unlock()
	n := len(conns)
	for i, c := range conns {
		// Stream i closes in the middle of the i-th of n equal slots.
		due := start.Add(time.Duration((float64(i) + 0.5) / float64(n) * float64(window)))
		if !sleepCtx(ctx, time.Until(due)) {
			return
		}
		c.close(ReasonDrain)
		d.mu.Lock()
		d.closed++
		d.mu.Unlock()
	}
	// Streams that were being set up when the drain began. (With no
	// stream to close there is nothing to spread: the drain is over.)
	s.closeAll(ReasonDrain)
	s.log.Info("drained", "streams", n, "took", time.Since(start).Round(time.Millisecond).String())
	finished = true
	close(d.done)
}
