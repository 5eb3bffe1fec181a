package pubsub

import (
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
)

// Broker stores events durably and feeds them to a node.
type Broker interface {
	// Partitions returns the fixed number of partitions topics hash into.
	// It is the same for every broker that shares one store.
	Partitions() int

	// Publish stores msgs and returns their IDs, in the same order, only once
	// every message is durable in the store. Messages of one topic are stored
	// in the order given. A message carrying an IdempotencyKey that was stored
	// within the idempotency window is not stored again; its first ID is
	// returned. Publish validates nothing: callers pass valid topics.
	//
	// Errors: ErrUnavailable when the store could not be reached and nothing
	// was stored; ErrOutcomeUnknown when the store may or may not have stored
	// some messages (a timeout): the caller retries with the same keys.
	Publish(ctx context.Context, msgs []Message) ([]ID, error)

	// Run delivers every event of every partition to h, per partition in
	// order, without gaps, until ctx is done. Before the first Deliver of a
	// partition, and again whenever the partition's history was lost (see
	// Handler.Start), it calls h.Start. Run survives an unreachable store: it
	// retries with backoff and resumes where it stopped. It returns nil when
	// ctx ends, or an error it cannot recover from. Call it once.
	Run(ctx context.Context, h Handler) error

	// Range returns the events of q.Topics (all topics if nil) in partition
	// q.Partition with q.After < position <= q.Until, oldest first, scanning
	// at most q.Limit entries of the partition. It also returns the position
	// up to which the partition was scanned: when it is below q.Until, call
	// again with After set to it. If history after q.After is not fully held
	// any more (another epoch, trimmed), it returns a *HistoryGoneError.
	Range(ctx context.Context, q RangeQuery) ([]Event, Pos, error)

	// Head returns the current epoch of partition p and the position of the
	// last event ever stored in it (zero when empty).
	Head(ctx context.Context, p int) (ID, error)

	// Retained returns what partition p holds, read at one instant: its
	// current epoch, the positions of its oldest and newest entries (both
	// zero when it holds none; Last is what Head returns) and how many
	// entries it holds. First is the oldest event a Range can still return.
	Retained(ctx context.Context, p int) (Retention, error)

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error

	// SharedKey returns the secret named name (SharedKeySize random bytes),
	// the same for every broker sharing the store: created by whichever
	// asks first, then kept. Nodes sign what any other node must verify
	// with it (the retry cookie). A store that loses its data (Redis
	// restarted without persistence) gets a new one.
	SharedKey(ctx context.Context, name string) ([]byte, error)

	// Close releases the broker's resources.
	Close() error
}

// Handler receives what Run reads. Calls for one partition are serialised;
// calls for different partitions may come from different goroutines. A
// Handler must not block for long: it delays every later event of the
// partition.
type Handler interface {
	// Start announces that from now on Deliver brings, for partition from.Partition,
	// every event after from.Pos in epoch from.Epoch. reason is "" on the first
	// call of a partition. A later call means events between the previous
	// position and from were lost (reason ReasonEpochChanged,
	// ReasonRolledBack or ReasonTrimmed), and subscribers of that partition
	// must be told.
	Start(from ID, reason string)

	// Deliver hands over consecutive events of partition p, oldest first. The
	// slice and the events' Data are only valid during the call, and are
	// read-only (a broker may share Data with its history).
	Deliver(p int, evs []Event)
}

// Suspender is implemented by Handlers that want to know when a
// partition's reader lost its store. Between Suspend(p) and Resume(p) the
// store may have failed over, and what the handler holds of p (a replay
// cache) may name events the store no longer has: it must not answer from
// it. Resume comes once the reader checked its position against the store
// again (and reported any loss through Start first). Calls for one
// partition are serialised with its Start and Deliver.
type Suspender interface {
	Suspend(p int)
	Resume(p int)
}

// Reasons carried by Handler.Start and HistoryGoneError.
const (
	// ReasonEpochChanged: the store lost the partition's history (restart
	// without persistence, deleted key); positions of the old epoch mean
	// nothing any more.
	ReasonEpochChanged = "epoch_changed"
	// ReasonTrimmed: retention removed events that were never read.
	ReasonTrimmed = "history_trimmed"
	// ReasonAhead: the position is beyond anything the store ever held.
	ReasonAhead = "cursor_ahead"
	// ReasonRolledBack: the store's history went back behind the nodes'
	// backs (a failover promoted a replica that lacked events; a stream
	// evicted): an event the position names, or one this node read or
	// stored after it, is not there any more. The partition gets a new
	// epoch, so every node answers old cursors the same way.
	ReasonRolledBack = "history_rolled_back"
)

// RangeQuery selects a slice of one partition's history for Range.
type RangeQuery struct {
	Partition int
	// Epoch the positions belong to; a different current epoch is a
	// *HistoryGoneError with ReasonEpochChanged.
	Epoch string
	// After is exclusive, Until inclusive.
	After, Until Pos
	// Topics filters the events returned; nil returns all.
	Topics []string
	// Limit bounds how many entries are scanned (not returned); <= 0 means 1000.
	Limit int
}

// Retention is the history one partition holds (see Broker.Retained).
type Retention struct {
	Partition int
	Epoch     string
	// First and Last are the positions of the oldest and newest entries
	// held; both zero when the partition holds none.
	First, Last Pos
	// Len is the number of entries held (all topics of the partition).
	Len int64
}

// Message is an event as a publisher submits it.
type Message struct {
	Topic string
	// Type is the SSE event type; "" is the default ("message").
	Type string
	Data []byte
	// IdempotencyKey, when not empty, makes a retried publish of the same
	// (Topic, IdempotencyKey) store the event once.
	IdempotencyKey string
}

// Event is a stored message.
type Event struct {
	ID    ID
	Topic string
	Type  string
	Data  []byte
	// Time is when the publishing node accepted the event, in Unix
	// nanoseconds (the "ts" field of the Redis entry).
	Time int64
}

// Errors callers branch on.
var (
	// ErrUnavailable: the store could not be reached; nothing was done.
	ErrUnavailable = errors.New("pubsub: broker unavailable")
	// ErrOutcomeUnknown: the request may or may not have been applied.
	ErrOutcomeUnknown = errors.New("pubsub: outcome unknown")
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("pubsub: broker closed")
	// ErrStoreFull: the store refused to write because it is out of memory
	// (Redis maxmemory with noeviction); nothing was stored. It comes
	// wrapped with ErrUnavailable.
	ErrStoreFull = errors.New("pubsub: store out of memory")
	// ErrNotReplicated: the events were stored on the primary but fewer
	// replicas than required confirmed them in time (WAIT). It comes
	// wrapped with ErrOutcomeUnknown: a failover may still lose them.
	ErrNotReplicated = errors.New("pubsub: not confirmed by enough replicas")
)

// HistoryGoneError reports that history after a position is no longer fully
// held by the store.
type HistoryGoneError struct {
	Partition int
	Reason    string // one of the Reason constants
}

func (e *HistoryGoneError) Error() string {
	return fmt.Sprintf("pubsub: history of partition %d gone: %s", e.Partition, e.Reason)
}

// SharedKeySize is the size of the keys SharedKey returns.
const SharedKeySize = 32

// newSharedKey returns SharedKeySize random bytes.
func newSharedKey() []byte {
	b := make([]byte, SharedKeySize)
	_, _ = cryptorand.Read(b) // never fails (crypto/rand.Read panics instead)
	return b
}
