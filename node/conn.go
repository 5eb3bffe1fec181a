package node

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ssecluster/ssecluster/node/retry"
	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/node/survival"
	"github.com/ssecluster/ssecluster/pubsub"
)

// CloseReason says why a stream ended. The set is fixed (metric labels).
type CloseReason uint8

// Close reasons.
const (
	ReasonNone         CloseReason = iota
	ReasonClientGone               // the client closed the connection (or vanished: TCP_USER_TIMEOUT)
	ReasonWriteError               // a write failed
	ReasonSlowConsumer             // the backlog exceeded MaxPending
	ReasonShutdown                 // the node stopped (at once, or at the end of a drain)
	ReasonShed                     // set up but not served: the node turned not ready, or history could not be planned
	ReasonBrokerError              // history could not be read during a resume
	ReasonWriteTimeout             // a blocking write (replay, backlog) did not finish within WriteTimeout
	ReasonDrain                    // closed by a drain, spread over the window
	ReasonKicked                   // closed by an operator (admin API)
	ReasonTokenExpired             // its token expired (Config.Auth): the client reconnects with a fresh one
)

var reasonNames = [...]string{"none", "client_gone", "write_error", "slow_consumer", "shutdown", "shed", "broker_error",
	"write_timeout", "drain", "kicked", "token_expired"}

// Failure reports whether a close counts against the stream's survival: the
// node failed the client (write errors, timeouts, slow-consumer evictions,
// broker errors), as opposed to the client leaving or the operator moving
// it (drain, kick, shutdown) or its token running out.
func (r CloseReason) Failure() bool {
	switch r {
	case ReasonWriteError, ReasonSlowConsumer, ReasonBrokerError, ReasonWriteTimeout, ReasonShed:
		return true
	}
	return false
}

// goodbye reports whether the node closes the stream for a reason of its
// own and tells the client when to come back.
func (r CloseReason) goodbye() bool {
	switch r {
	case ReasonShutdown, ReasonShed, ReasonBrokerError, ReasonDrain, ReasonKicked, ReasonTokenExpired:
		return true
	}
	return false
}

func (r CloseReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// conn is one hijacked SSE stream. It has no goroutine of its own: writers
// are the fan-out goroutines, the heartbeat sweeper and, only while the
// socket is full, a flusher goroutine. All writes happen under mu, so the
// bytes of one stream never interleave.
type conn struct {
	id      uint64
	srv     *Server
	nc      net.Conn
	rc      syscall.RawConn
	chunked bool // HTTP/1.1 chunked framing; HTTP/1.0 streams are close-delimited
	since   time.Time
	remote  string
	addr    netip.Addr      // the source address its per-address limits count against
	life    survival.Handle // its record in the node's lifetime log
	expiry  *time.Timer     // closes the stream when its token expires; nil: no token expiry

	// admit is the retry state the stream was admitted with (what its
	// cookie says); a goodbye hint never undercuts it. healthy is set once
	// the stream lived Retry.HealthyAfter and got a fresh base hint.
	// Guarded by mu.
	admit   retry.State
	healthy bool

	// parts holds one entry per partition of the stream's topics, sorted by
	// partition. The slice is fixed at creation.
	parts []connPart

	mu        sync.Mutex
	closed    bool
	reason    CloseReason
	replaying bool   // the handler is writing history; live bytes wait in out
	flushing  bool   // a flusher goroutine owns the socket; bytes wait in out
	out       []byte // framed bytes waiting for the socket
	wrote     bool   // something was written since the last heartbeat sweep
	closedAt  time.Time

	// Admin figures: events (broker events, live or replayed) and bytes
	// written to the socket after the response head; pend holds the
	// publish time (Unix ns) of each live event waiting in out, so its
	// push latency is taken when it is really written; inflight is what a
	// flusher is writing now.
	events   int64
	bytes    int64
	pend     []int64
	inflight int

	// While the handler owns the socket (replaying, not flushing), a close
	// for a reason of the node's own cannot write its goodbye: closeLocked
	// stops the handler's writes with a past deadline and sets byeOwed, and
	// the handler writes the goodbye and closes the socket when it lets go
	// (letGoLocked). clean says the bytes written so far end at a frame
	// boundary (the head went out, no write was cut short), so a goodbye
	// may follow them.
	byeOwed bool
	clean   bool
}

// connPart is the stream's state in one partition.
type connPart struct {
	p      int
	topics []string // the stream's topics in this partition

	// Guarded by conn.mu: the resume point this stream has reached.
	epoch string
	cur   pubsub.Pos

	// floor: live events at or below it were already seen by the client
	// (its cursor came from a node further ahead). Set under the
	// partition lock before the conn is visible to fan-out; read only by
	// the partition's fan-out goroutine.
	floor pubsub.Pos

	// Owned by the partition's fan-out goroutine: grouping of one batch.
	batchGen uint64
	batchIdx int32
}

// wctx is the scratch state of one writing goroutine (a partition's fan-out,
// the sweeper): a reusable buffer and a non-blocking raw writer whose
// callback is allocated once.
type wctx struct {
	buf []byte
	rw  rawIO
	// ts holds the publish time (Unix ns) of each live event in the bytes
	// the next sendLocked sends; sendLocked consumes it.
	ts []int64
	// shard is the push latency recorder shard of this goroutine.
	shard int
}

func newWctx() *wctx {
	w := &wctx{buf: make([]byte, chunkHeadroom, 4096)}
	w.rw.init()
	return w
}

// rawIO performs one non-blocking read or write on a raw connection.
type rawIO struct {
	p       []byte
	n       int
	err     error
	writeFn func(fd uintptr) bool
	readFn  func(fd uintptr) bool
}

func (r *rawIO) init() {
	r.writeFn = func(fd uintptr) bool {
		for r.n < len(r.p) {
			n, err := syscall.Write(int(fd), r.p[r.n:])
			if n > 0 {
				r.n += n
			}
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return true // socket full: the caller keeps the rest
			case err != nil:
				r.err = err
				return true
			case n == 0:
				return true
			}
		}
		return true // never let the runtime park us until writable
	}
	r.readFn = func(fd uintptr) bool {
		for {
			n, err := syscall.Read(int(fd), r.p)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				r.n = -1 // nothing to read: alive
			case err != nil:
				r.err = err
			default:
				r.n = n // 0 is EOF
			}
			return true
		}
	}
}

