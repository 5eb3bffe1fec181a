package node

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/ssecluster/ssecluster/internal/apierr"
	"github.com/ssecluster/ssecluster/node/latency"
	"github.com/ssecluster/ssecluster/node/survival"
	"github.com/ssecluster/ssecluster/pubsub"
)

// What the admin API reports about a node, and how it is measured.
//
// Connection survival (package survival): every stream is logged when it is
// served (its response head is being written; refused attempts are not
// streams) and when the reaper unregisters it after it closed, with its
// close reason and the time it closed. CloseReason.Failure decides which
// closes are failures.
//
// Push latency (package latency): for every live event and subscriber, the
// time from the event's publish timestamp to the moment its bytes were
// written to the subscriber's socket. The timestamp is the "ts" the
// publishing node stored with the event (its clock when it accepted the
// publish, before the broker write), or, for an entry stored without one,
// the millisecond of its stream ID (the store's clock). Bytes written at
// once by fan-out are timed at that write; bytes that had to wait in the
// stream's backlog (a full socket, or live events arriving while the
// stream replays its history) are timed when the flusher has written
// them. Replayed history is not counted: its timestamps measure how old
// the history is, not how late the node is, and a reconnect wave would
// swamp the live figures. Events dropped with their stream are not
// counted either.
//
// Clocks: the publishing node's clock sets the timestamp and the
// delivering node's clock takes the write time, so the figure includes
// their offset. All nodes of one host share a clock. For nodes on several
// hosts, keep them NTP-synchronised (offsets are then well below a
// millisecond); an offset can also be measured against Redis's TIME
// (round-trip midpoint) and published with the node's report, but this is
// not done: latencies below the offset would be meaningless anyway, and a
// negative value (clock skew) is recorded as 0.

// Report is a node's state for the admin API (GET /admin/nodes/{id} and
// the cluster registry). Its JSON field names are an interface: admin/,
// the dashboard and loadtest parse them.
type Report struct {
	NodeID string `json:"node_id"`
	// Version is the module version and, when the binary was built from a
	// VCS checkout, "+<revision>" (12 digits) and ".dirty" for a modified
	// tree.
	Version     string           `json:"version"`
	StartedAt   time.Time        `json:"started_at"` // RFC 3339
	UptimeS     float64          `json:"uptime_s"`
	Mode        string           `json:"mode"` // "standalone" (in-memory broker) or "cluster"
	Draining    bool             `json:"draining"`
	Drain       DrainStatus      `json:"drain"`
	Broker      BrokerStatus     `json:"broker"`
	Connections ConnCounts       `json:"connections"`
	Survival    survival.Summary `json:"survival"`
	PushLatency latency.Windows  `json:"push_latency"`
	Cache       CacheStats       `json:"cache"`
	// Deliveries counts events written (or queued) to streams by fan-out;
	// Published events accepted by this node's POST /v1/publish.
	Deliveries int64 `json:"deliveries"`
	Published  int64 `json:"published"`
	// Rejected counts the public listener's error answers (a client's bad
	// request, a missing token, a limit) by status and code, since start.
	Rejected []apierr.Count `json:"rejected"`
}

// BrokerStatus is what the node knows of its broker.
type BrokerStatus struct {
	// Reachable is the result of the latest broker ping (every
	// brokerProbeEvery, and on every /readyz); false before the first.
	Reachable bool `json:"reachable"`
	// ReadLagMs is how far behind the broker the node reads: when the hub
	// received its latest batch, how long ago the newest event of it had
	// been published (ms; 0 before the first batch). It is the broker and
	// reader share of push latency. It does not grow while nothing is
	// published, so a reader that cannot reach the broker shows as
	// Reachable false rather than as lag.
	ReadLagMs float64 `json:"read_lag_ms"`
	// Errors counts the broker's failed store operations since the node
	// started, by operation (pubsub.StoreOps: publish, read, range, ...):
	// errors from Redis or the network, timeouts included. Empty for a
	// broker that has no store to fail (the in-memory one).
	Errors map[string]int64 `json:"errors"`
	// Topology is the Redis topology ("single", "sentinel", "cluster"),
	// or "memory" for the standalone in-memory broker.
	Topology string `json:"topology"`
	// Warnings are the broker's findings about its store's settings that
	// endanger delivery (an eviction policy that may drop history, fewer
	// replicas than publishes wait for); empty when all is well.
	Warnings []string `json:"warnings"`
}

