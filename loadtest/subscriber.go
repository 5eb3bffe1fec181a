package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssecluster/ssecluster/node/sse"
)

// connBufSize is the buffer that reads the response head. It is garbage
// once the head is read: the body bytes that came with it are handed to
// read, and the body is then read into a buffer per poller loop (reader.go).
const connBufSize = 512

// Pool holds Config.Subs SSE streams over raw TCP, parses them with
// sse.Decoder and records what each one sees. Create it with NewPool, run it
// with Run; read its figures with Report once Run has returned.
type Pool struct {
	cfg      Config
	addr     string // host:port to dial
	host     string // the Host header
	reqHead  string // "GET <path and query up to the topic>"
	reqTail  string // the rest of the request target after the topic
	reqTopic bool   // whether the target holds the topic at all
	reqSep   string // "&<name>=" before each further topic of a stream (Config.TopicsPerStream)
	auth     string // "Authorization: Bearer <SubscribeToken>\r\n", or ""

	ready    chan struct{} // closed once every stream made its first attempt
	firstTry sync.WaitGroup

	// poll reads the streams' sockets; nil: each stream's goroutine reads
	// its own (set by Run; noPoll, for tests, keeps it nil).
	poll   *poller
	noPoll bool

	lat  *shardedHist
	ttMu sync.Mutex // guards ttfb, tth
	ttfb *Histogram
	tth  *Histogram

	// Live counters, read by progress lines and the drain check.
	connected   atomic.Int64 // streams connected now
	established atomic.Int64 // streams that got a stream at least once
	attempts    atomic.Int64 // connection attempts so far
	delivered   atomic.Int64 // events with a valid payload
	onTimeUniq  atomic.Int64 // distinct events received by on-time streams

	mu          sync.Mutex // guards what follows
	topicSubs   []int64    // on-time streams per topic
	topicUnique []int64    // distinct events received by on-time streams, per topic
	totals      streamCounters

	rc reconnects // reconnect waits, hints and times to resume

	ran atomic.Bool
}

// streamCounters is what one stream counts; folded into the pool when the
// stream ends.
type streamCounters struct {
	attempts, connectOK, connectFail int64
	failReasons, drops               reasonCounts
	httpStatus                       map[int]int64
	established, late, reconnects    int64
	aliveAtEnd                       int64

	events, delivered, badPayload, foreign int64
	unique, duplicates, reordered, gaps    int64
	missing                                int64
	resets, otherEvents, comments, idOnly  int64
	retryHints, retryMinMs, retryMaxMs     int64

	resumes resumeCounts
}

func (c *streamCounters) add(o *streamCounters) {
	c.attempts += o.attempts
	c.connectOK += o.connectOK
	c.connectFail += o.connectFail
	for i := range c.failReasons {
		c.failReasons[i] += o.failReasons[i]
		c.drops[i] += o.drops[i]
	}
	for code, n := range o.httpStatus {
		if c.httpStatus == nil {
			c.httpStatus = make(map[int]int64)
		}
		c.httpStatus[code] += n
	}
	c.established += o.established
	c.late += o.late
	c.reconnects += o.reconnects
	c.aliveAtEnd += o.aliveAtEnd
	c.events += o.events
	c.delivered += o.delivered
	c.badPayload += o.badPayload
	c.foreign += o.foreign
	c.unique += o.unique
	c.duplicates += o.duplicates
	c.reordered += o.reordered
	c.gaps += o.gaps
	c.missing += o.missing
	c.resets += o.resets
	c.otherEvents += o.otherEvents
	c.comments += o.comments
	c.idOnly += o.idOnly
	mergeRange(&c.retryHints, &c.retryMinMs, &c.retryMaxMs, o.retryHints, o.retryMinMs, o.retryMaxMs)
	c.resumes.add(&o.resumes)
}

