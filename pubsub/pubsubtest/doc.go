// Package pubsubtest holds what every pubsub.Broker test needs: the
// Conformance suite, which runs the whole Broker contract against one
// implementation, and StartRedis, which runs a real redis-server process for
// the Redis broker's tests.
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
// test's goroutine.
//
// # Goroutines
//
//	| goroutine                          | owner              | stops on                  | waited by                         |
//	|------------------------------------|--------------------|---------------------------|-----------------------------------|
//	| Run of the broker under test       | a Conformance case | the case cancelling ctx   | the case (done channel, deadline) |
//	| concurrent publishers              | a Conformance case | their fixed work          | sync.WaitGroup                    |
//	| redis-server waiter (cmd.Wait)     | Redis              | the process exiting       | Kill, Stop, test cleanup          |
//	| redis-server output copy (os/exec) | exec.Cmd           | the process's pipes close | cmd.Wait                          |
package pubsubtest
