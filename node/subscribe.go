package node

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ssecluster/ssecluster/node/retry"
	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

// Reset reasons sent to clients in addition to the pubsub ones.
const (
	resetMalformed = "malformed_cursor"
)

// subscribe serves GET /v1/events: validate, hijack, write the response
// head, register with the hub, replay history or send resets, then hand the
// stream to the hub and return. See doc.go for the connection model.
func (s *Server) subscribe(c echo.Context) error {
	req := c.Request()
	query, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		return errorf(http.StatusBadRequest, "bad_query", "query string does not parse")
	}
	topics, err := s.parseTopics(query["topic"])
	if err != nil {
		return err
	}
	cursorText, err := s.cursorText(req, query)
	if err != nil {
		return err
	}

	// Admission, cheapest first and before any other work: the source
	// address's limits, the token, the client's retry hint, the node's own
	// state and capacity.
	now := time.Now()
	addr := s.clientAddr(req)
	if r, wait, ok := s.addrs.acquire(addr, now); !ok {
		return s.tooMany(c, r, wait, nil)
	}
	served := false
	defer func() {
		if !served {
			s.addrs.release(addr)
		}
	}()
	// The token after the per-address limits, which bound how much
	// signature checking one address can make the node do.
	grant, err := s.subscribeGrant(c)
	if err != nil {
		return err
	}
	if err := checkSubscribe(grant, topics); err != nil {
		return err
	}
	prev, known := s.retryState(req, cursorText != "")
	dec := s.cfg.Retry.Decide(prev, known, now, retry.GlobalRand{})
	switch dec.Verdict {
	case retry.TooMany:
		return s.tooMany(c, RefuseTooMany, dec.Hint, &dec.Next)
	case retry.TooEarly:
		return s.refuse(c, RefuseEarly, dec.Hint, dec.Next)
	}
	var refusal Refusal = numRefusals
	switch {
	case s.stopping.Load() || s.drain.active.Load():
		refusal = RefuseDraining
	case s.conns.len() >= s.cfg.MaxStreams:
		refusal = RefuseCapacity
	case s.admitLim != nil && !s.admitLim.AllowN(now, 1):
		refusal = RefuseAdmission
	}
	if refusal != numRefusals {
		st, hint := s.cfg.Retry.Shed(dec.Next, now, retry.GlobalRand{})
		return s.refuse(c, refusal, hint, st)
	}

	// A bad cursor is not an HTTP error: a browser would give up for good
	// on anything but 200. The stream starts with reset events instead.
	var cursor pubsub.Cursor
	resetAll := ""
	if cursorText != "" {
		if cursor, err = pubsub.ParseCursor(cursorText, s.broker.Partitions()); err != nil {
			resetAll = resetMalformed
		}
	}

	s.handlers.Add(1)
	defer s.handlers.Done()
	nc, _, err := http.NewResponseController(c.Response()).Hijack()
	if err != nil {
		return errorf(http.StatusInternalServerError, "streaming_unsupported", "this server cannot stream")
	}
	sc, ok := nc.(syscall.Conn)
	var rc syscall.RawConn
	if ok {
		rc, err = sc.SyscallConn()
	}
	if !ok || err != nil {
		_ = nc.Close()
		s.log.Error("hijacked connection has no raw access", "type", nc)
		return nil
	}
	_ = nc.SetReadDeadline(time.Time{}) // the server's header deadline no longer applies
	setUserTimeout(rc, s.cfg.DeadPeerTimeout)

	cn := &conn{
		id:        s.nextID.Add(1),
		srv:       s,
		nc:        nc,
		rc:        rc,
		chunked:   req.ProtoAtLeast(1, 1),
		since:     time.Now(),
		remote:    req.RemoteAddr,
		addr:      addr,
		life:      s.life.Open(), // before the conn is visible: the reaper reads it
		admit:     dec.Next,
		replaying: true,
	}
	served = true // released when the conn is reaped
	for p, ts := range groupByPartition(topics, s.broker.Partitions()) {
		cn.parts = append(cn.parts, connPart{p: p, topics: ts})
	}
	slices.SortFunc(cn.parts, func(a, b connPart) int { return a.p - b.p })
	if dl := s.tokenDeadline(grant); !dl.IsZero() {
		// Stopped when the conn is reaped; a late fire closes a closed conn,
		// which does nothing.
		cn.expiry = time.AfterFunc(time.Until(dl), func() { cn.close(ReasonTokenExpired) })
	}
	s.conns.add(cn)
	s.stats.ConnsOpened.Add(1)

	if err := cn.writeBlocking(s.appendHead(nil, cn, c.Response().Header(), dec.Hint)); err != nil {
		s.shed(cn, ReasonClientGone)
		return nil
	}
	switch {
	case s.stopping.Load():
		s.shed(cn, ReasonShutdown)
		return nil
	case s.drain.active.Load():
		s.shed(cn, ReasonDrain)
		return nil
	case !s.hub.started():
		s.shed(cn, ReasonShed)
		return nil
	}
	s.startStream(req.Context(), cn, cursor, resetAll)
	return nil
}

