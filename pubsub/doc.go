// Package pubsub is the broker layer of ssecluster: one Broker interface, a
// Redis Streams implementation (NewRedis) and an in-memory implementation
// (NewMemory) with the same semantics.
//
// # Model
//
// Topics hash into a fixed number of partitions (PartitionOf). Each partition
// is an append-only log of events whose positions (Pos) are Redis stream IDs
// "<ms>-<seq>", strictly increasing inside the partition. Every partition has
// an epoch: a random token that changes whenever the partition's history is
// lost (a Redis restarted without persistence, a wiped key). A position is
// only meaningful together with its partition and epoch; that triple is an
// ID, and a Cursor is a set of IDs, at most one per partition. Cursors are
// what SSE clients echo back in Last-Event-ID; their text form is opaque to
// clients and valid on every node that shares the broker.
//
// Ordering is per partition, hence per topic. Nothing is promised across
// partitions.
//
// # What it does not do
//
// It knows nothing about HTTP, SSE framing or subscribers: the node package
// does the fan-out to connections. Run hands every event of every partition to
// one Handler, in order, once per node.
//
// # Redis topologies and lost history
//
// The Redis broker runs on one Redis, a Sentinel group or a Redis Cluster
// (internal/redisconn). Every command and script touches one partition's
// keys, which share a hash tag, so nothing spans two Cluster slots.
// Replication is asynchronous: a failover may promote a replica that lacks
// events a node read or stored. Every read checks that the reader's
// position and the newest position its node stored are still in the stream;
// when they are not, the partition moves to a new epoch (bumpScript) that
// starts where the old and new history part, the loss is reported through
// Handler.Start (ReasonRolledBack) and Range answers cursors into or before
// the lost part with a *HistoryGoneError. While a reader has lost its store,
// a Handler that implements Suspender is told, so that it does not answer
// from what it cached. RedisConfig.WaitReplicas makes Publish wait (Redis
// WAIT) until replicas hold the events.
//
// # Concurrency
//
// Publish, Range, Head, Retained, Ping and Warnings are safe for concurrent
// use. Run may be called once; it owns the reader goroutines and returns
// only after they have stopped. Close releases connections and may be
// called once Run returned.
//
//	goroutine                          owner      stops on   waited by
//	reader loop, one per partition     Redis.Run  ctx        Run (WaitGroup)
//	trimming and inspection loop       Redis.Run  ctx        Run (WaitGroup)
//	per-shard publish pipelines        Publish    their call Publish (WaitGroup)
package pubsub