// mergeRange adds n observations spanning [lo, hi] to a count and its
// range; a range with count 0 is empty, whatever its bounds hold.
func mergeRange(count, low, high *int64, n, lo, hi int64) {
	if n == 0 {
		return
	}
	if *count == 0 || lo < *low {
		*low = lo
	}
	if *count == 0 || hi > *high {
		*high = hi
	}
	*count += n
}

// NewPool checks cfg and returns a pool for its streams.
func NewPool(cfg Config) (*Pool, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	events := cfg.EventsURL
	if events == "" {
		events = strings.TrimSuffix(cfg.URL, "/") + "/v1/events?topic={topic}"
	}
	u, _ := url.Parse(strings.ReplaceAll(events, "{topic}", "t")) // validated
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	// The request target is the URL from its path on; the topic goes where
	// the template says.
	target := events[strings.Index(events, "//")+2:]
	if i := strings.IndexAny(target, "/?"); i >= 0 {
		target = target[i:]
	} else {
		target = "/"
	}
	if target[0] == '?' {
		target = "/" + target
	}
	head, tail, hasTopic := strings.Cut(target, "{topic}")
	sep := ""
	if name, ok := topicParam(head); ok {
		sep = "&" + name + "="
	}
	return &Pool{
		cfg:         cfg,
		addr:        addr,
		host:        u.Host,
		reqHead:     "GET " + head,
		reqTail:     tail,
		reqTopic:    hasTopic,
		reqSep:      sep,
		auth:        authLine(cfg.SubscribeToken),
		ready:       make(chan struct{}),
		lat:         newShardedHist(),
		rc:          newReconnects(),
		ttfb:        NewHistogram(),
		tth:         NewHistogram(),
		topicSubs:   make([]int64, cfg.Topics),
		topicUnique: make([]int64, cfg.Topics),
	}, nil
}

// Ready is closed once every stream has made its first connection attempt
// (established or failed). Streams first established after it are "late":
// they may have missed events, so they do not count in expected deliveries.
func (p *Pool) Ready() <-chan struct{} { return p.ready }

// Established returns how many streams have been established so far.
func (p *Pool) Established() int64 { return p.established.Load() }

// Attempts returns how many connection attempts were made so far.
func (p *Pool) Attempts() int64 { return p.attempts.Load() }

// Connected returns how many streams are connected now.
func (p *Pool) Connected() int64 { return p.connected.Load() }

// Delivered returns how many events with a valid payload arrived so far.
func (p *Pool) Delivered() int64 { return p.delivered.Load() }

// expected returns the deliveries owed to on-time streams when published[t]
// events were published on topic t, and how many of them arrived.
func (p *Pool) expected(published []int64) (want, got int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, n := range published {
		if t < len(p.topicSubs) {
			want += n * p.topicSubs[t]
		}
	}
	return want, p.onTimeUniq.Load()
}

// Run starts the streams at Config.Ramp per second and holds them until
// ctx ends, then closes them and returns once every stream goroutine has
// ended. It returns an error only if called twice.
func (p *Pool) Run(ctx context.Context) error {
	if !p.ran.CompareAndSwap(false, true) {
		return errors.New("loadtest: Pool.Run called twice")
	}
	var wg sync.WaitGroup
	if p.noPoll {
		// each stream reads on its own goroutine
	} else if pl, err := newPoller(0); err != nil {
		p.cfg.Logger.Warn("loadtest: streams read by one goroutine each", "err", err)
	} else {
		p.poll = pl
		wg.Go(func() { pl.run(ctx, p) }) // ends with ctx, closing the sockets it holds
	}
	p.firstTry.Add(p.cfg.Subs)
	wg.Go(func() { // ends once every stream made its first attempt
		p.firstTry.Wait()
		close(p.ready)
	})
	start := time.Now()
	started := 0
	for ; started < p.cfg.Subs; started++ {
		if p.cfg.Ramp > 0 {
			due := start.Add(time.Duration(float64(started) / p.cfg.Ramp * float64(time.Second)))
			if !sleepUntil(ctx, due) {
				break
			}
		} else if ctx.Err() != nil {
			break
		}
		i := p.cfg.First + started
		s := &stream{pool: p, key: i, topicIdx: i * p.cfg.TopicsPerStream % p.cfg.Topics}
		if n := len(p.cfg.SourceAddrs); n > 0 {
			s.local = &net.TCPAddr{IP: p.cfg.SourceAddrs[started%n].AsSlice()}
		}
		wg.Go(func() { s.run(ctx) })
	}
	p.firstTry.Add(started - p.cfg.Subs) // streams never started
	<-ctx.Done()
	wg.Wait()
	return nil
}