// cursorText returns the client's cursor: the Last-Event-ID header (what
// EventSource sends when it reconnects), else the last_event_id query
// parameter (for a first connection that resumes).
func (s *Server) cursorText(req *http.Request, query url.Values) (string, error) {
	hv, qv := req.Header.Values("Last-Event-ID"), query["last_event_id"]
	if len(hv) > 1 || len(qv) > 1 {
		return "", errorf(http.StatusBadRequest, "ambiguous_cursor", "send one Last-Event-ID")
	}
	var text string
	switch {
	case len(hv) == 1 && hv[0] != "":
		text = hv[0]
	case len(qv) == 1:
		text = qv[0]
	}
	if len(text) > s.cfg.MaxCursorBytes {
		return "", errorf(http.StatusBadRequest, "cursor_too_long", "Last-Event-ID exceeds %d bytes", s.cfg.MaxCursorBytes)
	}
	return text, nil
}

// parseTopics validates the topic parameters and removes duplicates.
func (s *Server) parseTopics(raw []string) ([]string, error) {
	if len(raw) == 0 {
		return nil, errorf(http.StatusBadRequest, "missing_topic", "at least one topic parameter is required")
	}
	if len(raw) > s.cfg.MaxTopics {
		return nil, errorf(http.StatusBadRequest, "too_many_topics", "at most %d topics per stream", s.cfg.MaxTopics)
	}
	topics := make([]string, 0, len(raw))
	for i, t := range raw {
		if !validTopic(t) {
			return nil, errorf(http.StatusBadRequest, "invalid_topic",
				"topic %d: must be 1..%d bytes of [A-Za-z0-9._:@/-] starting with a letter or digit", i+1, MaxTopicLen)
		}
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	return topics, nil
}

func groupByPartition(topics []string, partitions int) map[int][]string {
	m := make(map[int][]string)
	for _, t := range topics {
		p := pubsub.PartitionOf(t, partitions)
		m[p] = append(m[p], t)
	}
	return m
}

// appendHead appends the response head (with the retry cookie and the CORS
// headers middleware set in h) and the first frame, the retry hint. The
// connection is hijacked, so the head is written by hand.
func (s *Server) appendHead(b []byte, c *conn, h http.Header, hint time.Duration) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\n"+
		"Content-Type: text/event-stream\r\n"+
		"Cache-Control: no-cache\r\n"+
		"X-Accel-Buffering: no\r\n"+
		"X-SSE-Node: "...)
	b = append(b, s.cfg.NodeID...) // validated: [A-Za-z0-9._-]
	b = append(b, "\r\n"...)
	b = s.appendRetryCookie(b, c.admit)
	b = appendCORSHeaders(b, h)
	if c.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n\r\n"...)
	} else {
		b = append(b, "Connection: close\r\n\r\n"...)
	}
	f := make([]byte, chunkHeadroom, 64)
	f = sse.AppendRetry(f, hint.Milliseconds())
	f = append(f, '\n')
	return append(b, c.frameChunk(f)...)
}

// shed ends a stream that should come back later: 200 was already sent, so
// it gets a jittered retry hint and the end of the body.
func (s *Server) shed(c *conn, reason CloseReason) {
	c.mu.Lock()
	c.letGoLocked()
	c.closeLocked(reason)
	c.mu.Unlock()
}

// partPlan is what a resume does in one partition.
type partPlan struct {
	resume bool       // replay history after from
	from   pubsub.Pos // the client's position (resume) or its floor
	epoch  string     // epoch of from
	floor  bool       // from is ahead of this node: skip live events up to it
	reset  string     // reason for reset events, "" for none
}

