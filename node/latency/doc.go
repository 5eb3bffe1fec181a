// Package latency keeps a windowed, mergeable histogram of durations: the
// node's push latency.
//
// Push latency is the time from an event's publish timestamp to the moment
// its bytes were written to a subscriber's socket, one value per event and
// subscriber. This package does not know about events: the caller records
// (now − timestamp) pairs; what is counted, and with which clock, is the
// node's business (see node/report.go).
//
// Values are kept in HDR histograms (github.com/HdrHistogram/hdrhistogram-go)
// in microseconds, with 3 significant digits (values below 2048 µs are exact)
// up to Config.Highest (default 1 h); longer values are recorded as Highest
// and negative ones (clock skew) as 0. Histograms merge exactly, bucket by
// bucket, so the figures of a cluster are those of the union of its nodes'
// values, not an average of percentiles.
//
// # Windows
//
// Time is cut into slots of Config.Slot (default 10 s). A Snapshot has three
// histograms: the last minute and the last five minutes, each made of the
// whole slots that overlap it (so it covers between 60 and 70 s, 300 and
// 310 s), and everything since the Recorder was made.
//
// # Recording cost
//
// Record takes a shard index chosen by the caller (a fan-out worker's own
// index): each shard is a mutex and a dense histogram for the current slot,
// so concurrent writers on different shards never contend, and a record is a
// lock, one bucket increment per value and an unlock. When a shard sees a new
// slot it moves its values into the ring of completed slots (sparse, packed
// histograms) under the ring's lock, once per slot.
//
// # Concurrency
//
// A Recorder is safe for concurrent use; lock order: shard, then ring. A
// Snapshot is owned by its caller. The package starts no goroutine.
package latency