// write writes as much of p as the socket takes now.
func (r *rawIO) write(rc syscall.RawConn, p []byte) (int, error) {
	r.p, r.n, r.err = p, 0, nil
	err := rc.Write(r.writeFn)
	n := r.n
	r.p = nil
	if err != nil {
		return n, err
	}
	return n, r.err
}

// probe reads whatever the peer sent without blocking and reports whether
// the connection is still open. Clients send nothing after the request;
// stray bytes are discarded.
func (r *rawIO) probe(rc syscall.RawConn, scratch []byte) bool {
	r.p, r.n, r.err = scratch, 0, nil
	err := rc.Read(r.readFn)
	r.p = nil
	return err == nil && r.err == nil && r.n != 0
}

// chunkHeadroom is reserved at the front of frame buffers for the chunk
// header, written once the payload's length is known.
const chunkHeadroom = 16

// frameChunk turns buf (headroom, then payload) into the bytes to write:
// the chunk header right before the payload, CRLF after it. For
// close-delimited streams it returns the payload alone.
func (c *conn) frameChunk(buf []byte) []byte {
	n := len(buf) - chunkHeadroom
	if !c.chunked {
		return buf[chunkHeadroom:]
	}
	var hdr [chunkHeadroom]byte
	h := sse.AppendChunkHeader(hdr[:0], n)
	start := chunkHeadroom - len(h)
	copy(buf[start:], h)
	return append(buf, '\r', '\n')[start:]
}

// sendLocked writes framed bytes, or queues them behind a backlog. The
// live events in b are w.ts: their push latency is recorded once they are
// written, now or by the flusher (a partial write counts all of them as
// written when the backlog is). c.mu is held.
func (c *conn) sendLocked(w *wctx, b []byte) {
	ts := w.ts // read below, before anything appends to w.ts again
	w.ts = w.ts[:0]
	if c.closed {
		return
	}
	c.wrote = true
	if c.replaying || c.flushing {
		c.queueLocked(b)
		if !c.closed {
			c.pend = append(c.pend, ts...)
		}
		return
	}
	n, err := w.rw.write(c.rc, b)
	c.bytes += int64(n)
	if err != nil {
		c.closeLocked(writeReason(err))
		return
	}
	if n < len(b) {
		c.queueLocked(b[n:])
		if !c.closed {
			c.pend = append(c.pend, ts...)
			c.startFlushLocked()
		}
		return
	}
	if len(ts) > 0 {
		c.events += int64(len(ts))
		c.srv.lat.Record(w.shard, time.Now().UnixNano(), ts)
	}
}

