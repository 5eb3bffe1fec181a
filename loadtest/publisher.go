package loadtest

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Publisher posts events to POST /v1/publish at Config.Rate, round-robin
// over the topics, each carrying a Payload (topic, per-topic sequence
// number, send time). Events of one topic always go through the same
// connection, one request at a time, so they are stored in order.
type Publisher struct {
	cfg       Config
	url       string
	transport *http.Transport
	client    *http.Client

	generic   bool     // a generic target: one event per request, body from the template, any 2xx
	runID     string   // prefix of the idempotency keys: unique per run, so runs never collide
	names     []string // topic names by index
	published []int64  // confirmed events per topic; topic t is written only by its worker
	confirmed atomic.Int64

	res PublishStats // filled by Run
	ran atomic.Bool

	backoff time.Duration // first wait before sending a batch again; tests shorten it
}

// NewPublisher checks cfg and returns a publisher for it.
func NewPublisher(cfg Config) (*Publisher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Idle {
		return nil, errors.New("loadtest: an idle run publishes nothing")
	}
	conns := min(cfg.PublishConns, cfg.Topics)
	tr := &http.Transport{
		Proxy:               nil, // loopback targets: never through a proxy
		DialContext:         (&net.Dialer{Timeout: cfg.DialTimeout}).DialContext,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
	}
	names := make([]string, cfg.Topics)
	for i := range names {
		names[i] = cfg.Topic(i)
	}
	target := strings.TrimSuffix(cfg.URL, "/") + "/v1/publish"
	if cfg.PublishURL != "" {
		target = cfg.PublishURL
		if cfg.PublishBody == "" {
			cfg.PublishBody = "{payload}"
		}
	}
	return &Publisher{
		cfg:       cfg,
		names:     names,
		generic:   cfg.PublishURL != "",
		runID:     newRunID(),
		url:       target,
		transport: tr,
		client:    &http.Client{Transport: tr, Timeout: cfg.HeadTimeout},
		published: make([]int64, cfg.Topics),
		backoff:   publishBackoff,
	}, nil
}

// Confirmed returns how many events the target has confirmed so far.
func (p *Publisher) Confirmed() int64 { return p.confirmed.Load() }

// Published returns the confirmed events per topic. Call it after Run.
func (p *Publisher) Published() []int64 { return p.published }

// Stats returns the publisher's figures. Call it after Run.
func (p *Publisher) Stats() *PublishStats { return &p.res }

type pubItem struct {
	topic int
	seq   int64
	due   time.Time
}

// dueOffset is when event k (from 0) falls due, from the start: every
// interval, or in bursts of burst events that fall due together at the time
// of their first event.
func dueOffset(k int64, burst int, interval float64) time.Duration {
	if burst > 1 {
		k -= k % int64(burst)
	}
	return time.Duration(float64(k) * interval)
}

// pubWorker is the state of one publishing connection.
type pubWorker struct {
	req     *Histogram
	errs    map[string]int64
	reqs    int64
	ok      int64
	failed  int64
	retried int64 // events sent again after an unknown or transient outcome
	lag     time.Duration
	body    []byte
	answer  bytes.Buffer
	idsResp struct {
		IDs []json.RawMessage `json:"ids"`
	}
}

// Run publishes until Config.Count events or Config.Duration, whichever
// comes first, or until ctx ends; then it waits for requests in flight and
// closes its connections. A publisher that cannot keep up sends late (the
// lag is reported) rather than dropping events.
func (p *Publisher) Run(ctx context.Context) error {
	if !p.ran.CompareAndSwap(false, true) {
		return errors.New("loadtest: Publisher.Run called twice")
	}
	defer p.transport.CloseIdleConnections()
	conns := min(p.cfg.PublishConns, p.cfg.Topics)
	chans := make([]chan pubItem, conns)
	workers := make([]*pubWorker, conns)
	var wg sync.WaitGroup
	for w := range chans {
		chans[w] = make(chan pubItem, 4*p.cfg.Batch+64)
		workers[w] = &pubWorker{req: NewHistogram(), errs: make(map[string]int64)}
		wg.Go(func() { p.work(ctx, chans[w], workers[w]) })
	}

	seqs := make([]int64, p.cfg.Topics)
	start := time.Now()
	interval := float64(time.Second) / p.cfg.Rate
	var k int64
schedule:
	for ; p.cfg.Count == 0 || k < p.cfg.Count; k++ {
		off := dueOffset(k, p.cfg.Burst, interval)
		if p.cfg.Duration > 0 && off >= p.cfg.Duration {
			break
		}
		due := start.Add(off)
		if !sleepUntil(ctx, due) {
			break
		}
		t := int(k % int64(p.cfg.Topics))
		seqs[t]++
		select {
		case chans[t%conns] <- pubItem{topic: t, seq: seqs[t], due: due}:
		case <-ctx.Done():
			seqs[t]--
			break schedule
		}
	}
	for _, ch := range chans {
		close(ch)
	}
	wg.Wait()
	end := time.Now()

	res := &p.res
	res.Events = k
	res.Request = NewHistogram()
	for _, w := range workers {
		res.Requests += w.reqs
		res.Published += w.ok
		res.Failed += w.failed
		res.Retried += w.retried
		res.Request.Merge(w.req)
		res.MaxLagMs = max(res.MaxLagMs, float64(w.lag)/float64(time.Millisecond))
		for e, n := range w.errs {
			if res.Errors == nil {
				res.Errors = make(map[string]int64)
			}
			res.Errors[e] += n
		}
	}
	res.DurationS = end.Sub(start).Seconds()
	if res.DurationS > 0 {
		res.RatePerSec = float64(res.Published) / res.DurationS
	}
	res.Topics = p.cfg.Topics
	res.perTopic = p.published
	return nil
}

