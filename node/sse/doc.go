// Package sse is the Server-Sent Events wire format: an append-style encoder
// used by the node to build frames, and a strict parser used by the load
// tester and by tests. Nothing else in ssecluster knows SSE syntax.
//
// # Encoder
//
// AppendEvent, AppendID, AppendBody, AppendRetry and AppendComment append
// one piece of an event stream to a caller's buffer and allocate nothing when
// it has room. A frame is
//
//	AppendID(dst, id) + AppendBody(dst, typ, data) + "\n"
//
// so a node encodes the body of an event once and shares it between
// connections, prepending each connection's id line. Event types are a
// validated Type; payloads are split into data lines at CR, LF and CRLF, so
// no payload can inject a field or end an event early. AppendChunk,
// AppendChunkHeader and ChunkEnd frame bytes for HTTP/1.1 chunked transfer
// encoding, for writers on hijacked connections.
//
// # Parser
//
// Parser follows the WHATWG HTML Living Standard §9.2.5–9.2.6 exactly
// (https://html.spec.whatwg.org/multipage/server-sent-events.html): one
// leading BOM stripped, CR, LF and CRLF line ends (also split across reads),
// invalid UTF-8 replaced by U+FFFD as a browser's decoder does, sticky last
// event ID, retry only when all digits, unterminated block discarded at end
// of stream. For each block it reports what a browser would do, including
// blocks that fire nothing (id-only, retry hints, heartbeat comments).
// Parser.MaxLine bounds memory per stream.
//
// Decoder is the same parser for input pushed to it (Feed), for a caller
// that reads many sockets itself: it reports each block as a Block whose
// ID and Data alias its buffers, and allocates nothing in steady state.
// Parser and Decoder share the interpretation of fields (interpret.go) and
// are tested against the same spec table and against each other.
//
// # What it does not do
//
// No HTTP: it sets no headers, does not flush, reconnect or retry, and knows
// nothing of topics, cursors or brokers. The node owns the connection and
// the load tester owns reconnection; both use this package only for bytes.
//
// # Concurrency
//
// The encoders are pure functions of their arguments and safe to call from
// any goroutine; they never keep or modify their inputs. A Parser or a
// Decoder holds the state of one stream and is not safe for concurrent
// use; use one per connection, from one goroutine at a time. The package
// starts no goroutines.
package sse