// brokerErrorCounter is implemented by brokers that count their failed
// store operations (pubsub.Redis).
type brokerErrorCounter interface {
	ErrorCounts() map[string]int64
}

// brokerInspector is implemented by brokers that check their store's
// settings (pubsub.Redis).
type brokerInspector interface {
	Mode() string
	Warnings() []string
}

// ConnCounts are the node's stream counters since it started.
type ConnCounts struct {
	Current int64            `json:"current"` // open now
	Opened  int64            `json:"opened"`
	Closed  map[string]int64 `json:"closed"`  // by close reason
	Refused map[string]int64 `json:"refused"` // attempts answered without a stream, by refusal
}

// CacheStats are the replay cache's counters and size.
type CacheStats struct {
	Hits        int64 `json:"hits"`         // resumes served from the cache
	Misses      int64 `json:"misses"`       // resumes that read the broker
	BrokerReads int64 `json:"broker_reads"` // broker Range calls for resumes
	Resets      int64 `json:"resets"`       // reset events sent
	Entries     int64 `json:"entries"`      // events cached
	Bytes       int64 `json:"bytes"`        // encoded bytes cached (with bookkeeping)
}

// Modes of Report.Mode.
const (
	ModeStandalone = "standalone"
	ModeCluster    = "cluster"
)

// brokerProbeEvery is how often the node pings its broker for
// BrokerStatus.Reachable; brokerProbeTimeout bounds one ping.
const (
	brokerProbeEvery   = 2 * time.Second
	brokerProbeTimeout = time.Second
)

// brokerProbe is the latest broker ping result.
type brokerProbe struct {
	mu sync.Mutex
	ok bool
	at time.Time
}

func (p *brokerProbe) set(ok bool, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if at.After(p.at) {
		p.ok, p.at = ok, at
	}
}

func (p *brokerProbe) get() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok
}

// probeLoop pings the broker every brokerProbeEvery until ctx ends.
func (s *Server) probeLoop(ctx context.Context) {
	for {
		pctx, cancel := context.WithTimeout(ctx, brokerProbeTimeout)
		err := s.broker.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.probe.set(err == nil, time.Now())
		if !sleepCtx(ctx, brokerProbeEvery) {
			return
		}
	}
}

// initReport sets up what the report measures.
func (s *Server) initReport() error {
	s.started = time.Now()
	s.version = s.cfg.Version
	if s.version == "" {
		s.version = buildVersion()
	}
	s.mode = ModeCluster
	if _, ok := s.broker.(*pubsub.Memory); ok {
		s.mode = ModeStandalone
	}
	lat, err := latency.New(latency.Config{})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	reasons := make([]survival.Reason, len(reasonNames))
	for i, name := range reasonNames {
		reasons[i] = survival.Reason{Name: name, Failure: CloseReason(i).Failure()}
	}
	life, err := survival.New(survival.Config{Reasons: reasons, Window: s.cfg.SurvivalWindow, MaxRecords: s.cfg.SurvivalRecords})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	s.lat, s.life = lat, life
	return nil
}

// buildVersion is the binary's version from its build info (versionOf).
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return versionOf(bi.Main.Version, bi.Settings)
}

// versionOf is the module version, with "+<revision>" (12 digits) and
// ".dirty" for a modified tree appended when the binary knows its VCS
// revision and the version does not already carry it (Go's pseudo-versions
// of a checkout do: v0.0.0-<time>-<revision>[+dirty]).
func versionOf(v string, settings []debug.BuildSetting) string {
	if v == "" {
		v = "(devel)"
	}
	var rev string
	dirty := false
	for _, st := range settings {
		switch st.Key {
		case "vcs.revision":
			rev = st.Value
		case "vcs.modified":
			dirty = st.Value == "true"
		}
	}
	if rev != "" && !strings.Contains(v, rev[:min(len(rev), 12)]) {
		v += "+" + rev[:min(len(rev), 12)]
		if dirty {
			v += ".dirty"
		}
	}
	return v
}

