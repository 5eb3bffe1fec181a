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
// # Concurrency
//
// Publish, Range, Head, Retained and Ping are safe for concurrent use. Run may be called
// once; it owns the reader goroutines and returns only after they have
// stopped. Close releases connections and may be called once Run returned.
package pubsub