func (c *conn) queueLocked(b []byte) {
	if len(c.out)+len(b) > c.srv.cfg.MaxPending {
		c.closeLocked(ReasonSlowConsumer)
		return
	}
	c.out = append(c.out, b...)
}

// blockingWriteReason classifies the error of a deadline-bound write.
func blockingWriteReason(err error) CloseReason {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ReasonWriteTimeout
	}
	return writeReason(err)
}

func writeReason(err error) CloseReason {
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, net.ErrClosed) {
		return ReasonClientGone
	}
	return ReasonWriteError
}

// startFlushLocked hands the socket to a flusher goroutine until the
// backlog is written.
func (c *conn) startFlushLocked() {
	c.flushing = true
	c.srv.flushers.Add(1)
	go c.flushLoop()
}

// flushLoop writes the backlog with blocking, deadline-bound writes. It
// swaps buffers so fan-out can queue while a write is in flight.
func (c *conn) flushLoop() {
	defer c.srv.flushers.Done()
	var buf []byte
	var ts []int64
	for {
		c.mu.Lock()
		// The previous write (if any) succeeded.
		c.bytes += int64(len(buf))
		c.events += int64(len(ts))
		c.inflight = 0
		if c.closed || len(c.out) == 0 {
			c.flushing = false
			if cap(c.out) > 4096 || c.closed {
				c.out = nil // an idle stream keeps no buffer
			}
			if cap(c.pend) > 512 || c.closed {
				c.pend = nil
			}
			c.mu.Unlock()
			return
		}
		buf, c.out = c.out, buf[:0]
		ts, c.pend = c.pend, ts[:0]
		c.inflight = len(buf)
		c.mu.Unlock()
		if err := c.writeBlocking(buf); err != nil {
			c.close(blockingWriteReason(err))
			return
		}
		if len(ts) > 0 {
			c.srv.lat.Record(int(c.id), time.Now().UnixNano(), ts)
		}
	}
}

// writeBlocking writes b with a deadline. Only the goroutine that owns the
// socket (the handler while replaying, the flusher) may call it. It fails
// at once (net.ErrClosed) once the stream is closed.
func (c *conn) writeBlocking(b []byte) error {
	// The deadline is set under mu, so it never replaces the past deadline
	// with which closeLocked stops the handler.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	err := c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	c.mu.Unlock()
	if err != nil {
		return err
	}
	n, err := c.nc.Write(b)
	c.mu.Lock()
	switch {
	case err == nil:
		c.clean = true
	case n > 0:
		c.clean = false // a frame was cut short
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	// The deadline must not outlive this write: RawConn.Write checks it
	// too, so every later non-blocking write would fail once it passed.
	return c.nc.SetWriteDeadline(time.Time{})
}

// close ends the stream.
func (c *conn) close(reason CloseReason) {
	c.mu.Lock()
	c.closeLocked(reason)
	c.mu.Unlock()
}

// closeLocked ends the stream. When the socket is free and the reason is
// ours (not the client's), it first writes a goodbye: a random retry hint
// and a comment naming the reason, then the end of the chunked body, so the
// client reconnects after the hint instead of at once. While the handler
// owns the socket, the handler writes the goodbye when it lets go; while a
// flusher does (a backlog), the stream ends without one. It never blocks
// and never takes a partition lock (the reaper unregisters the conn).
func (c *conn) closeLocked(reason CloseReason) {
	if c.closed {
		return
	}
	c.closed = true
	c.reason = reason
	c.closedAt = time.Now()
	c.out, c.pend = nil, nil
	switch {
	case reason.goodbye() && c.replaying && !c.flushing:
		// The handler owns the socket (head, resets, history): fail its
		// write in flight and the next ones at once, and leave the
		// goodbye and the socket to it (letGoLocked).
		c.byeOwed = true
		_ = c.nc.SetWriteDeadline(longAgo)
		c.srv.reap(c)
		return
	case reason.goodbye() && !c.replaying && !c.flushing:
		c.writeGoodbyeLocked()
	}
	c.closeSocket()
	c.srv.reap(c)
}

// longAgo is a deadline in the past: it fails a blocked write at once.
var longAgo = time.Unix(1, 0)

// writeGoodbyeLocked writes the goodbye of c.reason without blocking.
func (c *conn) writeGoodbyeLocked() {
	var rw rawIO
	rw.init()
	b := make([]byte, chunkHeadroom, 128)
	b = c.appendGoodbye(b, c.reason)
	b = c.frameChunk(b)
	if c.chunked {
		b = append(b, sse.ChunkEnd...)
	}
	n, _ := rw.write(c.rc, b)
	c.bytes += int64(n)
}

func (c *conn) closeSocket() {
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite() // FIN after the goodbye, before close
	}
	_ = c.nc.Close()
}

