// Package faults is the fault suite of ssecluster (issue 6): tests only.
// Each case starts its own cluster with deploy/cluster/cluster.sh (one
// redis-server, three ssenode processes, HAProxy rendered from
// deploy/haproxy/haproxy.cfg.tmpl, all on loopback), holds subscribers
// that reconnect like browsers (retry hints, Last-Event-ID, cookies) and a
// publisher of package loadtest, and injects one fault while a known
// numbered sequence of events is being published:
//
//	sigkill-node         SIGKILL node1
//	freeze-node          SIGSTOP node1 for 20 s, then SIGCONT
//	rolling-restart      SIGTERM (drain) and start again node1, node2, node3 in turn
//	redis-restart-aof    Redis with an append-only file stopped (SIGTERM) and started again
//	redis-restart-empty  Redis without persistence stopped and started again: history is gone
//	redis-unreachable    Redis frozen (SIGSTOP) for 10 s: connections and commands hang
//	lb-restart           HAProxy stopped (every connection through it closed) and started again
//	many-topics          SIGKILL node1 under 1,000 topics, 8 topics per stream
//
// # What every case checks
//
// The publisher retries a publish whose outcome is unknown or transient
// (connection cut, timeout, 502, 503, 504) with the same idempotency keys
// until it is confirmed (loadtest.Config.PublishRetry), so every event of
// the sequence is confirmed with a 200 in the end, once. Then, for every
// subscriber, counted per stream and per topic by loadtest:
//
//   - no loss: every confirmed event of each of its topics arrived. The
//     report's loss (expected minus distinct events received, over all
//     streams) is 0, and as no stream can receive more distinct events of a
//     topic than were confirmed, that holds for each stream and topic;
//   - no duplicates, no event out of order in its topic, no gap;
//   - every stream is back at the end, and a stream that dropped came back
//     within what its retry hints allow: no hint above the bound the node
//     (RETRY_CAP) or HAProxy (5 s, its own error answers) gives, and no
//     resume later than a few such hints after its drop;
//   - no reset: the history was there to resume from.
//
// redis-restart-empty is the case where history is truly gone: every
// stream must be told so with a reset event, nothing may arrive twice or
// out of order, and whatever was lost must lie before the reset: the events
// published after it all arrive (the report's loss equals the events
// skipped by gaps, with no more than one gap per stream and topic).
//
// Case by case besides: freeze-node moves the frozen node's streams to the
// other nodes before it is thawed (HAProxy marks it DOWN and closes its
// sessions); redis-unreachable keeps every stream open with heartbeats
// through the outage, and publishes during it get 503 (never a 200 for an
// event that is then missing); after every case all nodes serve again.
//
// # Recovery times
//
// Each case logs one line, "fault <name>: recovery <s> ...": the time from
// the fault's start until every stream was back and publishing and
// delivery flowed again (the largest of the reconnect wave, Report.Storm
// .WaveS, and the ends of any stall of confirmed publishes or deliveries
// seen in the 100 ms timeline), with the fault's own length beside it.
// These figures are logged, not asserted, except where a bound is a
// documented guarantee with a wide margin (the frozen node's streams are
// all back before the 20 s freeze ends: HAProxy needs ~5 s to mark it DOWN
// and the hints are at most 2 s).
//
// # Running
//
// The suite runs with every `go test ./...` (about 2 minutes; skipped with
// -short). The soak runs the same cases at a larger scale, on demand only,
// and replaces the section between <!-- faults:begin --> and
// <!-- faults:end --> of BENCHMARKS.md with its figures:
//
//	SSE_SOAK=1 go test -run TestFaultsSoak -timeout 30m -v ./deploy/faults
//
// Needs redis-server, redis-cli, haproxy, curl and ss (see cluster.sh).
package faults