// startStream plans the resume, registers the stream, sends resets and
// history, then switches the stream to live delivery.
func (s *Server) startStream(ctx context.Context, c *conn, cursor pubsub.Cursor, resetAll string) {
	plans := make([]partPlan, len(c.parts))
	for k := range c.parts {
		pl, ok := s.plan(ctx, c.parts[k].p, cursor, resetAll)
		if !ok {
			s.shed(c, ReasonShed)
			return
		}
		plans[k] = pl
	}
	// rv is the cursor as the client will know it while history is being
	// written: replayed partitions move from the client's position to their
	// registration point (regs), the others are there already. Fan-out may
	// queue live events right after a registration and move the conn's own
	// position past them, so until the queue is written the client is only
	// ever told regs, never c.parts[k].cur.
	floors := make([]regFloor, len(c.parts))
	for k, pl := range plans {
		if pl.floor {
			floors[k] = regFloor{Epoch: pl.epoch, Pos: pl.from}
		}
	}
	reg, ok := s.hub.register(c, floors)
	if !ok {
		s.shed(c, ReasonShed)
		return
	}
	rv := make([]pubsub.ID, len(c.parts))
	heads := make([]pubsub.ID, len(c.parts))
	regs := make([]pubsub.ID, len(c.parts))
	for k := range c.parts {
		pl := &plans[k]
		heads[k], regs[k], rv[k] = reg[k].head, reg[k].at, reg[k].at
		if pl.reset == "" && pl.epoch != heads[k].Epoch && (pl.resume || pl.floor) {
			pl.reset = pubsub.ReasonEpochChanged // the partition restarted meanwhile
		}
		if pl.resume && pl.reset == "" {
			rv[k].Pos = pl.from
		}
	}

	w := &streamWriter{c: c, buf: make([]byte, chunkHeadroom, 4096), regs: regs}
	for k := range c.parts {
		if plans[k].reset != "" {
			w.resets(rv, k, plans[k].reset)
		}
	}
	for k := range c.parts {
		pl := &plans[k]
		if !pl.resume || pl.reset != "" || !pl.from.Less(heads[k].Pos) {
			continue
		}
		if reason, err := s.replay(ctx, w, rv, k, pl.from, heads[k]); err != nil {
			w.err = errors.Join(w.err, err)
		} else if reason != "" {
			w.resets(rv, k, reason)
		}
		rv[k] = regs[k] // replay done: at the registration point
		if w.err != nil {
			break
		}
	}
	if w.err == nil {
		w.buf = appendCursorLine(w.buf, rv)
		w.buf = append(w.buf, '\n')
		w.flush()
	}
	if w.err != nil {
		reason := ReasonClientGone
		switch {
		case errors.Is(w.err, pubsub.ErrUnavailable) || errors.Is(w.err, pubsub.ErrClosed):
			reason = ReasonBrokerError
		case errors.Is(w.err, os.ErrDeadlineExceeded):
			reason = ReasonWriteTimeout // the client stopped reading its history
		}
		s.shed(c, reason)
		return
	}
	// Live: whatever fan-out queued meanwhile follows the history.
	c.mu.Lock()
	c.letGoLocked()
	if len(c.out) > 0 && !c.closed {
		c.startFlushLocked()
	} else {
		c.out, c.pend = nil, nil
	}
	c.mu.Unlock()
}

// plan decides what partition p of a new stream needs, before it registers.
// It reports false when the node cannot decide now (broker unreachable, or
// the node is behind the client's epoch): the stream is shed and retried.
func (s *Server) plan(ctx context.Context, p int, cursor pubsub.Cursor, resetAll string) (partPlan, bool) {
	if resetAll != "" {
		return partPlan{reset: resetAll}, true
	}
	id, ok := cursor.Find(p)
	if !ok {
		return partPlan{}, true // no position: a topic new to this client starts live
	}
	head, ok := s.hub.parts[p].headID()
	if !ok {
		return partPlan{}, false
	}
	if s.hub.parts[p].suspended.Load() {
		// The reader lost the store, which may have failed over to a
		// replica that lacks what this node read: only the store can say
		// whether the cursor still names an event (a replay from it would
		// check, but a cursor at this node's head has nothing to replay).
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _, err := s.broker.Range(qctx, pubsub.RangeQuery{Partition: p, Epoch: id.Epoch, After: id.Pos, Until: id.Pos})
		cancel()
		if gone, ok := errors.AsType[*pubsub.HistoryGoneError](err); ok {
			return partPlan{reset: gone.Reason}, true
		}
		if err != nil {
			return partPlan{}, false
		}
	}
	if id.Epoch == head.Epoch && !head.Pos.Less(id.Pos) {
		return partPlan{resume: true, from: id.Pos, epoch: id.Epoch}, true
	}
	// The cursor is from another epoch or ahead of this node: only the
	// broker can tell whether it is real.
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	bh, err := s.broker.Head(qctx, p)
	if err != nil {
		return partPlan{}, false
	}
	switch {
	case bh.Epoch != id.Epoch:
		return partPlan{reset: pubsub.ReasonEpochChanged}, true
	case bh.Pos.Less(id.Pos):
		return partPlan{reset: pubsub.ReasonAhead}, true
	case id.Epoch != head.Epoch:
		return partPlan{}, false // this node has not caught up with the new epoch yet
	}
	return partPlan{floor: true, from: id.Pos, epoch: id.Epoch}, true
}

