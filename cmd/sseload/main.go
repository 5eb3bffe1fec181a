// Command sseload is the SSE load tester of ssecluster: it holds many real
// event streams against a node or a load balancer, publishes at a known
// rate, and reports what every stream saw: delivery, loss, duplicates,
// order, end-to-end latency, connect times, reconnects and survival. See
// package loadtest.
//
//	sseload <scenario> --target URL --conns N --rate R --duration D --json FILE
//
//	sseload capacity --target http://127.0.0.1:8080 --conns 10000 --duration 30s --node-pid 1234
//	sseload fanout   --target http://127.0.0.1:8080 --conns 5000 --rate 10 --duration 60s --html fanout.html
//	sseload topics   --target http://127.0.0.1:8080 --conns 5000 --rate 3000 --duration 30s
//	sseload storm    --target http://127.0.0.1:8000 --conns 3000 --rate 100 --duration 40s --storm-signal KILL --storm-pid 1234
//	sseload run      --events-url 'http://127.0.0.1:3000/sse?ch={topic}' --publish-url http://127.0.0.1:3000/pub --publish-body '{"ch":"{topic}","msg":{payload_str}}' --conns 100
//
// Every flag has an environment variable: SSELOAD_ and the flag name
// upper-cased, dashes as underscores (SSELOAD_TARGET, SSELOAD_CONNS,
// SSELOAD_ADMIN_TOKEN, ...); a flag on the command line wins.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
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
	nodePIDs  string
	jsonFile  string
	htmlFile  string
	readyFile string
	progress  time.Duration
	logLevel  string
	cpuProf   string
	worker    bool
}

// workerFlag is the internal flag that runs a worker process of --workers.
const workerFlag = "-worker"

const usageHead = `usage: sseload <scenario> [flags]

Scenarios:
  capacity  --conns idle streams held for --duration: connect times; with --node-pid, the target's RSS per stream
  fanout    --conns streams on one topic, --rate events/s for --duration
  topics    --conns streams, each on its own topic, --rate events/s round-robin
  storm     --conns streams that reconnect like browsers, publishing; at --storm-at the fault
            (--storm-signal SIG --storm-pid PID, or --storm-cmd CMD): the reconnect wave and resume exactness
  run       every figure from the flags

Flags (each also as SSELOAD_<NAME>; defaults shown are the scenario's):
`

func parse(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	if len(args) > 0 && (args[0] == workerFlag || args[0] == "-"+workerFlag) {
		o.worker = true
		args = args[1:]
	}
	scenario := loadtest.ScenarioRun
	if !o.worker {
		if len(args) == 0 {
			return nil, fmt.Errorf("missing scenario: want one of %s (sseload -h for help)", strings.Join(loadtest.Scenarios(), ", "))
		}
		switch args[0] {
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stderr, usageHead)
			fs, _ := flags(o, loadtest.ScenarioRun, stderr)
			fs.PrintDefaults()
			return nil, flag.ErrHelp
		}
		if strings.HasPrefix(args[0], "-") {
			return nil, fmt.Errorf("the scenario comes first: sseload <%s> [flags]", strings.Join(loadtest.Scenarios(), "|"))
		}
		scenario, args = args[0], args[1:]
	}
	fs, err := flags(o, scenario, stderr)
	if err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := flagenv.Apply(fs, "SSELOAD_", getenv); err != nil {
		return nil, err
	}
	if o.worker {
		return o, nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true }) // command line and environment
	return o, o.resolve(set)
}

