// Package faults is the fault suite of ssecluster (issue 6): tests only.
// Each case starts its own cluster with deploy/cluster/cluster.sh (one
// redis-server, a Sentinel group or a Redis Cluster; three ssenode
// processes; HAProxy rendered from deploy/haproxy/haproxy.cfg.tmpl; all on
// loopback), holds subscribers that reconnect like browsers (retry hints,
// Last-Event-ID, cookies) and a publisher of package loadtest, and injects
// one fault while a known numbered sequence of events is being published:
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
// and, in redis_ha_test.go, the faults of Redis itself:
//
//	sentinel-master-kill       Sentinel group, PUBLISH_WAIT_REPLICAS=1: SIGKILL the master
//	                           (kill-redis-master), a replica is promoted
//	sentinel-lost-writes-wait  the same, but the replicas are paused first (pause-replicas):
//	                           for 2 s the master alone stores what is published, and
//	                           answers 503 publish_not_replicated; then it is killed
//	sentinel-lost-writes       the same without WAIT: 2 s of publishes are confirmed (200)
//	                           by the master alone, then lost with it
//	cluster-master-kill        Redis Cluster, PUBLISH_WAIT_REPLICAS=1: SIGKILL the master of
//	                           slot 0; its replica is promoted; the old master rejoins as
//	                           its replica (until then WAIT answers 503 on that shard)
//	cluster-reshard            Redis Cluster, PARTITIONS=64, 128 topics: 1,000 slots moved
//	                           (reshard 1000), among them those of five partitions
//	redis-maxmemory            maxmemory set 32 KiB above what Redis uses (noeviction) until
//	                           publishes get 503 broker_full, 3 s more, then no limit
//	redis-slow                 200 ms added to every Redis command for 8 s: the nodes reach
//	                           Redis through a delaying proxy (cluster.sh --redis-url)
//
// TestEvictionWarning, beside them, checks that a node on a Redis whose
// maxmemory-policy is allkeys-lru says so in GET /admin/v1/node
// (broker.warnings), and that it says nothing on noeviction.
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
// # Failovers that lose history
//
// A Redis failover loses what the dead master had stored and no replica
// had received. The nodes find it (a position they read or stored is
// gone), move the partition to a new epoch and send its streams a reset.
// Two cases make sure it happens, and check what was lost against what
// was promised:
//
// sentinel-lost-writes-wait: publishes wait for a replica, so only events
// that were never confirmed are lost: those of the requests answered 503
// publish_not_replicated while the replicas were paused (the publisher
// retries each until it is confirmed, one request per connection at a
// time). The readers delivered them from the master before it died, so a
// subscriber may have received them; after the failover, the retry
// stores them again and they arrive again, after the reset. The check
// accepts exactly that and nothing else: every confirmed event arrives
// (no loss, no gap, even across a reset), in order; a reset comes only
// on a partition a node logged as rolled back, and the entry that node
// found missing is indeed not on the new master; after a reset a stream
// may receive again at most one request's worth (Batch) of the numbers
// it had just before it, each at a new stream entry (stored anew), and
// the first copy of each is gone from Redis (so nothing was stored
// twice); the duplicates the load generator counts are at most Batch per
// reset. Some publish must have answered publish_not_replicated, and a
// node must have found a rollback: what the master wrote before
// pause-replicas cut the replicas' links (some 20 ms) still reaches them,
// so the case publishes on one connection per topic, whose stuck requests
// start over 100 ms, and some are surely lost.
//
// sentinel-lost-writes: publishes do not wait, so confirmed events are
// lost; this is the redis-restart-empty check (every stream gets a reset;
// what was lost lies before it; nothing twice, nothing out of order),
// plus: a node must find the rollback, and it must be real (as above).
// Sentinel may fail over twice (two sentinels win consecutive epochs,
// each promoting a replica; the first one's stays an isolated master until
// Sentinel converts it, up to 10 s later): what the first new master
// stored is lost too, and the nodes reset again; each rollback is checked
// the same way.
//
// sentinel-master-kill and cluster-master-kill are held to the rules of
// sentinel-lost-writes-wait without its two musts: publishes wait for a
// replica, but the readers hand on what the master stored before any
// replica has it (WAIT holds back the publisher's 200, not delivery), so
// an event stored in the last milliseconds before the kill (or on the
// first master of a double failover) may be delivered, lost and stored
// again; a confirmed event never is. Without such a loss (most runs) they
// are strict: no reset, no duplicate.
//
// In every case with a failover or a Redis fault, observer streams (one
// per node and topic, straight to the node, so that each node's path from
// Redis to its streams is watched) record every block with its id, in
// order, and are held to: consecutive numbers from 1 to the topic's last;
// each event in the epoch the stream is in (that of its start or of its
// last reset: a new history without a reset first is a silent skip), at
// a stream entry after the stream's position (a stream entry delivered
// twice, the reset's own position included, is a duplicate whatever its
// number); every stream of a rolled-back partition told. In
// cluster-reshard, redis-maxmemory and redis-slow no node may log
// "partition history rolled back", and no stream may get a reset.
//
// Case by case besides: freeze-node moves the frozen node's streams to the
// other nodes before it is thawed (HAProxy marks it DOWN and closes its
// sessions); redis-unreachable keeps every stream open with heartbeats
// through the outage, and publishes during it get 503 (never a 200 for an
// event that is then missing); redis-maxmemory and redis-slow keep every
// stream open too (no drop; no observed stream silent for more than two
// heartbeat intervals); redis-maxmemory's publishes get 503 broker_full
// while Redis refuses writes; redis-slow's publishes end within
// PUBLISH_TIMEOUT (5 s) and a second, answered 200 or 503
// publish_outcome_unknown, never cut off; cluster-reshard must move the
// slots of partitions (their master changes); after every case all nodes
// serve again (a killed Redis master is started again, as a replica).
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
// The cases that kill a Redis master also log one line, "failover <name>:
// ...", from the kill: the new master serving (kill-redis-master returned:
// a sentinel names it and the other replica follows it, or every server
// sees the slot served), the first confirmed publish (the end of the
// publishes' stall), and every observed stream delivering again (the end
// of its longest silence; it includes the publisher's backoff, at most
// 1.6 s between two attempts).
//
// # Running
//
// The suite runs with every `go test ./...` (about 5 minutes; skipped with
// -short); one case: go test -race -count=1 -run 'TestFaults/<name>'
// ./deploy/faults. The soak runs the same cases at a larger scale, on demand only,
// and replaces the section between <!-- faults:begin --> and
// <!-- faults:end --> of BENCHMARKS.md with its figures:
//
//	SSE_SOAK=1 go test -run TestFaultsSoak -timeout 30m -v ./deploy/faults
//
// Needs redis-server, redis-cli (redis-server --sentinel for the Sentinel
// cases), haproxy, curl and ss (see cluster.sh).
package faults
