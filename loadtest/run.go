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
	obs := watch(ctx, cfg)

	poolCtx, stopPool := context.WithCancel(ctx)
	defer stopPool()
	var wg sync.WaitGroup
	wg.Go(func() { _ = pool.Run(poolCtx) })
	if cfg.Progress != nil {
		wg.Go(func() { progressLoop(poolCtx, cfg, r.Started, pool, pub) })
	}
	smp := newSampler(cfg, r.Started, newLiveSource(pool, pub))
	wg.Go(func() { smp.run(poolCtx) })

	var noStreams bool
	select {
	case <-pool.Ready():
		if cfg.OnReady != nil {
			cfg.OnReady(pool.Established())
		}
		if noStreams = cfg.Subs > 0 && pool.Established() == 0; noStreams {
			break // nothing to measure: do not publish into the void
		}
		obs.drive(ctx, cfg, pub, pool.Connected, func(published []int64) bool {
			want, got := pool.expected(published)
			return got >= want
		})
	case <-ctx.Done():
	}
	obs.endAdmin(ctx)
	stopPool()
	wg.Wait()

	pool.fill(r)
	r.Timeline = smp.samples
	r.Self = selfStats()
	r.ElapsedS = time.Since(r.Started).Seconds()
	var ps *PublishStats
	if pub != nil {
		ps = pub.Stats()
	}
	obs.finish(ctx, r)
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
		Scenario: cfg.Scenario, Target: cfg.URL, Mode: "publish", Subs: cfg.Subs, Topics: cfg.Topics,
		Workers: max(cfg.Workers, 1), Reconnect: cfg.Reconnect, Started: time.Now(),
	}
	if cfg.TopicsPerStream > 1 {
		r.TopicsPerStream = cfg.TopicsPerStream
	}
	if cfg.Idle {
		r.Mode = "idle"
	} else {
		r.Rate, r.Batch = cfg.Rate, cfg.Batch
	}
	return r
}

// observers are what a run watches besides its streams: the target's
// processes (Config.NodePIDs), its admin API (Config.AdminURL) and the
// storm it injects. Each part is nil when not configured.
type observers struct {
	nodes    *nodeSampler
	admin    *adminProbe
	adminEnd *AdminStats
	storm    *StormStats
}

// watch takes the "before" samples: call it before the streams start.
func watch(ctx context.Context, cfg Config) *observers {
	return &observers{nodes: newNodeSampler(cfg.NodePIDs), admin: newAdminProbe(ctx, cfg.AdminURL, cfg.AdminToken)}
}

// endAdmin takes the admin API's end snapshot: call it while the streams
// are still open, so the nodes' figures describe the run, not its end.
func (o *observers) endAdmin(ctx context.Context) {
	if o.admin != nil && o.adminEnd == nil {
		o.adminEnd = o.admin.end(ctx)
	}
}

// finish takes the "after" samples into r (before r.finalize).
func (o *observers) finish(ctx context.Context, r *Report) {
	r.Nodes = o.nodes.stats(r.Delivery.Delivered)
	o.endAdmin(ctx) // if the run ended before its streams were up
	r.Admin = o.adminEnd
	r.Storm = o.storm
}

// drive is the measured phase once the streams are up: Warmup, then the
// publisher's run (with the storm, if any) or the idle hold, the nodes'
// "loaded" sample (streams tells how many streams are up), then up to Drain
// for events in flight. drained, when not nil, reports whether every
// expected delivery arrived, so the drain can end early.
func (o *observers) drive(ctx context.Context, cfg Config, pub *Publisher, streams func() int64, drained func(published []int64) bool) {
	if !sleepUntil(ctx, time.Now().Add(cfg.Warmup)) {
		return
	}
	o.nodes.up()
	if pub == nil {
		sleepUntil(ctx, time.Now().Add(cfg.Duration))
		o.nodes.loaded(streams())
		return
	}
	var wg sync.WaitGroup
	if cfg.Storm.Set() {
		start := time.Now()
		wg.Go(func() { o.storm = cfg.Storm.run(ctx, start) })
	}
	_ = pub.Run(ctx) // only fails when run twice
	o.nodes.loaded(streams())
	wg.Wait()
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
	m := newProgressMeter(cfg, start, newLiveSource(pool, pub))
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cfg.Progress(m.line(time.Now()))
	}
}