// flags declares the flags into o, with the scenario's preset as defaults.
func flags(o *options, scenario string, stderr io.Writer) (*flag.FlagSet, error) {
	c := &o.cfg
	preset, err := loadtest.Scenario(scenario)
	if err != nil {
		return nil, err
	}
	*c = preset
	fs := flag.NewFlagSet("sseload "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.URL, "target", "http://127.0.0.1:8080", "target base URL: a node or a load balancer")
	fs.IntVar(&c.Subs, "conns", preset.Subs, "streams to hold (all workers together)")
	fs.Float64Var(&c.Rate, "rate", preset.Rate, "events per second over all topics")
	fs.DurationVar(&c.Duration, "duration", preset.Duration, "publishing time (capacity: holding time)")
	fs.StringVar(&o.jsonFile, "json", "", "write the report as JSON to this file")
	fs.StringVar(&o.htmlFile, "html", "", "write the report as an HTML page with charts to this file")
	fs.IntVar(&c.Topics, "topics", preset.Topics, "topics; stream i subscribes to topic i % topics (topics scenario: one per stream)")
	fs.IntVar(&c.TopicsPerStream, "topics-per-stream", 1, "topics of each stream (one request, a topic parameter each): stream i takes N consecutive topics from (i*N) % topics; each topic's sequence is checked on its own")
	fs.StringVar(&c.TopicPrefix, "topic-prefix", loadtest.DefaultTopicPrefix, "topic names are <prefix>-<index>")
	fs.Float64Var(&c.Ramp, "ramp", preset.Ramp, "new streams per second")
	fs.IntVar(&c.Workers, "workers", 0, fmt.Sprintf("worker processes holding the streams; 0: one per %d streams", loadtest.StreamsPerWorker))
	fs.IntVar(&o.sourceIPs, "source-ips", -1, "bind streams to 127.0.0.1..127.0.0.N in turn (a port range each); -1: enough for --conns on a loopback target, 0: kernel's choice")
	fs.BoolVar(&c.Reconnect, "reconnect", preset.Reconnect, "reconnect dropped streams like a browser (retry hint, Last-Event-ID)")
	fs.Int64Var(&c.Count, "count", 0, "stop publishing after this many events (0: --duration only)")
	fs.DurationVar(&c.Warmup, "warmup", preset.Warmup, "pause between all streams being up and the first publish")
	fs.DurationVar(&c.Drain, "drain", cmpOr(preset.Drain, loadtest.DefaultDrain), "longest wait for events in flight after the last publish")
	fs.IntVar(&c.Batch, "batch", 1, "most events per publish request (only events already due are batched)")
	fs.IntVar(&c.Burst, "burst", 0, "publish in bursts of this many events at once (mean rate stays --rate)")
	fs.IntVar(&c.PublishConns, "publish-conns", loadtest.DefaultPublishConns, "publish requests in flight (one keep-alive connection each)")
	fs.DurationVar(&c.PublishRetry, "publish-retry", 0, "send a batch with an unknown or transient outcome again (same idempotency keys) for this long (0: 6 attempts, ~3 s)")
	fs.StringVar(&c.PublishToken, "publish-token", "", "bearer token for publishing (better: SSELOAD_PUBLISH_TOKEN)")
	fs.StringVar(&c.SubscribeToken, "subscribe-token", "", "bearer token for streams, on a target with authorization on (better: SSELOAD_SUBSCRIBE_TOKEN)")
	fs.StringVar(&c.EventsURL, "events-url", "", "generic target: stream URL with {topic} (default <target>/v1/events?topic={topic})")
	fs.StringVar(&c.PublishURL, "publish-url", "", "generic target: POST one event per request to this URL")
	fs.StringVar(&c.PublishBody, "publish-body", "", "generic target: body template with {topic}, {payload} (JSON object) or {payload_str} (JSON string)")
	fs.StringVar(&o.nodePIDs, "node-pid", "", "comma-separated pids of the target's processes on this machine: RSS per stream, CPU")
	fs.StringVar(&c.AdminURL, "admin-url", "", "ssecluster admin base URL: print the nodes' own figures (GET /admin/v1/nodes) beside ours")
	fs.StringVar(&c.AdminToken, "admin-token", "", "admin bearer token (better: SSELOAD_ADMIN_TOKEN)")
	fs.DurationVar(&c.Storm.At, "storm-at", 0, "when the storm's fault comes, from the first publish (default: a third of --duration)")
	fs.StringVar(&c.Storm.Signal, "storm-signal", "", "storm: signal to send to --storm-pid (KILL, TERM, STOP, CONT, INT, HUP)")
	fs.IntVar(&c.Storm.PID, "storm-pid", 0, "storm: the process to signal")
	fs.StringVar(&c.Storm.Cmd, "storm-cmd", "", "storm: shell command that injects the fault (run with sh -c)")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", loadtest.DefaultDialTimeout, "TCP connect timeout")
	fs.DurationVar(&c.HeadTimeout, "head-timeout", loadtest.DefaultHeadTimeout, "timeout for connect plus response head (and publish requests)")
	fs.StringVar(&o.readyFile, "ready-file", "", "write the number of established streams to this file once every stream made its first attempt")
	fs.DurationVar(&o.progress, "progress", 5*time.Second, "progress line interval on stderr (0: none)")
	fs.DurationVar(&c.SampleEvery, "sample-every", cmpOr(preset.SampleEvery, loadtest.DefaultSampleEvery), "timeline period (charts, peak connect rate); storm waves want 100ms")
	fs.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile of this process (not of workers) to this file")
	return fs, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d != 0 {
		return d
	}
	return def
}

