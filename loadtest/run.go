package loadtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrTimeBound is returned (wrapped, with the report so far) when a run hit
// its overall time bound: the target stalled the ramp or the publisher.
var ErrTimeBound = errors.New("loadtest: run exceeded its time bound")

// Run performs one load run in this process: it opens the streams, waits
// until each has made its first attempt, calls OnReady, waits Warmup, then
// publishes (or, when Idle, holds the streams) for Duration or Count, waits
// up to Drain for events in flight, closes everything and reports. It
// returns the report even when ctx ends early (with ctx's error).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Workers > 1 {
		return nil, errors.New("loadtest: Run holds the streams in-process; use RunWorkers for worker processes")
	}
	pool, err := NewPool(cfg)
	if err != nil {
		return nil, err
	}
	var pub *Publisher
	if !cfg.Idle {
		if pub, err = NewPublisher(cfg); err != nil {
			return nil, err
		}
	}
	r := newReport(cfg)
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.maxRuntime(), ErrTimeBound)
	defer cancel()

	poolCtx, stopPool := context.WithCancel(ctx)
	defer stopPool()
	var wg sync.WaitGroup
	wg.Go(func() { _ = pool.Run(poolCtx) })
	if cfg.Progress != nil {
		wg.Go(func() { progressLoop(poolCtx, cfg, r.Started, pool, pub) })
	}

	var noStreams bool
	select {
	case <-pool.Ready():
		if cfg.OnReady != nil {
			cfg.OnReady(pool.Established())
		}
		if noStreams = cfg.Subs > 0 && pool.Established() == 0; noStreams {
			break // nothing to measure: do not publish into the void
		}
		drive(ctx, cfg, pub, func(published []int64) bool {
			want, got := pool.expected(published)
			return got >= want
		})
	case <-ctx.Done():
	}
	stopPool()
	wg.Wait()

	pool.fill(r)
	r.Self = selfStats()
	r.ElapsedS = time.Since(r.Started).Seconds()
	var ps *PublishStats
	if pub != nil {
		ps = pub.Stats()
	}
	r.finalize(ps)
	if noStreams {
		return r, noStreamsError(r)
	}
	return r, runErr(ctx)
}

// ErrNoStreams is returned (wrapped, with the report) when not one stream
// could be established: the target is down, refuses, or is not an SSE
// endpoint.
var ErrNoStreams = errors.New("loadtest: no stream could be established")

func noStreamsError(r *Report) error {
	why := fmtCounts(r.Connect.FailReasons)
	if len(r.Connect.HTTPStatus) > 0 {
		why += "; http status " + fmtCounts(r.Connect.HTTPStatus)
	}
	return fmt.Errorf("%w to %s (%s)", ErrNoStreams, r.Target, why)
}

// runErr is nil for a run that ended on its own, else why it was cut.
func runErr(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrTimeBound) {
		return cause
	}
	return fmt.Errorf("loadtest: run interrupted: %w", ctx.Err())
}

func newReport(cfg Config) *Report {
	r := &Report{
		Target: cfg.URL, Mode: "publish", Subs: cfg.Subs, Topics: cfg.Topics,
		Workers: max(cfg.Workers, 1), Reconnect: cfg.Reconnect, Started: time.Now(),
	}
	if cfg.Idle {
		r.Mode = "idle"
	} else {
		r.Rate, r.Batch = cfg.Rate, cfg.Batch
	}
	return r
}

// drive is the measured phase once the streams are up: Warmup, then the
// publisher's run (or the idle hold), then up to Drain for events in
// flight. drained, when not nil, reports whether every expected delivery
// arrived, so the drain can end early.
func drive(ctx context.Context, cfg Config, pub *Publisher, drained func(published []int64) bool) {
	if !sleepUntil(ctx, time.Now().Add(cfg.Warmup)) {
		return
	}
	if pub == nil {
		sleepUntil(ctx, time.Now().Add(cfg.Duration))
		return
	}
	_ = pub.Run(ctx) // only fails when run twice
	deadline := time.Now().Add(cfg.Drain)
	for time.Now().Before(deadline) {
		if drained != nil && drained(pub.Published()) {
			return
		}
		if !sleepUntil(ctx, time.Now().Add(20*time.Millisecond)) {
			return
		}
	}
}

// progressLoop writes a progress line every ProgressEvery until ctx ends.
func progressLoop(ctx context.Context, cfg Config, start time.Time, pool *Pool, pub *Publisher) {
	tick := time.NewTicker(cfg.ProgressEvery)
	defer tick.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var line string
		if pool != nil {
			line, last = pool.progress(time.Since(start), last, cfg.ProgressEvery)
		} else {
			line = fmt.Sprintf("t=%s", time.Since(start).Round(time.Second))
		}
		if pub != nil {
			line += fmt.Sprintf(" published=%d", pub.Confirmed())
		}
		cfg.Progress(line)
	}
}
