// Command sseload is the SSE load generator of ssecluster: it holds many
// event streams against a node, publishes at a fixed rate, and reports
// delivery, loss, ordering and end-to-end latency. See package loadtest.
//
//	sseload -url http://127.0.0.1:8080 -subs 5000 -topics 1 -rate 10 -duration 60s -warmup 5s -json out.json
//	sseload -url http://127.0.0.1:8080 -subs 10000 -idle -duration 30s -ready-file /tmp/ready
//	sseload -url http://127.0.0.1:8080 -subs 30000 -workers 2 -source-ips 4 -rate 10 -duration 60s
//
// Every flag has an environment variable: SSELOAD_ and the flag name
// upper-cased, dashes as underscores (SSELOAD_URL, SSELOAD_SUBS, ...); a
// flag given on the command line wins.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/ssecluster/ssecluster/internal/flagenv"
	"github.com/ssecluster/ssecluster/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "sseload:", err)
		os.Exit(1)
	}
}

// options is the command line, before it becomes a loadtest.Config.
type options struct {
	cfg       loadtest.Config
	sourceIPs int
	jsonFile  string
	readyFile string
	progress  time.Duration
	logLevel  string
	cpuProf   string
	worker    bool
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	c := &o.cfg
	fs := flag.NewFlagSet("sseload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "target base URL (a node or a load balancer)")
	fs.StringVar(&c.PublishToken, "publish-token", "", "bearer token for POST /v1/publish")
	fs.IntVar(&c.Subs, "subs", 1000, "streams to hold (all workers together)")
	fs.IntVar(&c.Topics, "topics", 1, "topics; stream i subscribes to topic i % topics, events go round-robin")
	fs.StringVar(&c.TopicPrefix, "topic-prefix", loadtest.DefaultTopicPrefix, "topic names are <prefix>-<index>")
	fs.Float64Var(&c.Ramp, "ramp", loadtest.DefaultRamp, "new streams per second")
	fs.IntVar(&o.sourceIPs, "source-ips", 0, "bind streams to 127.0.0.1..127.0.0.N in turn (split over workers); 0: kernel's choice")
	fs.BoolVar(&c.Reconnect, "reconnect", false, "reconnect dropped streams like a browser (retry hint, Last-Event-ID)")
	fs.BoolVar(&c.Idle, "idle", false, "hold the streams for -duration and publish nothing (memory measurements)")
	fs.Float64Var(&c.Rate, "rate", 10, "events per second, over all topics")
	fs.Int64Var(&c.Count, "count", 0, "stop publishing after this many events (0: -duration only)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "publishing time (or idle hold time)")
	fs.DurationVar(&c.Warmup, "warmup", 0, "pause between all streams being up and the first publish")
	fs.DurationVar(&c.Drain, "drain", loadtest.DefaultDrain, "longest wait for events in flight after the last publish")
	fs.IntVar(&c.Batch, "batch", 1, "most events per publish request (only events already due are batched)")
	fs.IntVar(&c.PublishConns, "publish-conns", loadtest.DefaultPublishConns, "publish requests in flight (one keep-alive connection each)")
	fs.IntVar(&c.Workers, "workers", 1, "child processes holding the streams (about 18k streams per process at most)")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", loadtest.DefaultDialTimeout, "TCP connect timeout")
	fs.DurationVar(&c.HeadTimeout, "head-timeout", loadtest.DefaultHeadTimeout, "timeout for connect plus response head (and publish requests)")
	fs.StringVar(&o.jsonFile, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&o.readyFile, "ready-file", "", "write the number of established streams to this file once every stream made its first attempt")
	fs.DurationVar(&o.progress, "progress", 5*time.Second, "progress line interval on stderr (0: none)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile of this process (not of workers) to this file")
	fs.BoolVar(&o.worker, "worker", false, "internal: run as a worker process of -workers (config on stdin)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := flagenv.Apply(fs, "SSELOAD_", getenv, "worker"); err != nil {
		return nil, err
	}
	addrs, err := loadtest.LoopbackAddrs(o.sourceIPs)
	if err != nil {
		return nil, err
	}
	c.SourceAddrs = addrs
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	if o.worker {
		return loadtest.RunWorker(ctx, stdin, stdout)
	}
	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	cfg := o.cfg
	cfg.Logger = log
	if o.progress > 0 {
		cfg.ProgressEvery = o.progress
		cfg.Progress = func(line string) { fmt.Fprintln(stderr, "sseload:", line) }
	}
	if o.readyFile != "" {
		cfg.OnReady = func(established int64) {
			if err := os.WriteFile(o.readyFile, []byte(strconv.FormatInt(established, 10)+"\n"), 0o644); err != nil {
				log.Error("writing the ready file", "err", err)
			}
		}
	}
	var rep *loadtest.Report
	if cfg.Workers > 1 {
		exe, xerr := os.Executable()
		if xerr != nil {
			return fmt.Errorf("finding this program for its workers: %w", xerr)
		}
		rep, err = loadtest.RunWorkers(ctx, cfg, func(int) *exec.Cmd {
			cmd := exec.Command(exe, "-worker", "-log-level", o.logLevel)
			cmd.Stderr = stderr
			return cmd
		})
	} else {
		rep, err = loadtest.Run(ctx, cfg)
	}
	if rep == nil {
		return err
	}
	if werr := rep.WriteText(stdout); werr != nil {
		err = errors.Join(err, werr)
	}
	if o.jsonFile != "" {
		b, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(o.jsonFile, append(b, '\n'), 0o644)
		}
		if jerr != nil {
			err = errors.Join(err, fmt.Errorf("writing %s: %w", o.jsonFile, jerr))
		}
	}
	return err
}
