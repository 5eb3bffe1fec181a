package node

import (
	"bytes"
	"context"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/ssecluster/ssecluster/node/retry"
	"github.com/ssecluster/ssecluster/node/sse"
)

// Refusal says why a connection attempt got no stream. Attempts that
// should come back later get a short 200 event stream (a retry hint, a
// comment, the end): a browser's EventSource gives up for good on any other
// status. Clients that ignore hints, and addresses over their limits, get
// 429. The set is fixed (metric labels).
type Refusal uint8

// Refusals.
const (
	RefuseEarly       Refusal = iota // came back before its retry hint: short 200 with the remaining wait
	RefuseTooMany                    // kept coming back early (Retry.EarlyLimit): 429
	RefuseDraining                   // the node drains or stops: short 200
	RefuseCapacity                   // MaxStreams reached: short 200
	RefuseAdmission                  // admission rate (AdmitRate) exceeded: short 200
	RefuseAddrStreams                // MaxStreamsPerAddr reached: 429
	RefuseAddrRate                   // ConnectRatePerAddr exceeded: 429
	numRefusals
)

var refusalNames = [numRefusals]string{"early", "too_many", "draining", "capacity", "admission", "addr_streams", "addr_rate"}

func (r Refusal) String() string {
	if r < numRefusals {
		return refusalNames[r]
	}
	return "unknown"
}

// RefusalNames lists the refusals in order (for reports).
func RefusalNames() []string { return refusalNames[:] }

// CloseReasonNames lists the close reasons in order (for reports).
func CloseReasonNames() []string { return reasonNames[:] }

// retryCookieKey names the broker's shared key that signs retry cookies.
const retryCookieKey = "retry-cookie"

// retryState reads the client's retry cookie. Only reconnects are judged:
// a request without Last-Event-ID is a new client (a page opening a new
// EventSource), whatever its cookie says.
func (s *Server) retryState(req *http.Request, reconnect bool) (retry.State, bool) {
	codec := s.codec.Load()
	if codec == nil || !reconnect {
		return retry.State{}, false
	}
	ck, err := req.Cookie(retry.CookieName)
	if err != nil {
		return retry.State{}, false
	}
	return codec.Decode(ck.Value)
}

// appendRetryCookie appends the Set-Cookie header line for st, if the
// node can sign cookies yet. The cookie has no Path, so it is scoped to the
// directory of the events URL, whatever prefix a proxy adds.
func (s *Server) appendRetryCookie(b []byte, st retry.State) []byte {
	codec := s.codec.Load()
	if codec == nil {
		return b
	}
	b = append(b, "Set-Cookie: "+retry.CookieName+"="...)
	b = append(b, codec.Encode(st)...) // [0-9A-Za-z._-] only
	b = append(b, "; Max-Age="...)
	// Rounded up: "Max-Age=0" (HealthyAfter under 500ms) deletes the cookie.
	b = strconv.AppendInt(b, int64(math.Ceil((2 * s.cfg.Retry.HealthyAfter).Seconds())), 10)
	return append(b, "; HttpOnly; SameSite=Lax\r\n"...)
}

// loadCookieKey makes the codec of retry cookies, until ctx ends: from
// Config.CookieKey once, or from the broker's shared key, asked until it
// answers and then again every Config.CookieKeyRefresh, so the node follows
// a key the broker replaced (a Redis that lost its data). Until the first
// answer streams are served without a cookie (nothing is enforced, nothing
// is wrongly refused).
func (s *Server) loadCookieKey(ctx context.Context) {
	if s.cfg.CookieKey != nil {
		codec, err := retry.NewCodec(s.cfg.CookieKey)
		if err != nil {
			s.log.Error("retry cookie key unusable; serving without retry cookies", "err", err)
			return
		}
		s.codec.Store(codec)
		return
	}
	wait := 200 * time.Millisecond
	var have []byte
	for {
		kctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		key, err := s.broker.SharedKey(kctx, retryCookieKey)
		cancel()
		if err == nil && !bytes.Equal(key, have) {
			var codec *retry.Codec
			if codec, err = retry.NewCodec(key); err == nil {
				if have != nil {
					s.log.Warn("retry cookie key changed (the broker lost its data): cookies signed before count as none")
				}
				s.codec.Store(codec)
				have = key
			}
		}
		if err != nil && ctx.Err() == nil {
			s.log.Debug("retry cookie key not available", "err", err)
		}
		next := s.cfg.CookieKeyRefresh/2 + rand.N(s.cfg.CookieKeyRefresh/2+1)
		if have == nil {
			next = wait
			wait = min(2*wait, 5*time.Second)
		}
		if !sleepCtx(ctx, next) {
			return
		}
	}
}

