package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// Worker processes. One process can hold about 19k sockets (its
// file-descriptor limit), so large runs split the streams over child
// processes of the same program. The protocol is line-based JSON over the
// child's standard streams:
//
//	parent -> stdin:  one line, the child's Config (its share of Subs, First, SourceAddrs)
//	child -> stdout:  one line {"ready":true,"established":N} once its streams made their first attempt
//	parent:           closes stdin when the run is over
//	child -> stdout:  its Report (not finalized: per-topic arrays included), then it exits
//
// The parent publishes; children only hold streams. Logs go to stderr.

// WorkerCommand returns an unstarted command that runs RunWorker in a new
// process (for sseload: the sseload binary with its -worker flag). k is the
// worker's index. RunWorkers sets Stdin and Stdout; the caller sets the
// rest (Stderr, environment).
type WorkerCommand func(k int) *exec.Cmd

// workerConfig is the parent's line to a child: its share of the run and
// the stream token, which Config keeps out of its JSON (reports). The pipe
// is the child's stdin: no other process sees it.
type workerConfig struct {
	Config
	Token string `json:"subscribe_token,omitempty"`
}

// workerReady is the child's first stdout line.
type workerReady struct {
	Ready       bool  `json:"ready"`
	Established int64 `json:"established"`
}

// stopGrace is how long a child may take to write its report after its
// stdin closed, before it is killed.
const stopGrace = 30 * time.Second

// shares splits cfg into n worker configs: streams, global first index,
// ramp and source addresses divided; each child holds streams only.
func shares(cfg Config, n int) []Config {
	out := make([]Config, n)
	first := cfg.First
	perAddr := len(cfg.SourceAddrs) / n
	for k := range out {
		c := cfg
		c.Subs = cfg.Subs / n
		if k < cfg.Subs%n {
			c.Subs++
		}
		c.First = first
		first += c.Subs
		c.Ramp = cfg.Ramp / float64(n)
		c.Workers = 0
		if perAddr > 0 {
			c.SourceAddrs = cfg.SourceAddrs[k*perAddr : (k+1)*perAddr]
		}
		c.OnReady, c.Progress, c.Logger = nil, nil, nil
		out[k] = c
	}
	return out
}

// child is the parent's handle on one worker process.
type child struct {
	k      int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ready  chan workerReady // gets the ready line, once
	report *Report          // valid after done
	err    error            // valid after done
	done   chan struct{}
}

// RunWorkers performs the run of Run with the streams split over
// cfg.Workers child processes started by cmd, and this process publishing.
// The children's reports are merged into one (histograms merged, counts
// added). Every child is stopped before it returns, killed if need be.
func RunWorkers(ctx context.Context, cfg Config, cmd WorkerCommand) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Workers < 2 {
		return nil, errors.New("loadtest: RunWorkers needs at least 2 workers")
	}
	var pub *Publisher
	if !cfg.Idle {
		var err error
		if pub, err = NewPublisher(cfg); err != nil {
			return nil, err
		}
	}
	r := newReport(cfg)
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.maxRuntime(), ErrTimeBound)
	defer cancel()
	obs := watch(ctx, cfg)

	var children []*child
	stopAll := func() {
		for _, c := range children {
			_ = c.stdin.Close()
		}
		grace := time.NewTimer(stopGrace)
		defer grace.Stop()
		for _, c := range children {
			select {
			case <-c.done:
			case <-grace.C:
				_ = c.cmd.Process.Kill()
				<-c.done
			}
		}
	}
	for k, share := range shares(cfg, cfg.Workers) {
		c, err := startChild(k, cmd(k), share)
		if err != nil {
			stopAll()
			return nil, err
		}
		children = append(children, c)
	}

	var established int64
	for _, c := range children {
		select {
		case rd := <-c.ready:
			established += rd.Established
		case <-c.done:
			stopAll()
			return nil, fmt.Errorf("loadtest: worker %d ended before its streams were up: %w", c.k, c.err)
		case <-ctx.Done():
			stopAll()
			return nil, runErr(ctx)
		}
	}
	if cfg.OnReady != nil {
		cfg.OnReady(established)
	}
	if cfg.Subs > 0 && established == 0 {
		stopAll()
		for _, c := range children {
			if c.err == nil {
				r.Merge(c.report)
			}
		}
		r.finalize(nil)
		return r, noStreamsError(r)
	}
	var wg sync.WaitGroup
	pctx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	if cfg.Progress != nil {
		wg.Go(func() { progressLoop(pctx, cfg, r.Started, nil, pub) })
	}
	smp := newSampler(cfg, r.Started, newLiveSource(nil, pub)) // the streams' figures come from the workers' timelines
	if pub != nil {
		wg.Go(func() { smp.run(pctx) })
	}
	// The children cannot be asked: drain for the whole Drain.
	obs.drive(ctx, cfg, pub, func() int64 { return established }, nil)
	obs.endAdmin(ctx)
	stopProgress()
	wg.Wait()
	r.Timeline = smp.samples
	stopAll()

	var errs []error
	for _, c := range children {
		if c.err != nil {
			errs = append(errs, fmt.Errorf("loadtest: worker %d: %w", c.k, c.err))
			continue
		}
		r.Merge(c.report)
	}
	r.Self.add(selfStats())
	r.ElapsedS = time.Since(r.Started).Seconds()
	var ps *PublishStats
	if pub != nil {
		ps = pub.Stats()
	}
	obs.finish(ctx, r)
	r.finalize(ps)
	errs = append(errs, runErr(ctx))
	return r, errors.Join(errs...)
}