// Report returns the node's state at now (now is the end of the survival
// and latency windows; pass time.Now()). It does no I/O; computing the
// survival estimate costs a copy and a sort of the records (at most
// Config.SurvivalRecords).
func (s *Server) Report(now time.Time) Report {
	st := &s.stats
	r := Report{
		NodeID:    s.cfg.NodeID,
		Version:   s.version,
		StartedAt: s.started.UTC(),
		UptimeS:   now.Sub(s.started).Seconds(),
		Mode:      s.mode,
		Draining:  s.drain.active.Load(),
		Drain:     s.DrainStatus(),
		Broker: BrokerStatus{
			Reachable: s.probe.get(),
			ReadLagMs: float64(max(s.hub.readLag.Load(), 0)) / float64(time.Millisecond),
			Errors:    map[string]int64{},
		},
		Connections: ConnCounts{
			Current: int64(s.conns.len()),
			Opened:  st.ConnsOpened.Load(),
			Closed:  make(map[string]int64, len(reasonNames)),
			Refused: make(map[string]int64, numRefusals),
		},
		Survival:    s.life.Summary(now),
		PushLatency: s.lat.Snapshot(now).Windows(),
		Deliveries:  st.Deliveries.Load(),
		Published:   st.Published.Load(),
		Rejected:    st.Rejected.Snapshot(),
	}
	if ec, ok := s.broker.(brokerErrorCounter); ok {
		r.Broker.Errors = ec.ErrorCounts()
	}
	r.Broker.Topology, r.Broker.Warnings = "memory", []string{}
	if bi, ok := s.broker.(brokerInspector); ok {
		r.Broker.Topology, r.Broker.Warnings = bi.Mode(), bi.Warnings()
		if r.Broker.Warnings == nil {
			r.Broker.Warnings = []string{}
		}
	}
	for i, name := range reasonNames {
		if CloseReason(i) != ReasonNone {
			r.Connections.Closed[name] = st.Closed[i].Load()
		}
	}
	for i, name := range refusalNames {
		r.Connections.Refused[name] = st.Refused[i].Load()
	}
	entries, bytes := s.cache.size()
	r.Cache = CacheStats{
		Hits: st.CacheHits.Load(), Misses: st.CacheMisses.Load(), BrokerReads: st.BrokerReads.Load(),
		Resets: st.Resets.Load(), Entries: entries, Bytes: bytes,
	}
	return r
}

// size returns the number of cached events and bytes.
func (c *replayCache) size() (events, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.lru.Values() {
		events += int64(r.n)
	}
	return events, c.bytes
}

// MergeData is what a cluster view needs of each node to compute cluster
// figures exactly (see MergeReports). It is JSON, to travel through Redis.
type MergeData struct {
	NodeID string    `json:"node_id"`
	At     time.Time `json:"at"`
	// PushLatency holds the node's three latency histograms, HdrHistogram
	// V2 compressed and base64.
	PushLatency latency.Export `json:"push_latency"`
	// Survival holds the node's streams in 1-second bins.
	Survival survival.Bins `json:"survival"`
}

// MergeData returns the node's mergeable figures at now.
func (s *Server) MergeData(now time.Time) MergeData {
	d := MergeData{NodeID: s.cfg.NodeID, At: now.UTC(), Survival: s.life.Bins(now)}
	exp, err := s.lat.Snapshot(now).Export()
	if err != nil { // the encoder writes to memory: cannot happen
		s.log.Error("encoding push latency", "err", err)
	}
	d.PushLatency = exp
	return d
}

// ClusterFigures are the cluster's push latency and survival, merged from
// its nodes' MergeData: the same JSON shapes as a node Report's.
type ClusterFigures struct {
	Nodes       int              `json:"nodes"`
	PushLatency latency.Windows  `json:"push_latency"`
	Survival    survival.Summary `json:"survival"`
}

// MergeReports computes the cluster's figures from its nodes' MergeData.
// Latency histograms merge exactly (the percentiles are those of every
// node's values together); survival is estimated from the merged bins at
// 1-second resolution. Nodes' data should be taken at about the same time:
// each covers the windows ending at its own At.
func MergeReports(nodes []MergeData) (ClusterFigures, error) {
	exports := make([]latency.Export, len(nodes))
	bins := make([]survival.Bins, len(nodes))
	for i, n := range nodes {
		exports[i], bins[i] = n.PushLatency, n.Survival
	}
	lat, err := latency.MergeExports(exports...)
	if err != nil {
		return ClusterFigures{}, fmt.Errorf("node: merge push latency: %w", err)
	}
	return ClusterFigures{
		Nodes:       len(nodes),
		PushLatency: lat.Windows(),
		Survival:    survival.Merge(bins...).Summary(nil),
	}, nil
}
