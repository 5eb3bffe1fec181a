package loadtest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ssecluster/ssecluster/node/sse"
)

// How a stream's bytes get from its socket to stream.block:
//
//	socket ──read──▶ wire.unframe (chunked.go) ──▶ sse.Decoder ──▶ stream.block ──▶ stream.event
//
// The read is done by a poller loop (poll_linux.go: a few goroutines, each
// owning an epoll set of many sockets, one read(2) per wake-up into the
// loop's buffer) or, where there is no poller, by the stream's own
// goroutine (readConn). Either way there is one copy per line, none per
// event: framing is removed in place, the decoder reads complete lines where
// they lie, and the payload is parsed from the decoder's data buffer.

// connReadBuf is the read buffer of a stream read by its own goroutine
// (readConn); poller loops share a larger one per loop.
const connReadBuf = 4096

// respBody is what connect hands read: how the response body is framed and
// the body bytes that arrived with the head (still framed).
type respBody struct {
	chunked bool
	length  int64  // Content-Length when not chunked; -1: until the connection closes
	head    []byte // body bytes read with the head
}

// newRespBody describes resp's body, of which br holds the first bytes.
// br is not read again.
func newRespBody(resp *http.Response, br *bufio.Reader) *respBody {
	b := &respBody{length: resp.ContentLength}
	b.chunked = slices.Contains(resp.TransferEncoding, "chunked")
	b.head, _ = br.Peek(br.Buffered())
	return b
}

// liveCounts are a stream's additions to the pool's live counters not yet
// added: the reader adds them in one go per read (or per poller round)
// instead of an atomic operation per event.
type liveCounts struct {
	delivered, onTimeUniq int64
}

// flush adds c to the pool's counters and clears it.
func (c *liveCounts) flush(delivered, onTimeUniq *atomic.Int64) {
	if c.delivered != 0 {
		delivered.Add(c.delivered)
	}
	if c.onTimeUniq != 0 {
		onTimeUniq.Add(c.onTimeUniq)
	}
	*c = liveCounts{}
}

// wire is the state of a stream's response body while it is read: its
// framing, the SSE decoder, the receive time of the bytes being decoded and
// the live counts not yet added to the pool. It belongs to whoever reads
// the stream (see stream): the stream's goroutine, or a poller loop between
// the stream's registration and the loop's answer on done.
type wire struct {
	chunked bool
	left    int64 // body bytes left when not chunked; -1: until the connection closes
	chunks  chunkDecoder
	dec     sse.Decoder
	now     int64 // receive time of the bytes being decoded, Unix ns
	shard   int   // latency histogram shard to record into
	live    liveCounts
}

// reset starts a new response body; the decoder resumes from lastID.
func (w *wire) reset(body *respBody, lastID string, shard int) {
	w.chunked, w.left, w.chunks, w.shard = body.chunked, body.length, chunkDecoder{}, shard
	w.dec.Reset(lastID)
}

// unframe removes the body's framing from b, in place, and reports the
// payload and whether the body has ended.
func (w *wire) unframe(b []byte) (payload []byte, done bool, err error) {
	switch {
	case w.chunked:
		return w.chunks.decode(b)
	case w.left >= 0:
		n := min(int64(len(b)), w.left)
		w.left -= n
		return b[:n], w.left == 0, nil
	}
	return b, false, nil
}

// eof returns why the stream ended when the connection reached EOF: a
// body that was to end by itself and had not is cut short.
func (w *wire) eof() Reason {
	if w.chunked || w.left > 0 {
		return ReasonReset // as net/http's io.ErrUnexpectedEOF
	}
	return ReasonEOF
}

// feed handles bytes read from the stream's connection at now (Unix ns):
// it removes the framing, decodes the events and handles each. It reports
// whether the stream has ended and why.
func (s *stream) feed(b []byte, now int64) (Reason, bool) {
	w := &s.in
	payload, done, err := w.unframe(b)
	if len(payload) > 0 {
		w.now = now
		if err := w.dec.Feed(payload, s.block); err != nil {
			return readReason(err), true
		}
	}
	switch {
	case err != nil:
		return ReasonProtocol, true
	case done:
		return ReasonEOF, true
	}
	return ReasonNone, false
}

// readConn reads the stream on its own goroutine until it ends: the path
// where no poller is available. The connection is closed when ctx ends,
// which ends the read.
func (s *stream) readConn(ctx context.Context, nc net.Conn) Reason {
	p := s.pool
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer func() {
		stop()
		_ = nc.Close()
	}()
	buf := make([]byte, connReadBuf)
	for {
		n, err := nc.Read(buf)
		if n > 0 {
			r, end := s.feed(buf[:n], time.Now().UnixNano())
			s.in.live.flush(&p.delivered, &p.onTimeUniq)
			if end {
				return r
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return s.in.eof()
		case err != nil:
			return readReason(err)
		}
	}
}
