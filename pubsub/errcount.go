package pubsub

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
)

// Store operations whose failures the Redis broker counts (Redis.ErrorCounts).
// The names are metric labels: keep them stable.
const (
	OpPublish   = "publish"    // Publish (unreachable, or outcome unknown)
	OpRead      = "read"       // a failed read attempt of Run's reader loops (they retry with backoff)
	OpRange     = "range"      // Range (history reads for resumes)
	OpHead      = "head"       // Head
	OpRetained  = "retained"   // Retained (the admin topic view)
	OpPing      = "ping"       // Ping (the node's reachability probe)
	OpSharedKey = "shared_key" // SharedKey
	OpTrim      = "trim"       // the background trim of Run's maintenance loop
)

// storeOp indexes opNames.
type storeOp int

const (
	opPublish storeOp = iota
	opRead
	opRange
	opHead
	opRetained
	opPing
	opSharedKey
	opTrim
	numOps
)

var opNames = [numOps]string{OpPublish, OpRead, OpRange, OpHead, OpRetained, OpPing, OpSharedKey, OpTrim}

// StoreOps returns the names of the counted store operations, in a fixed
// order.
func StoreOps() []string { return slices.Clone(opNames[:]) }

// opErrors counts failed store operations. The zero value is ready.
type opErrors struct {
	n [numOps]atomic.Int64
}

// add counts err against op when it is a failure of the store: not nil, not
// the caller giving up (context.Canceled), not the broker being closed, and
// not history that is gone (an answer, not a failure).
func (o *opErrors) add(op storeOp, err error) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
		return
	}
	var gone *HistoryGoneError
	if errors.As(err, &gone) {
		return
	}
	o.n[op].Add(1)
}

// snapshot returns the counts by operation name, zeros included.
func (o *opErrors) snapshot() map[string]int64 {
	m := make(map[string]int64, numOps)
	for i := range numOps {
		m[opNames[i]] = o.n[i].Load()
	}
	return m
}
