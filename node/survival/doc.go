// Package survival measures how long a node's streams live.
//
// Connection survival is a survival curve: S(t) is the probability that a
// stream lives at least t. It is estimated over the streams opened in the
// last window (default 1 h) with the Kaplan–Meier estimator
//
//	S(t) = ∏ over distinct death times tᵢ ≤ t of (1 − dᵢ/nᵢ)
//
// where dᵢ streams died at tᵢ and nᵢ were at risk just before it: every
// stream whose observed time is ≥ tᵢ. A stream still open is censored at its
// current age: it counts in the risk set up to its age, then leaves it,
// without ever being a death. A censoring tied with a death counts as at risk
// at that death (the usual convention). The median lifetime is the smallest
// death time with S(t) ≤ 0.5; when the curve never gets there it is unknown.
//
// Which closes are deaths depends on the view:
//
//   - all: every close is a death;
//   - failures: only closes whose Reason has Failure set (the node failed the
//     client: write errors, timeouts, slow-consumer evictions) are deaths;
//     other closes (the client left, a drain, a kick) are censorings, since
//     the stream did not fail by then;
//   - per reason: closes with that reason are deaths, every other close is a
//     censoring (the cause-specific curve).
//
// Beyond the longest time observed, S(t) stays at its last value. With a
// window of 1 h no stream can be observed for a full hour, so S(1h) is the
// value at the longest observed lifetime: an upper bound of the true S(1h).
//
// # Node and cluster
//
// A Log keeps one record per stream (16 bytes: open time, lifetime in
// milliseconds, close reason) and computes the estimate exactly, at
// millisecond resolution, from the records. For a cluster, each node exports
// Bins: per close reason, and for the streams still open, how many streams
// had each lifetime in whole seconds rounded up (sparse). Bins of several
// nodes merge by addition, and Bins.Summary computes the same figures from
// them at 1-second resolution: S(t) at whole seconds is the same as from the
// records, except that a death and a censoring that fall in the same second
// are taken as tied (censoring last).
//
// # Bounds
//
// Records of streams opened before now − window are dropped. At most
// Config.MaxRecords records are kept (default 262144, 4 MiB); when more
// streams open within the window, the oldest records are dropped and the
// estimate covers only the streams since then: Summary.WindowS says how far
// back it really looks.
//
// # Concurrency
//
// A Log is safe for concurrent use. Open and Close are O(1) (amortised)
// under one mutex; Summary and Bins copy the records under it and compute
// outside it. The package starts no goroutine.
package survival