// work posts what its channel brings, batching what is already queued.
func (p *Publisher) work(ctx context.Context, ch <-chan pubItem, w *pubWorker) {
	batch := make([]pubItem, 0, p.cfg.Batch)
	for it := range ch {
		batch = append(batch[:0], it)
	fill:
		for len(batch) < p.cfg.Batch {
			select {
			case it, ok := <-ch:
				if !ok {
					break fill
				}
				batch = append(batch, it)
			default:
				break fill
			}
		}
		p.post(ctx, batch, w)
	}
}

// post sends one batch and records the outcome.
func (p *Publisher) post(ctx context.Context, batch []pubItem, w *pubWorker) {
	now := time.Now()
	w.lag = max(w.lag, now.Sub(batch[0].due))
	sent := now.UnixNano()
	if p.generic {
		for _, it := range batch { // Validate keeps generic batches at 1
			p.postGeneric(ctx, it, sent, w)
		}
		return
	}
	b := append(w.body[:0], '[')
	for i, it := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		topic := p.names[it.topic]
		b = append(b, `{"topic":"`...)
		b = append(b, topic...)
		b = append(b, `","idempotency_key":"`...)
		b = append(b, p.runID...)
		b = append(b, '-')
		b = strconv.AppendInt(b, it.seq, 10)
		b = append(b, `","data":`...)
		b = AppendPayload(b, topic, it.seq, sent)
		b = append(b, '}')
	}
	b = append(b, ']')
	w.body = b
	// An answer that never came may hide a stored batch (a node died
	// after storing it): the same bytes are sent again, and the
	// idempotency keys make the target store each event once.
	first := time.Now()
	for attempt := 0; ; attempt++ {
		reason, retryable := p.postOnce(ctx, b, len(batch), w)
		if reason == "" {
			for _, it := range batch {
				p.published[it.topic]++
			}
			w.ok += int64(len(batch))
			p.confirmed.Add(int64(len(batch)))
			return
		}
		w.errs[reason]++
		if !retryable || !p.again(attempt, first) || !sleepUntil(ctx, time.Now().Add(p.backoff<<min(attempt, publishMaxDoublings))) {
			w.failed += int64(len(batch))
			return
		}
		w.retried += int64(len(batch))
	}
}

// Publish retries: attempts per batch (unless Config.PublishRetry), the
// first backoff, and how often it doubles (100 ms to 1.6 s).
const (
	publishAttempts     = 6
	publishBackoff      = 100 * time.Millisecond
	publishMaxDoublings = 4
)

// again reports whether a batch whose attempt (from 0) failed, first sent
// at first, is sent once more.
func (p *Publisher) again(attempt int, first time.Time) bool {
	if p.cfg.PublishRetry > 0 {
		return time.Since(first) < p.cfg.PublishRetry
	}
	return attempt+1 < publishAttempts
}

// postOnce sends one publish request. It returns "" when the target
// confirmed every event, else why not and whether the outcome is unknown
// or transient (worth sending again).
func (p *Publisher) postOnce(ctx context.Context, body []byte, n int, w *pubWorker) (reason string, retryable bool) {
	start := time.Now()
	w.reqs++
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return "bad_request", false
	}
	req.Header.Set("Content-Type", "application/json")
	if p.cfg.PublishToken != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.PublishToken)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if isTimeout(err) {
			return "timeout", true
		}
		return "conn_error", true
	}
	w.answer.Reset()
	_, err = w.answer.ReadFrom(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	w.req.Record(time.Since(start))
	if err != nil {
		return "conn_error", true
	}
	if resp.StatusCode != http.StatusOK {
		// 502, 503 and 504 (a load balancer without a live node, a node
		// without its broker, an unconfirmed write) are worth another try.
		code := resp.StatusCode
		return "http_" + strconv.Itoa(code), code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
	}
	w.idsResp.IDs = w.idsResp.IDs[:0]
	if err := json.Unmarshal(w.answer.Bytes(), &w.idsResp); err != nil || len(w.idsResp.IDs) != n {
		return "bad_answer", false
	}
	return "", false
}

// postGeneric sends one event to a generic target: the body template with
// the topic and payload put in; any 2xx answer confirms it.
func (p *Publisher) postGeneric(ctx context.Context, it pubItem, sent int64, w *pubWorker) {
	start := time.Now()
	topic := p.names[it.topic]
	payload := AppendPayload(nil, topic, it.seq, sent)
	quoted, _ := json.Marshal(string(payload)) // a string always marshals
	body := strings.NewReplacer("{topic}", topic, "{payload}", string(payload), "{payload_str}", string(quoted)).
		Replace(p.cfg.PublishBody)
	w.reqs++
	fail := func(reason string) {
		w.errs[reason]++
		w.failed++
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, strings.NewReader(body))
	if err != nil {
		fail("bad_request")
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if p.cfg.PublishToken != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.PublishToken)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if isTimeout(err) {
			fail("timeout")
		} else {
			fail("conn_error")
		}
		return
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	w.req.Record(time.Since(start))
	switch {
	case err != nil:
		fail("conn_error")
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		fail("http_" + strconv.Itoa(resp.StatusCode))
	default:
		p.published[it.topic]++
		w.ok++
		p.confirmed.Add(1)
	}
}

// newRunID returns a random run id for idempotency keys ([0-9a-f]{16}).
func newRunID() string {
	var b [8]byte
	_, _ = cryptorand.Read(b[:]) // never fails (crypto/rand.Read panics instead)
	return hex.EncodeToString(b[:])
}