// sleepUntil waits until t or ctx's end and reports whether t came first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// stream is one subscriber. Everything in it is owned by its goroutine.
type stream struct {
	pool     *Pool
	key      int // global index
	topicIdx int // the stream's (first) topic
	topic    string
	local    *net.TCPAddr

	seq SeqChecker // the first topic's sequence
	// more are the stream's further topics (Config.TopicsPerStream > 1),
	// each with its own sequence; nil for a stream of one topic.
	more   []topicSeq
	onTime bool
	lastID string
	// cookies is the stream's cookie jar, as a browser keeps one for its
	// EventSource: what the target set, sent back on every reconnect (the
	// target's retry policy may rely on it).
	cookies []*http.Cookie
	retry   time.Duration // last retry hint, if hinted
	hinted  bool          // a retry hint came (retry: 0 is one: come back at once)
	c       streamCounters
	in      wire // the response body being read (reader.go)

	// Reconnect bookkeeping: when the last stream dropped (zero while
	// connected or before the first stream), and whether the first message
	// after a resume is still to be judged.
	droppedAt     time.Time
	backAt        time.Time // when a resume's stream was established; zero once recorded
	resumePending bool
}

// topicSeq is one further topic of a multi-topic stream.
type topicSeq struct {
	idx  int
	name string
	seq  SeqChecker
}

// run connects, reads, and (with Reconnect) reconnects until ctx ends.
func (s *stream) run(ctx context.Context) {
	p := s.pool
	s.topic = p.cfg.Topic(s.topicIdx)
	for j := 1; j < p.cfg.TopicsPerStream; j++ {
		idx := (s.topicIdx + j) % p.cfg.Topics
		s.more = append(s.more, topicSeq{idx: idx, name: p.cfg.Topic(idx)})
	}
	first := true
	defer func() {
		if first {
			p.firstTry.Done()
		}
		s.fold()
	}()
	for ctx.Err() == nil {
		nc, body, reason := s.connect(ctx)
		if reason == ReasonNone && !s.droppedAt.IsZero() {
			s.backAt = time.Now() // a resume, unless the target sheds it
			s.resumePending = true
		}
		if first {
			first = false
			p.firstTry.Done()
		}
		if ctx.Err() != nil {
			if nc != nil {
				_ = nc.Close()
			}
			return
		}
		if reason != ReasonNone {
			s.c.connectFail++
			s.c.failReasons[reason]++
			if !p.cfg.Reconnect || reason == ReasonHTTPStatus || reason == ReasonNotEventStream {
				return // a browser gives up for good on these
			}
		} else {
			before := s.c.idOnly + s.c.events + s.c.resets + s.c.otherEvents
			reason = s.read(ctx, nc, body)
			if ctx.Err() == nil && reason == ReasonEOF && s.c.idOnly+s.c.events+s.c.resets+s.c.otherEvents == before {
				// A 200 stream that ended before any id or event: the
				// target shed it (ssecluster: early reconnect, capacity,
				// admission, draining), telling it when to come back. Not
				// a resume: the stream is still away since its drop.
				reason = ReasonShed
				s.backAt, s.resumePending = time.Time{}, false
			}
			if !s.backAt.IsZero() {
				s.resumed()
			}
			if ctx.Err() != nil {
				s.c.aliveAtEnd++
				return
			}
			s.c.drops[reason]++
			if !p.cfg.Reconnect {
				return
			}
			if s.droppedAt.IsZero() { // else still away since an earlier drop (sheds in between)
				s.droppedAt = time.Now()
			}
			if s.resumePending { // dropped again before judging the last resume
				s.resumePending = false
				s.c.resumes[resumeUnverified]++
			}
		}
		wait := s.retry
		if !s.hinted {
			wait = p.cfg.DefaultRetry
		}
		start := time.Now()
		if !sleepUntil(ctx, start.Add(wait)) {
			return
		}
		p.rc.waited(wait, time.Since(start))
		s.c.reconnects++
	}
}