// resolve applies what depends on several flags: the topics scenario's
// topic per stream, automatic workers and source addresses, the storm.
func (o *options) resolve(set map[string]bool) error {
	c := &o.cfg
	if c.Scenario == loadtest.ScenarioTopics && !set["topics"] {
		c.Topics = max(c.Subs, 1)
	}
	if c.Scenario == loadtest.ScenarioStorm && !c.Storm.Set() {
		return errors.New("the storm scenario needs a fault: --storm-signal and --storm-pid, or --storm-cmd")
	}
	if c.Storm.Set() && !set["storm-at"] {
		c.Storm.At = c.Duration / 3
	}
	if c.Idle && c.Storm.Set() {
		return errors.New("a storm needs publishing: use the storm scenario, not capacity")
	}
	if !set["workers"] {
		c.Workers = (c.Subs + loadtest.StreamsPerWorker - 1) / loadtest.StreamsPerWorker
	}
	if o.sourceIPs < 0 {
		o.sourceIPs = 0
		// Each source address has ~28k ephemeral ports towards one target
		// port; keep well below.
		if c.Subs > 20000 && loopbackTarget(c.URL, c.EventsURL) {
			o.sourceIPs = max((c.Subs+19999)/20000, c.Workers)
		}
	}
	addrs, err := loadtest.LoopbackAddrs(o.sourceIPs)
	if err != nil {
		return err
	}
	c.SourceAddrs = addrs
	for f := range strings.SplitSeq(o.nodePIDs, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("--node-pid: %q is not a pid", f)
		}
		c.NodePIDs = append(c.NodePIDs, pid)
	}
	return nil
}

// loopbackTarget reports whether the streams go to a 127.0.0.0/8 address.
func loopbackTarget(base, events string) bool {
	if events != "" {
		base = strings.ReplaceAll(events, "{topic}", "t")
	}
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(u.Hostname())
	return err == nil && a.Is4() && a.IsLoopback()
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
			cmd := exec.Command(exe, workerFlag, "-log-level", o.logLevel)
			cmd.Stderr = stderr
			return cmd
		})
	} else {
		cfg.Workers = 0
		rep, err = loadtest.Run(ctx, cfg)
	}
	if rep == nil {
		return err
	}
	if werr := rep.WriteText(stdout); werr != nil {
		err = errors.Join(err, werr)
	}
	if o.jsonFile != "" {
		err = errors.Join(err, writeFile(o.jsonFile, func(w io.Writer) error {
			e := json.NewEncoder(w)
			e.SetIndent("", "  ")
			return e.Encode(rep)
		}))
	}
	if o.htmlFile != "" {
		err = errors.Join(err, writeFile(o.htmlFile, rep.WriteHTML))
	}
	return err
}

// writeFile writes a report file through write.
func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}
