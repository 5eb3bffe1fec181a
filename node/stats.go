package node

import (
	"sync/atomic"

	"github.com/ssecluster/ssecluster/internal/apierr"
)

// Stats are the node's counters, safe for concurrent use.
type Stats struct {
	ConnsOpened   atomic.Int64
	Closed        [len(reasonNames)]atomic.Int64 // by CloseReason
	Deliveries    atomic.Int64                   // events written (or queued) to streams
	EventsDropped atomic.Int64                   // events whose type cannot be sent
	Resets        atomic.Int64                   // reset events sent
	CacheHits     atomic.Int64                   // resumes served from the replay cache
	CacheMisses   atomic.Int64                   // resumes that read the broker
	BrokerReads   atomic.Int64                   // broker Range calls for resumes
	Replayed      atomic.Int64                   // events sent from history
	Published     atomic.Int64                   // events accepted by POST /v1/publish
	Refused       [numRefusals]atomic.Int64      // connection attempts answered without a stream, by Refusal
	Rejected      apierr.Counts                  // error answers of the public listener, by status and code
}