// startChild starts worker k, sends it its config and starts reading its
// answers.
func startChild(k int, cmd *exec.Cmd, share Config) (*child, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("loadtest: worker %d: %w", k, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("loadtest: worker %d: %w", k, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: start worker %d: %w", k, err)
	}
	c := &child{k: k, cmd: cmd, stdin: stdin, ready: make(chan workerReady, 1), done: make(chan struct{})}
	line, err := json.Marshal(workerConfig{Config: share, Token: share.SubscribeToken})
	if err == nil {
		_, err = stdin.Write(append(line, '\n'))
	}
	if err != nil {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("loadtest: configure worker %d: %w", k, err)
	}
	go c.read(stdout) // owned by the child handle: ends when the process exits; done waited by stopAll
	return c, nil
}

// read takes the ready line and the report from the child's stdout, then
// waits for the process.
func (c *child) read(stdout io.Reader) {
	defer close(c.done)
	br := bufio.NewReader(stdout)
	var errs []error
	line, err := br.ReadBytes('\n')
	var rd workerReady
	if err == nil {
		err = json.Unmarshal(line, &rd)
	}
	if err == nil && rd.Ready {
		c.ready <- rd
		var rep Report
		if err := json.NewDecoder(br).Decode(&rep); err != nil {
			errs = append(errs, fmt.Errorf("reading its report: %w", err))
		} else {
			c.report = &rep
		}
	} else {
		errs = append(errs, fmt.Errorf("reading its ready line: %v", err))
	}
	_, _ = io.Copy(io.Discard, br)
	if err := c.cmd.Wait(); err != nil {
		errs = append(errs, err)
	}
	c.err = errors.Join(errs...)
}

// RunWorker is the child side of RunWorkers: it reads its Config from the
// first line of stdin, holds the streams, writes the ready line to stdout,
// and when stdin ends (or its own time bound passes) closes the streams and
// writes its report to stdout.
func RunWorker(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	br := bufio.NewReader(stdin)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("loadtest: worker: reading config: %w", err)
	}
	var wc workerConfig
	if err := json.Unmarshal(line, &wc); err != nil {
		return fmt.Errorf("loadtest: worker: config: %w", err)
	}
	cfg := wc.Config
	cfg.SubscribeToken = wc.Token
	cfg = cfg.withDefaults()
	cfg.Workers = 0
	pool, err := NewPool(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.maxRuntime(), ErrTimeBound)
	defer cancel()
	poolCtx, stopPool := context.WithCancel(ctx)
	defer stopPool()
	var wg sync.WaitGroup
	wg.Go(func() { _ = pool.Run(poolCtx) })
	// Owned by RunWorker, not waited: it ends when the parent closes stdin,
	// which it always does (or the process exits).
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, br)
		close(eof)
	}()

	r := newReport(cfg)
	smp := newSampler(cfg, r.Started, newLiveSource(pool, nil)) // the parent publishes
	wg.Go(func() { smp.run(poolCtx) })
	select {
	case <-pool.Ready():
		b, _ := json.Marshal(workerReady{Ready: true, Established: pool.Established()})
		if _, err := stdout.Write(append(b, '\n')); err != nil {
			stopPool()
			wg.Wait()
			return fmt.Errorf("loadtest: worker: %w", err)
		}
		select {
		case <-eof:
		case <-ctx.Done():
		}
	case <-eof:
	case <-ctx.Done():
	}
	stopPool()
	wg.Wait()
	pool.fill(r)
	r.Timeline = smp.samples
	r.Self = selfStats()
	if err := json.NewEncoder(stdout).Encode(r); err != nil {
		return fmt.Errorf("loadtest: worker: writing report: %w", err)
	}
	return runErr(ctx)
}