// resumed records a stream established again (at backAt) after a drop
// (at droppedAt), sheds in between included.
func (s *stream) resumed() {
	s.pool.rc.resumed(s.droppedAt, s.backAt)
	s.droppedAt, s.backAt = time.Time{}, time.Time{}
}

// judgeResume classifies the first event after a resume: a message event
// by its sequence verdict (in its own topic), or a reset event.
func (s *stream) judgeResume(v Verdict, reset bool) {
	if !s.resumePending {
		return
	}
	s.resumePending = false
	switch {
	case reset:
		s.c.resumes[resumeReset]++
	case v == InOrder:
		s.c.resumes[resumeExact]++
	case v == Gap:
		s.c.resumes[resumeGap]++
	case v == Duplicate:
		s.c.resumes[resumeDuplicate]++
	default:
		s.c.resumes[resumeReordered]++
	}
}

// connect dials and reads the response head. On success it returns the
// connection and its body's framing, with the body bytes that came with
// the head; read closes the connection, also when ctx ends.
func (s *stream) connect(ctx context.Context) (net.Conn, *respBody, Reason) {
	p := s.pool
	s.c.attempts++
	p.attempts.Add(1)
	start := time.Now()
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	if s.local != nil {
		d.LocalAddr = s.local
	}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, nil, dialReason(err)
	}
	_ = nc.SetDeadline(start.Add(p.cfg.HeadTimeout))
	req := make([]byte, 0, 256)
	req = append(req, p.reqHead...)
	if p.reqTopic {
		req = append(req, url.QueryEscape(s.topic)...)
		for _, m := range s.more { // Validate made sure reqSep is known
			req = append(req, p.reqSep...)
			req = append(req, url.QueryEscape(m.name)...)
		}
	}
	req = append(req, p.reqTail...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, p.host...)
	req = append(req, "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"...)
	req = append(req, p.auth...)
	if s.lastID != "" {
		req = append(req, "Last-Event-ID: "...)
		req = append(req, s.lastID...) // the parser never yields CR, LF or NUL in an id
		req = append(req, "\r\n"...)
	}
	req = appendCookies(req, s.cookies)
	req = append(req, "\r\n"...)
	fail := func(r Reason) (net.Conn, *respBody, Reason) {
		_ = nc.Close()
		return nil, nil, r
	}
	if _, err := nc.Write(req); err != nil {
		return fail(headReason(err))
	}
	br := bufio.NewReaderSize(nc, connBufSize)
	if _, err := br.Peek(1); err != nil {
		return fail(headReason(err))
	}
	ttfb := time.Since(start)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fail(headReason(err))
	}
	tth := time.Since(start)
	s.cookies = keepCookies(s.cookies, resp.Cookies())
	p.ttMu.Lock()
	p.ttfb.Record(ttfb)
	p.tth.Record(tth)
	p.ttMu.Unlock()
	if resp.StatusCode != http.StatusOK {
		if s.c.httpStatus == nil {
			s.c.httpStatus = make(map[int]int64)
		}
		s.c.httpStatus[resp.StatusCode]++
		return fail(ReasonHTTPStatus)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
		return fail(ReasonNotEventStream)
	}
	_ = nc.SetDeadline(time.Time{})
	s.c.connectOK++
	if s.c.established == 0 {
		s.c.established = 1
		p.established.Add(1)
		select {
		case <-p.ready:
			s.c.late = 1
			// Joined after the publisher may have started: check the
			// sequence from whatever comes first.
		default:
			s.onTime = true
			p.mu.Lock()
			p.topicSubs[s.topicIdx]++
			for _, m := range s.more {
				p.topicSubs[m.idx]++
			}
			p.mu.Unlock()
		}
	}
	return nc, newRespBody(resp, br), ReasonNone
}

