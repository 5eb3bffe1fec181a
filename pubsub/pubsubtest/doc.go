// Package pubsubtest holds what every pubsub.Broker test needs: the
// Conformance suite, which runs the whole Broker contract against one
// implementation, and StartRedis, StartSentinel and StartCluster, which run
// real redis-server, redis-sentinel and redis-cli processes for the Redis
// broker's tests.
//
// # Conformance
//
// Conformance(t, newBroker) runs table-driven subtests, each on a fresh
// broker from newBroker: publish IDs and ordering, Head, Run (Start at the
// head, every event exactly once per partition in order, concurrent
// publishers, a handler overtaken by retention, clean stop with no leftover
// goroutines), Range (filtering, Until, pagination with small limits,
// trimmed, epoch changed, ahead), Retained (agrees with Head; oldest entry,
// count, after trimming), idempotency keys, arbitrary Data bytes, Ping and
// Close. Waits poll with a deadline; nothing sleeps to synchronise
// and nothing asserts durations.
//
// The suite closes each broker itself (after Run returned); newBroker must
// not, but may register cleanups for what backs the broker. Subtests run one
// after another, and the Conformance call must not run in parallel with other
// tests of the same binary: one case checks, with goleak, that Run and
// Close leave no goroutines behind.
//
// # StartRedis
//
// StartRedis(t) starts redis-server on a free 127.0.0.1 port, without
// persistence unless WithPersistence is given, with its own temporary
// directory and no configuration file, and stops it when the test ends. Its
// methods kill, stop, restart, pause and resume the process, for failure
// tests. It needs redis-server on PATH and a Unix system (process groups and
// signals); the README test command installs it. Call its methods from the
// test's goroutine, except Do, which sends one command on a new connection
// (ROLE, INFO, CONFIG SET, DEBUG SLEEP) from any goroutine. WithArgs adds
// redis-server arguments (--replicaof, --maxmemory ...).
//
// # StartSentinel
//
// StartSentinel(t) starts three redis-server processes, one master and two
// replicas (--replicaof; no persistence unless WithSentinelServers(
// WithPersistence()) is given), waits until both replicas are in sync, then
// starts three redis-sentinel processes, each with a generated
// configuration in its own directory (sentinels rewrite it), monitoring the
// master as "ssemaster" (WithMasterName) with quorum 2,
// down-after-milliseconds 1000, failover-timeout 5000, parallel-syncs 1,
// and waits until every sentinel knows the master, both replicas and the
// two other sentinels. URL returns the go-redis failover URL
// (redis://s1?addr=s2&addr=s3&master_name=ssemaster). Failure helpers:
// KillMaster (SIGKILL) then WaitMaster (a new master in about 2 s: 1 s to
// be deemed down, election, promotion); Failover (SENTINEL FAILOVER with
// writes refused and the replicas caught up first: no acknowledged write
// lost); PauseReplicas/ResumeReplicas (SIGSTOP/SIGCONT and the replication
// links cut, so writes in between reach no replica), and
// FailoverLosingWrites built from them: pause the replicas, write, kill the
// master, resume, wait for the promotion of a replica that lacks the
// writes. The sentinels' defaults make that promotion reliable; see
// FailoverLosingWrites.
//
// # StartCluster
//
// StartCluster(t) starts six redis-server processes with
// --cluster-enabled yes, cluster-node-timeout 1000, no persistence, each
// with its own directory (nodes.conf) and its own cluster bus port
// (--cluster-port, also free, since port+10000 may not be), joins them with
// redis-cli --cluster create --cluster-replicas 1 (three masters, one
// replica each), and waits until every node reports cluster_state:ok, all
// agree on CLUSTER SLOTS and every replica is in sync. URL returns the
// go-redis cluster URL listing every node. KillMaster(slot) then
// WaitSlotServed (the replica takes over in 2 to 3 s: 1 s node timeout,
// failure agreement, election); Reshard and ReshardAsync run redis-cli
// --cluster reshard (keys move with MIGRATE while clients write; they
// follow ASK and MOVED) and wait until redis-cli --cluster check passes.
//
// Beyond the settings above, the data servers of both run with
// repl-diskless-sync-delay 0 (a full sync would otherwise wait 5 s for more
// replicas), and the cluster nodes with repl-ping-replica-period 1 (CLUSTER
// SLOTS hides a replica until its replication offset moves, which an idle
// master does only with that ping: 10 s by default).
//
// Every process of StartRedis, StartSentinel and StartCluster listens on a
// free 127.0.0.1 port (a start that loses the port to someone else is
// retried), runs in its own process group, is killed with SIGKILL to that
// group and waited for when the test ends, and has its output logged if the
// test failed. Waits poll with a deadline and then fail the test with the
// last state seen.
//
// # Goroutines
//
//	| goroutine                          | owner              | stops on                  | waited by                         |
//	|------------------------------------|--------------------|---------------------------|-----------------------------------|
//	| Run of the broker under test       | a Conformance case | the case cancelling ctx   | the case (done channel, deadline) |
//	| concurrent publishers              | a Conformance case | their fixed work          | sync.WaitGroup                    |
//	| redis-server waiter (cmd.Wait)     | Redis              | the process exiting       | Kill, Stop, test cleanup          |
//	| redis-server output copy (os/exec) | exec.Cmd           | the process's pipes close | cmd.Wait                          |
//	| redis-cli output copy, ctx watcher | exec.Cmd (Cluster) | redis-cli exiting         | runCLI, Reshard's wait, cleanup   |
package pubsubtest