// sleepCtx waits d or until ctx ends, and reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// refuse answers a connection attempt that should come back later: 200, a
// retry hint, a comment naming the refusal, the end. No stream is opened.
func (s *Server) refuse(c echo.Context, r Refusal, hint time.Duration, st retry.State) error {
	s.stats.Refused[r].Add(1)
	h := c.Response().Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("X-SSE-Node", s.cfg.NodeID)
	if line := s.appendRetryCookie(nil, st); len(line) > 0 {
		v := strings.TrimSuffix(strings.TrimPrefix(string(line), "Set-Cookie: "), "\r\n")
		h.Add("Set-Cookie", v)
	}
	// Rounded up: an early client's remaining wait is not whole
	// milliseconds, and one that waits a floored hint comes back early again.
	b := sse.AppendRetry(nil, (max(hint, 0) + time.Millisecond - 1).Milliseconds())
	b = sse.AppendComment(b, r.String())
	b = append(b, '\n')
	return c.Blob(http.StatusOK, "text/event-stream", b)
}

// tooMany answers 429 with Retry-After (whole seconds, rounded up).
func (s *Server) tooMany(c echo.Context, r Refusal, wait time.Duration, st *retry.State) error {
	s.stats.Refused[r].Add(1)
	h := c.Response().Header()
	h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(max(wait, time.Second).Seconds())), 10))
	if st != nil {
		if line := s.appendRetryCookie(nil, *st); len(line) > 0 {
			h.Add("Set-Cookie", strings.TrimSuffix(strings.TrimPrefix(string(line), "Set-Cookie: "), "\r\n"))
		}
	}
	switch r {
	case RefuseAddrStreams:
		return errorf(http.StatusTooManyRequests, "too_many_streams", "too many streams from this address (at most %d)", s.cfg.MaxStreamsPerAddr)
	case RefuseAddrRate:
		return errorf(http.StatusTooManyRequests, "connect_rate_exceeded", "too many new streams from this address (at most %g per second)", s.cfg.ConnectRatePerAddr)
	}
	return errorf(http.StatusTooManyRequests, "retry_hint_ignored", "reconnected before the retry hint %d times in a row; wait for Retry-After", s.cfg.Retry.EarlyLimit+1)
}

// clientAddr is the source address limits count against: the peer, or the
// last X-Forwarded-For hop when the peer is a trusted proxy.
func (s *Server) clientAddr(req *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	peer := ap.Addr().Unmap()
	if !s.trusted(peer) {
		return peer
	}
	xff := req.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return peer
	}
	last := xff[len(xff)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
		return a.Unmap()
	}
	return peer
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrShards spreads the per-address table over locks.
const addrShards = 16

// addrTable enforces the per-address limits: streams open at once and new
// streams per second. Entries of addresses with no stream and no recent
// connect are pruned by the sweeper.
type addrTable struct {
	maxStreams int
	rate       float64
	seed       maphash.Seed
	shards     [addrShards]struct {
		mu sync.Mutex
		m  map[netip.Addr]*addrEntry
	}
}

type addrEntry struct {
	streams int
	lim     *rate.Limiter // nil without a rate limit
	last    time.Time
}

// newAddrTable returns nil when no per-address limit is configured.
func newAddrTable(maxStreams int, perSec float64) *addrTable {
	if maxStreams <= 0 && perSec <= 0 {
		return nil
	}
	t := &addrTable{maxStreams: maxStreams, rate: perSec, seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[netip.Addr]*addrEntry)
	}
	return t
}

func (t *addrTable) shard(a netip.Addr) int {
	b := a.As16()
	return int(maphash.Bytes(t.seed, b[:]) % addrShards)
}

// acquire counts a new stream of a, or says which limit it is over and how
// long until it may try again.
func (t *addrTable) acquire(a netip.Addr, now time.Time) (Refusal, time.Duration, bool) {
	if t == nil {
		return 0, 0, true
	}
	sh := &t.shards[t.shard(a)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[a]
	if e == nil {
		e = &addrEntry{}
		if t.rate > 0 {
			e.lim = rate.NewLimiter(rate.Limit(t.rate), int(math.Ceil(t.rate)))
		}
		sh.m[a] = e
	}
	e.last = now
	if t.maxStreams > 0 && e.streams >= t.maxStreams {
		return RefuseAddrStreams, time.Second, false
	}
	if e.lim != nil {
		r := e.lim.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			return RefuseAddrRate, d, false
		}
	}
	e.streams++
	return 0, 0, true
}

// release gives back a stream acquired for a.
func (t *addrTable) release(a netip.Addr) {
	if t == nil {
		return
	}
	sh := &t.shards[t.shard(a)]
	sh.mu.Lock()
	if e := sh.m[a]; e != nil && e.streams > 0 {
		e.streams--
	}
	sh.mu.Unlock()
}

// prune drops the entries of shard i with no stream and no connect within
// idle.
func (t *addrTable) prune(i int, now time.Time, idle time.Duration) {
	if t == nil {
		return
	}
	sh := &t.shards[i%addrShards]
	sh.mu.Lock()
	for a, e := range sh.m {
		if e.streams == 0 && now.Sub(e.last) > idle {
			delete(sh.m, a)
		}
	}
	sh.mu.Unlock()
}
