// Package node is the ssecluster SSE node: an Echo server with the
// subscribe (GET /v1/events), publish (POST /v1/publish) and health routes,
// the fan-out hub that hands broker events to local connections, the replay
// cache and the per-connection writer.
//
// It does not store anything that cannot be rebuilt: the broker (package
// pubsub) is the log; the replay cache only accelerates resumes.
//
// # Connections
//
// Once a stream's response head is written, the handler hijacks the TCP
// connection and the stream becomes a small *conn with no goroutine of its
// own. Events are encoded once per node (id line + body), and the fan-out
// goroutine of the event's partition writes them to every subscriber with a
// non-blocking write syscall, coalescing what a connection gets from one
// broker batch into one chunk and one write. Only a connection whose socket
// buffer is full gets a flusher goroutine, which lives until the backlog is
// written; a backlog above Config.MaxPending closes the connection
// (ReasonSlowConsumer). Heartbeats are written by one sweeper goroutine.
//
// # Client policies
//
// Every connection attempt passes, before any other work: the source
// address's limits (429), the retry policy of package retry (a client that
// comes back before its hint gets a short 200 with the remaining wait, a
// persistent offender 429), the node's state and capacity (draining,
// MaxStreams, the AdmitRate token bucket: a short 200 with a jittered hint).
// A stream the node closes for a reason of its own (drain, kick, shutdown)
// gets a goodbye: a jittered retry hint, never shorter than what is left of
// the hint it was admitted with, and a comment naming the reason. Drain
// (SIGTERM in cmd/ssenode) turns /readyz 503 at once and closes the streams
// spread evenly over Config.DrainWindow. Vanished peers: writes have
// deadlines, and TCP_USER_TIMEOUT (Config.DeadPeerTimeout) makes the kernel
// drop a connection whose heartbeat stays unacknowledged.
//
// # Admin figures
//
// Server.Report and Server.MergeData give a node's counters, connection
// survival (package survival) and push latency (package latency) for the
// admin API; report.go says what is counted and with which clocks.
// Server.Connections, Kick, Topics and TopicInfo (admin_api.go) list and
// kick streams and describe topics.
//
// # Goroutines
//
//	goroutine                   owner          stops on                         waited by
//	broker reader loops         Server.Run     Run's ctx                        Server.Run (broker Run returns)
//	heartbeat sweeper           Server.Run     Run's ctx                        Server.Run
//	reaper (unregisters conns)  Server.Run     Run's ctx                        Server.Run
//	retry cookie key loader     Server.Run     key loaded, or Run's ctx         Server.Run
//	drain                       Server.Run     drain done, or Run's ctx         Server.Run
//	broker probe (report.go)    Server.Run     Run's ctx                        Server.Run
//	conn flusher (backlog only) the conn       backlog written, conn closed     Server.Run (flushers WaitGroup)
//	/v1/events handler          net/http       replay done (then it returns)    Server.Run (handlers WaitGroup)
//
// # Lock order
//
// partition.mu before conn.mu. Registration alone holds several partition
// locks, always in ascending partition order; everything else holds one. The
// replay cache's lock is a leaf: no other lock is taken while holding it. Closing a conn never takes a partition
// lock (the reaper unregisters it later), so it is safe under any lock.
// The push latency recorder (package latency, taken under conn.mu where
// bytes are written) and the lifetime log (package survival) only take
// their own locks.
package node
