// Package loadtest is the SSE load generator of ssecluster: it holds many
// real event streams against a target, publishes at a fixed rate, and
// reports what every stream saw. cmd/sseload is a thin command line on it.
//
// # What it does
//
//   - Pool holds N streams over raw TCP (GET /v1/events?topic=...), started
//     at a fixed ramp rate and bound in turn to several local addresses when
//     asked (each loopback address has its own ephemeral port range). Each
//     stream is parsed by node/sse.Parser, the strict WHATWG parser, and
//     records connect outcome and reason, time to first byte and to the
//     response head, retry hints, comments, id-only blocks, reset events and
//     every message event. With Config.Reconnect it behaves like a browser's
//     EventSource: after a drop it waits the last retry hint and reconnects
//     with Last-Event-ID.
//   - Publisher posts to POST /v1/publish at a fixed rate, round-robin over
//     the topics. Each event's data is a Payload: topic, per-topic sequence
//     number and send time, so every stream measures end-to-end latency
//     (receive time minus send time) and checks its topic's sequence for
//     gaps, duplicates and reordering (SeqChecker) on its own.
//   - Report holds the figures: HDR latency histograms (Histogram),
//     deliveries against expected deliveries (confirmed events times the
//     streams subscribed to their topic), loss, survival, and a timeline
//     sampled every Config.SampleEvery on whole Unix seconds (Sample).
//     Reports of worker processes merge exactly (RunWorkers, RunWorker).
//     WriteText, JSON and WriteHTML (one self-contained page with SVG
//     charts) present them.
//
// # What it does not do
//
// No HTTPS or HTTP/2, no generic (non-ssecluster) publish target, no storm
// scenario, no admin API figures: see issue 3. It never targets anything
// but the URL it is given; keep that on loopback.
//
// Every loop is bounded: the ramp by Config.Subs, the publisher by Count or
// Duration, each run as a whole by a time bound derived from its Config
// (ErrTimeBound), reconnects by the run's context.
//
// # Goroutines
//
//	goroutine                 owner           stops on                                waited by
//	stream (one per sub)      Pool.Run        Pool.Run's ctx (AfterFunc closes conn)  Pool.Run
//	first-attempt watcher     Pool.Run        every stream made its first attempt     Pool.Run
//	publisher connection (K)  Publisher.Run   its channel closed by the scheduler     Publisher.Run
//	pool / progress           Run             Run's inner ctx, cancelled after drain  Run
//	timeline sampler          Run*            the pool's ctx (RunWorkers: progress's) Run*, then reads its samples
//	worker process reader     RunWorkers      the worker process exits                RunWorkers (stopAll)
//	worker stdin watcher      RunWorker       stdin EOF (the parent closes it)        not waited: the process exits
//
// Run* is Run, RunWorker and RunWorkers (the publishing parent's own
// sampler). The publisher's scheduler runs in Publisher.Run itself, the
// ramp in Pool.Run itself. A stream's counters are owned by its goroutine
// and added to the pool's under Pool.mu when it ends; live figures
// (delivered, connected) are atomics; latency goes to a histogram sharded
// over 32 locks.
package loadtest