// read parses the stream until it ends and returns why it ended. The body
// bytes that came with the head are handled here; the rest is read by the
// pool's poller (or, without one, on this goroutine). The connection is
// closed when read returns, or earlier when ctx ends, which ends the read.
func (s *stream) read(ctx context.Context, nc net.Conn, body *respBody) Reason {
	p := s.pool
	p.connected.Add(1)
	defer p.connected.Add(-1)
	s.in.reset(body, s.lastID, s.key)
	defer func() { s.lastID = s.in.dec.LastEventID() }()
	r, end := s.feed(body.head, time.Now().UnixNano())
	s.in.live.flush(&p.delivered, &p.onTimeUniq)
	if end {
		_ = nc.Close()
		return r
	}
	if p.poll != nil {
		return p.poll.read(ctx, s, nc)
	}
	return s.readConn(ctx, nc)
}

// block handles one block of the stream.
func (s *stream) block(b sse.Block) {
	if b.Retry >= 0 {
		s.retryHint(b.Retry)
	}
	s.c.comments += int64(b.Comments)
	switch {
	case !b.Dispatch:
		if b.HasID {
			s.c.idOnly++
		}
	case b.Type == "message":
		s.event(b.Data)
	case b.Type == "reset":
		s.c.resets++
		s.judgeResume(0, true)
	default:
		s.c.otherEvents++
	}
}

func (s *stream) retryHint(ms int64) {
	mergeRange(&s.c.retryHints, &s.c.retryMinMs, &s.c.retryMaxMs, 1, ms, ms)
	s.retry = time.Duration(min(ms, int64(time.Hour/time.Millisecond))) * time.Millisecond
	s.hinted = true
}

// event handles one message event: latency, then sequence. data aliases
// the decoder's buffer; the receive time is when its bytes were read.
func (s *stream) event(data []byte) {
	s.c.events++
	pl, ok := parsePayloadRef(data)
	if !ok {
		s.c.badPayload++
		return
	}
	seq := &s.seq
	if string(pl.Topic) != s.topic {
		if seq = s.moreSeq(pl.Topic); seq == nil {
			s.c.foreign++
			return
		}
	}
	p := s.pool
	s.c.delivered++
	s.in.live.delivered++
	p.lat.record(s.in.shard, time.Duration(s.in.now-pl.SentNs))
	if seq.Unique == 0 && seq.Duplicates == 0 && !s.onTime {
		*seq = NewSeqChecker(pl.Seq) // a late stream starts where it joined
	}
	v := seq.Observe(pl.Seq)
	if s.onTime && (v == InOrder || v == Gap || v == Reordered) {
		s.in.live.onTimeUniq++
	}
	s.judgeResume(v, false)
}

// moreSeq returns the sequence of one of the stream's further topics, nil
// when topic is none of them. A linear scan: a stream has a few topics
// (the node allows 32 by default), and single-topic streams never get here.
func (s *stream) moreSeq(topic []byte) *SeqChecker {
	for i := range s.more {
		if string(topic) == s.more[i].name {
			return &s.more[i].seq
		}
	}
	return nil
}

