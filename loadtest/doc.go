// Package loadtest is the SSE load generator of ssecluster: it holds many
// real event streams against a target, publishes at a fixed rate, and
// reports what every stream saw. cmd/sseload is a thin command line on it.
//
// # What it does
//
//   - Pool holds N streams over raw TCP (GET /v1/events?topic=..., one
//     topic each or Config.TopicsPerStream at once, each topic's sequence
//     checked on its own), started at a fixed ramp rate and bound in turn
//     to several local addresses when asked (each loopback address has its
//     own ephemeral port range). On
//     Linux a few poller loops read every stream's socket (epoll, one
//     read(2) per wake-up, no allocation per event); the bytes are parsed
//     by node/sse.Decoder, the strict WHATWG parser in push form. Each
//     stream records connect outcome and reason, time to first byte and to the
//     response head, retry hints, comments, id-only blocks, reset events and
//     every message event. With Config.Reconnect it behaves like a browser's
//     EventSource: after a drop it waits the last retry hint and reconnects
//     with Last-Event-ID and the cookies the target set; each reconnect's
//     hint, wait, time to resume and outcome (exact, gap, duplicate,
//     reordered, reset) are recorded (ReconnectStats).
//   - Generic targets: Config.EventsURL, PublishURL and PublishBody drive
//     any SSE server; the payload is found in the event data as is, as a
//     JSON string or inside a larger document.
//   - Scenarios (Scenario): capacity, fanout, topics, storm (a Storm fault
//     injected while publishing: a signal to a target process or a shell
//     command) and run. Config.NodePIDs samples the target's memory and CPU
//     (NodeStats); Config.AdminURL reads an ssecluster admin API at the
//     start and end (AdminStats).
//   - Publisher posts to POST /v1/publish at a fixed rate (or in bursts),
//     round-robin over the topics, with idempotency keys unique to the run,
//     so a request whose answer was lost is sent again and stored once (6
//     attempts, or for as long as Config.PublishRetry says). Each event's
//     data is a Payload: topic, per-topic sequence number and send time, so
//     every stream measures end-to-end latency (receive time minus send
//     time) and checks its topics' sequences for gaps, duplicates and
//     reordering (SeqChecker) on its own.
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
// No HTTPS or HTTP/2 (ssecluster nodes speak HTTP/1.1 behind the load
// balancer; TLS ends there). It never targets anything but the URLs it is
// given; keep them on loopback.
//
// Every loop is bounded: the ramp by Config.Subs, the publisher by Count or
// Duration, each run as a whole by a time bound derived from its Config
// (ErrTimeBound), reconnects by the run's context.
//
// # Goroutines
//
//	goroutine                 owner           stops on                                waited by
//	stream (one per sub)      Pool.Run        Pool.Run's ctx (its socket is closed)   Pool.Run
//	poller loop (one per P)   Pool.Run        Pool.Run's ctx (poked via its eventfd)  Pool.Run
//	first-attempt watcher     Pool.Run        every stream made its first attempt     Pool.Run
//	publisher connection (K)  Publisher.Run   its channel closed by the scheduler     Publisher.Run
//	pool / progress           Run             Run's inner ctx, cancelled after drain  Run
//	storm                     drive           the fault injected, or the run's ctx    drive
//	timeline sampler          Run*            the pool's ctx (RunWorkers: progress's) Run*, then reads its samples
//	worker process reader     RunWorkers      the worker process exits                RunWorkers (stopAll)
//	worker stdin watcher      RunWorker       stdin EOF (the parent closes it)        not waited: the process exits
//
// Run* is Run, RunWorker and RunWorkers (the publishing parent's own
// sampler). The publisher's scheduler runs in Publisher.Run itself, the
// ramp in Pool.Run itself. A stream's counters are owned by its goroutine
// and added to the pool's under Pool.mu when it ends; while a poller loop
// reads the stream, the loop owns them (the stream's goroutine waits on the
// connection's done channel, which hands them back). Live figures
// (delivered, connected) are atomics, added once per loop round; latency
// goes to a histogram sharded over 32 locks, one shard per loop.
package loadtest