// letGoLocked ends the handler's ownership of the socket. If the stream
// was closed meanwhile for a reason of the node's own, it writes the
// goodbye closeLocked could not (when the stream is at a frame boundary)
// and closes the socket.
func (c *conn) letGoLocked() {
	c.replaying = false
	if !c.byeOwed {
		return
	}
	c.byeOwed = false
	_ = c.nc.SetWriteDeadline(time.Time{})
	if c.clean {
		c.writeGoodbyeLocked()
	}
	c.closeSocket()
}

// appendGoodbye appends the last frame of a stream the node closes: a
// jittered retry hint (never shorter than what is left of the admission's)
// and a comment naming the reason. c.mu is held.
func (c *conn) appendGoodbye(b []byte, reason CloseReason) []byte {
	h := c.srv.cfg.Retry.Goodbye(c.admit, time.Now(), retry.GlobalRand{})
	b = sse.AppendRetry(b, h.Milliseconds())
	b = sse.AppendComment(b, reason.String())
	return append(b, '\n')
}

// appendIDLine appends "id: <cursor>\n" for the stream's current position
// in every partition. c.mu is held.
func (c *conn) appendIDLine(b []byte) []byte {
	var tmp [256]byte
	id := tmp[:0]
	for i := range c.parts {
		if i > 0 {
			id = append(id, '_')
		}
		cp := &c.parts[i]
		id = pubsub.ID{Partition: cp.p, Epoch: cp.epoch, Pos: cp.cur}.AppendText(id)
	}
	return sse.AppendID(b, id)
}

// heartbeat is called by the sweeper every Heartbeat/2. It closes streams
// whose client went away, and writes a heartbeat to streams that wrote
// nothing since the previous sweep: an id-only frame when the partitions
// moved on without events for this stream (so a resume starts from there,
// not from far back), else a comment.
func (c *conn) heartbeat(w *wctx, h *hub, probe []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.replaying {
		return
	}
	if !w.rw.probe(c.rc, probe) {
		c.closeLocked(ReasonClientGone)
		return
	}
	if !c.healthy && time.Since(c.since) >= c.srv.cfg.Retry.HealthyAfter {
		// A healthy stream: its next reconnect starts the backoff over, so
		// tell the client a fresh base hint now.
		c.healthy = true
		h := c.srv.cfg.Retry.Hint(0, retry.GlobalRand{})
		c.admit = retry.State{Issued: time.Now(), Hint: h}
		b := sse.AppendRetry(w.buf[:chunkHeadroom], h.Milliseconds())
		b = append(b, '\n')
		c.sendLocked(w, c.frameChunk(b))
		w.buf = b[:0]
		c.wrote = false
		return
	}
	if c.wrote || c.flushing {
		c.wrote = false
		return
	}
	advanced := false
	for i := range c.parts {
		cp := &c.parts[i]
		// Every event at or below the partition's head has been handed to
		// this stream already (fan-out stores head after sending), so
		// moving the cursor there skips nothing.
		if head, ok := h.parts[cp.p].headID(); ok && head.Epoch == cp.epoch && cp.cur.Less(head.Pos) {
			cp.cur = head.Pos
			advanced = true
		}
	}
	b := w.buf[:chunkHeadroom]
	if advanced {
		b = c.appendIDLine(b)
		b = append(b, '\n')
	} else {
		b = append(b, ":\n\n"...)
	}
	c.sendLocked(w, c.frameChunk(b))
	w.buf = b[:0]
}