// fold adds the stream's counters to the pool's.
func (s *stream) fold() {
	add := func(q *SeqChecker) {
		s.c.unique += q.Unique
		s.c.duplicates += q.Duplicates
		s.c.reordered += q.Reordered
		s.c.gaps += q.Gaps
		s.c.missing += q.Missing()
	}
	add(&s.seq)
	for i := range s.more {
		add(&s.more[i].seq)
	}
	if s.resumePending {
		s.c.resumes[resumeUnverified]++
	}
	p := s.pool
	p.mu.Lock()
	p.totals.add(&s.c)
	if s.onTime {
		p.topicUnique[s.topicIdx] += s.seq.Unique
		for _, m := range s.more {
			p.topicUnique[m.idx] += m.seq.Unique
		}
	}
	p.mu.Unlock()
}

// fill writes the pool's figures into r. Call it after Run returned.
func (p *Pool) fill(r *Report) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &p.totals
	r.Connect = ConnectStats{
		Attempts: t.attempts, OK: t.connectOK, Failed: t.connectFail,
		FailReasons: t.failReasons.toMap(),
		Established: t.established, Late: t.late, Reconnects: t.reconnects,
		TimeToFirstByte: p.ttfb, TimeToHeaders: p.tth,
	}
	for code, n := range t.httpStatus {
		if r.Connect.HTTPStatus == nil {
			r.Connect.HTTPStatus = make(map[string]int64)
		}
		r.Connect.HTTPStatus[strconv.Itoa(code)] += n
	}
	r.Streams = StreamStats{
		AliveAtEnd: t.aliveAtEnd, Drops: t.drops.toMap(),
		Resets: t.resets, OtherEvents: t.otherEvents, Comments: t.comments, IDOnly: t.idOnly,
		RetryHints: t.retryHints, RetryMinMs: t.retryMinMs, RetryMaxMs: t.retryMaxMs,
	}
	r.Delivery = DeliveryStats{
		Events: t.events, Delivered: t.delivered, BadPayload: t.badPayload, Foreign: t.foreign,
		Unique: t.unique, Duplicates: t.duplicates, Reordered: t.reordered, Gaps: t.gaps, Missing: t.missing,
	}
	p.rc.fill(&r.Reconnects, &t.resumes)
	r.Latency = p.lat.merged()
	r.TopicSubs = append([]int64(nil), p.topicSubs...)
	r.TopicUnique = append([]int64(nil), p.topicUnique...)
}

// progress is one line of live figures.
func (p *Pool) progress(elapsed time.Duration, lastDelivered int64, every time.Duration) (string, int64) {
	d := p.delivered.Load()
	rate := float64(d-lastDelivered) / every.Seconds()
	return fmt.Sprintf("t=%s streams=%d/%d established=%d delivered=%d (%.0f/s) p99=%s",
		elapsed.Round(time.Second), p.connected.Load(), p.cfg.Subs, p.established.Load(),
		d, rate, fmtDur(p.lat.merged().Quantile(0.99))), d
}

// authLine is the Authorization header line of a stream request.
func authLine(token string) string {
	if token == "" {
		return ""
	}
	return "Authorization: Bearer " + token + "\r\n"
}

// keepCookies updates a stream's jar with the cookies a response set
// (replacing by name; Max-Age <= 0 deletes).
func keepCookies(jar, set []*http.Cookie) []*http.Cookie {
	for _, c := range set {
		jar = slices.DeleteFunc(jar, func(o *http.Cookie) bool { return o.Name == c.Name })
		if c.MaxAge >= 0 && c.Valid() == nil {
			jar = append(jar, &http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return jar
}

// appendCookies appends the Cookie header line of a jar (nothing when it is
// empty). Names and values were validated when they were kept.
func appendCookies(b []byte, jar []*http.Cookie) []byte {
	if len(jar) == 0 {
		return b
	}
	b = append(b, "Cookie: "...)
	for i, c := range jar {
		if i > 0 {
			b = append(b, "; "...)
		}
		b = append(b, c.Name...)
		b = append(b, '=')
		b = append(b, c.Value...)
	}
	return append(b, "\r\n"...)
}
