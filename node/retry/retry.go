// Package retry is ssecluster's reconnect policy: the jittered exponential
// retry hints a node sends (the SSE "retry:" field), the state that carries
// a client's attempt count from one node to the next in a signed cookie, and
// the check that enforces the hints.
//
// # The policy
//
// A client's attempt count k is the number of its consecutive connection
// attempts that failed or lived shorter than HealthyAfter. Every stream
// starts with a hint drawn uniformly from [0, min(Cap, Base·2^k)] ("full
// jitter"): after a node dies, its clients come back spread over the whole
// interval instead of in one wave, and each further failure doubles the
// interval up to Cap.
//
// The node cannot see a client between its streams, so the state travels
// with the client: a cookie (CookieName) holding k, when the stream was
// admitted, the hint it was given and how many early returns it made, signed
// with HMAC-SHA256 under a key every node of the cluster shares. A browser's
// EventSource sends it back on every reconnect (same origin, or
// withCredentials), whichever node it lands on.
//
// # Deciding on a reconnect
//
// With elapsed = now − the previous admission (the previous stream's lifetime
// plus the client's wait):
//
//   - elapsed < the previous hint: the client came back early, since its wait
//     cannot have been longer than elapsed. It is not served: it gets a short
//     200 response with the remaining wait as its retry hint, and its early
//     count grows; past EarlyLimit consecutive early returns it gets 429 with
//     Retry-After instead.
//   - elapsed ≥ HealthyAfter: the previous stream was healthy (or the client
//     stayed away long): k returns to 0. HealthyAfter must be at least Cap,
//     so a client that only waited its hint is never mistaken for healthy.
//   - otherwise the previous attempt failed or was short: k grows by one.
//
// Only reconnects are judged (the caller applies Decide to requests that
// carry Last-Event-ID): a page that opens a new EventSource is a new
// client, not an early one.
package retry

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"time"
)

// Policy is the reconnect policy. Use Validate before the first Decide.
type Policy struct {
	// Base is the widest hint of attempt 0; Cap bounds every hint.
	Base, Cap time.Duration
	// HealthyAfter is the stream lifetime (or absence) that returns the
	// attempt count to 0; at least Cap.
	HealthyAfter time.Duration
	// EarlyLimit is how many consecutive early reconnects get the short
	// 200 answer before the client gets 429.
	EarlyLimit int
	// NoJitter makes every hint exactly Ceiling(k): the synchronized
	// reconnects the policy exists to prevent. Only for measuring that
	// (the storm benchmark); never in production.
	NoJitter bool
}

// Defaults of the policy.
const (
	DefaultBase       = time.Second
	DefaultCap        = 60 * time.Second
	DefaultEarlyLimit = 5
)

// maxAttempt bounds the attempt count kept (2^30 · Base is past any Cap).
const maxAttempt = 30

// Validate checks the policy.
func (p Policy) Validate() error {
	var errs []error
	if p.Base <= 0 || p.Cap < p.Base {
		errs = append(errs, fmt.Errorf("retry: base %s and cap %s must satisfy 0 < base <= cap", p.Base, p.Cap))
	}
	if p.HealthyAfter < p.Cap {
		errs = append(errs, fmt.Errorf("retry: healthy-after %s must be at least the cap %s", p.HealthyAfter, p.Cap))
	}
	if p.EarlyLimit < 0 {
		errs = append(errs, errors.New("retry: early limit must not be negative"))
	}
	return errors.Join(errs...)
}

// Rand is the random source: *math/rand/v2.Rand (seeded, in tests) or
// GlobalRand.
type Rand interface {
	Int64N(n int64) int64
}

// GlobalRand draws from math/rand/v2's global source, safe for concurrent
// use.
type GlobalRand struct{}

// Int64N returns a uniform number in [0, n).
func (GlobalRand) Int64N(n int64) int64 { return rand.Int64N(n) }

// Ceiling returns the widest hint of attempt k: min(Cap, Base·2^k).
func (p Policy) Ceiling(k int) time.Duration {
	k = min(max(k, 0), maxAttempt)
	if bits.Len64(uint64(p.Base))+k >= 63 || p.Base<<k > p.Cap {
		return p.Cap
	}
	return p.Base << k
}

// Hint draws the hint of attempt k uniformly from [0, Ceiling(k)], to the
// millisecond (the unit of "retry:").
func (p Policy) Hint(k int, r Rand) time.Duration {
	ms := p.Ceiling(k).Milliseconds()
	if p.NoJitter {
		return time.Duration(ms) * time.Millisecond
	}
	return time.Duration(r.Int64N(ms+1)) * time.Millisecond
}

// State is what the cookie carries from one stream of a client to its next.
type State struct {
	Attempt int           // consecutive failed or short attempts before this one
	Issued  time.Time     // when this attempt was admitted (or answered)
	Hint    time.Duration // the wait this attempt was told to make before the next
	Early   int           // consecutive early reconnects
}

// Verdict is what to do with a connection attempt.
type Verdict uint8

// Verdicts.
const (
	Serve    Verdict = iota // serve the stream, starting with Decision.Hint
	TooEarly                // short 200: retry after Decision.Hint (the remaining wait), then end
	TooMany                 // 429 with Retry-After: Decision.Hint, rounded up to seconds
)

func (v Verdict) String() string {
	switch v {
	case Serve:
		return "serve"
	case TooEarly:
		return "too_early"
	case TooMany:
		return "too_many"
	}
	return "unknown"
}

// Decision is the answer to a connection attempt: the verdict, the hint to
// send, and the state to store in the client's cookie.
type Decision struct {
	Verdict Verdict
	Hint    time.Duration
	Next    State
}

// Decide judges a connection attempt at now. prev is the state from the
// client's cookie, known false when it had none (or an invalid one).
func (p Policy) Decide(prev State, known bool, now time.Time, r Rand) Decision {
	k := 0
	if known {
		elapsed := now.Sub(prev.Issued)
		switch {
		case elapsed >= 0 && elapsed < prev.Hint:
			next := prev
			next.Early = min(prev.Early+1, 1<<20)
			v := TooEarly
			if next.Early > p.EarlyLimit {
				v = TooMany
			}
			return Decision{Verdict: v, Hint: prev.Hint - elapsed, Next: next}
		case elapsed >= p.HealthyAfter || elapsed < 0: // healthy, or a clock step: start over
			k = 0
		default:
			k = min(prev.Attempt+1, maxAttempt)
		}
	}
	h := p.Hint(k, r)
	return Decision{Verdict: Serve, Hint: h, Next: State{Attempt: k, Issued: now, Hint: h}}
}

// Shed returns the state and hint for an admitted attempt that the node
// sheds before serving it (capacity, admission rate, drain): a failed
// attempt, so the next one draws from a wider interval.
func (p Policy) Shed(st State, now time.Time, r Rand) (State, time.Duration) {
	k := min(st.Attempt+1, maxAttempt)
	h := p.Hint(k, r)
	return State{Attempt: k, Issued: now, Hint: h}, h
}

// Goodbye returns the hint for a stream the node closes (drain, kick,
// shutdown) that was admitted with st: a fresh draw for attempt 0, but never
// shorter than what is left of st.Hint, so the client's return is never
// judged early.
func (p Policy) Goodbye(st State, now time.Time, r Rand) time.Duration {
	h := p.Hint(0, r)
	if left := st.Hint - now.Sub(st.Issued); left > h {
		h = left.Truncate(time.Millisecond) + time.Millisecond
	}
	return h
}