// replay writes the history of partition k after from up to head, from the
// replay cache when it holds all of it, else from the broker. It returns a
// reset reason when the broker no longer holds that history.
func (s *Server) replay(ctx context.Context, w *streamWriter, rv []pubsub.ID, k int, from pubsub.Pos, head pubsub.ID) (string, error) {
	cp := &w.c.parts[k]
	single := len(w.c.parts) == 1
	evs, ok := []cached(nil), false
	if !s.hub.parts[cp.p].suspended.Load() {
		evs, ok = s.cache.lookup(cp.p, head.Epoch, cp.topics, from, head.Pos, nil)
	}
	if ok {
		s.stats.CacheHits.Add(1)
		for _, e := range evs {
			if single {
				w.buf = append(w.buf, e.frame...)
			} else {
				rv[k].Pos = e.pos
				w.buf = appendCursorLine(w.buf, rv)
				w.buf = append(w.buf, e.frame[e.bodyOff:]...)
			}
			w.evs++
			w.event()
		}
		s.stats.Replayed.Add(int64(len(evs)))
		return "", w.err
	}
	s.stats.CacheMisses.Add(1)
	after := from
	for after.Less(head.Pos) {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		evs, scanned, err := s.broker.Range(qctx, pubsub.RangeQuery{
			Partition: cp.p, Epoch: head.Epoch, After: after, Until: head.Pos,
			Topics: cp.topics, Limit: s.cfg.ReplayPage,
		})
		cancel()
		s.stats.BrokerReads.Add(1)
		if gone, ok := errors.AsType[*pubsub.HistoryGoneError](err); ok {
			return gone.Reason, nil
		}
		if err != nil {
			return "", err
		}
		for i := range evs {
			ev := &evs[i]
			frame, bodyOff, ok := encodeEvent(ev)
			if !ok {
				continue
			}
			if single {
				w.buf = append(w.buf, frame...)
			} else {
				rv[k].Pos = ev.ID.Pos
				w.buf = appendCursorLine(w.buf, rv)
				w.buf = append(w.buf, frame[bodyOff:]...)
			}
			w.evs++
			w.event()
		}
		s.stats.Replayed.Add(int64(len(evs)))
		if w.err != nil {
			return "", w.err
		}
		if !after.Less(scanned) {
			break // no progress: never loop forever on a broker bug
		}
		after = scanned
	}
	return "", w.err
}

// streamWriter batches the handler's writes during a resume. Replayed
// events count in the conn's events and bytes, not in push latency (their
// publish time is history, not how late the node is).
type streamWriter struct {
	c    *conn
	regs []pubsub.ID // registration point of each partition
	buf  []byte      // chunkHeadroom, then payload
	evs  int64       // events in buf
	err  error
}

// event is called after each event appended; it writes when enough piled up.
func (w *streamWriter) event() {
	if len(w.buf) >= maxWrite {
		w.flush()
	}
}

func (w *streamWriter) flush() {
	if w.err == nil && len(w.buf) > chunkHeadroom {
		b := w.c.frameChunk(w.buf)
		if w.err = w.c.writeBlocking(b); w.err == nil {
			w.c.mu.Lock()
			w.c.bytes += int64(len(b))
			w.c.events += w.evs
			w.c.mu.Unlock()
		}
	}
	w.buf = w.buf[:chunkHeadroom]
	w.evs = 0
}

// resets writes a reset event for every topic of partition k and moves the
// client's cursor there to the registration point.
func (w *streamWriter) resets(rv []pubsub.ID, k int, reason string) {
	cp := &w.c.parts[k]
	rv[k] = w.regs[k]
	for _, t := range cp.topics {
		w.buf = appendCursorLine(w.buf, rv)
		w.buf = sse.AppendBody(w.buf, resetType, resetData(t, reason))
		w.buf = append(w.buf, '\n')
		w.c.srv.stats.Resets.Add(1)
	}
	w.event()
}

// resetData is the JSON of a reset event.
func resetData(topic, reason string) []byte {
	return []byte(`{"topic":` + strconv.Quote(topic) + `,"reason":"` + reason + `"}`)
}

// appendCursorLine appends "id: <cursor>\n" for ids.
func appendCursorLine(b []byte, ids []pubsub.ID) []byte {
	var tmp [256]byte
	return sse.AppendID(b, pubsub.Cursor(ids).AppendText(tmp[:0]))
}
