package admin

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Registry is where the nodes of a cluster publish what they report about
// themselves and send each other commands, so that any node's admin API
// answers for the cluster. A node's entry lives for the ttl it was
// published with: a node that stops publishing (it died, or lost Redis)
// drops out of the cluster view within that time.
//
// RedisRegistry serves a cluster; LocalRegistry serves one process (a
// standalone node, or several admin servers of one test).
type Registry interface {
	// Publish stores e as the entry of node e.NodeID, replacing the
	// previous one, for ttl.
	Publish(ctx context.Context, e Entry, ttl time.Duration) error
	// Remove deletes node id's entry and pending commands (a clean stop).
	Remove(ctx context.Context, nodeID string) error
	// Nodes returns the entries of every live node, sorted by node id,
	// without their topics.
	Nodes(ctx context.Context) ([]Entry, error)
	// Topics returns the topic lists of every live node, sorted by node id.
	Topics(ctx context.Context) ([]NodeTopics, error)
	// Send queues c for node id, for at most ttl. It returns ErrUnknownNode
	// when id has no live entry.
	Send(ctx context.Context, nodeID string, c Command, ttl time.Duration) error
	// Receive removes and returns the commands queued for node id, oldest
	// first.
	Receive(ctx context.Context, nodeID string) ([]Command, error)
}

// Errors callers branch on.
var (
	// ErrUnknownNode: the node has no live entry in the registry.
	ErrUnknownNode = errors.New("admin: unknown node")
	// ErrRegistryUnavailable: the registry could not be reached.
	ErrRegistryUnavailable = errors.New("admin: registry unavailable")
)

// Entry is what one node publishes about itself. Report and Merge are kept
// as the publishing node encoded them, so nodes of different versions (a
// rolling upgrade) pass each other's fields through unchanged.
type Entry struct {
	NodeID string
	// Report is the node's node.Report (GET /admin/v1/node).
	Report json.RawMessage
	// Merge is the node's node.MergeData: what cluster figures are merged
	// from (latency histograms, survival bins).
	Merge json.RawMessage
	// Topics is published with the entry but stored apart, and left empty
	// by Nodes: only the topics endpoint reads it.
	Topics NodeTopics
}

// NodeTopics is the topic list one node publishes: its most subscribed
// topics, at most Config.MaxTopics of them.
type NodeTopics struct {
	NodeID    string       `json:"node_id"`
	Topics    []TopicCount `json:"topics"`
	Truncated bool         `json:"truncated"` // the node has more topics than it published
}

// TopicCount is a topic and how many streams of one node subscribe to it.
type TopicCount struct {
	Topic       string `json:"topic"`
	Subscribers int64  `json:"subscribers"`
}

// Command is an instruction one node's admin API sends to another through
// the registry.
type Command struct {
	// Op is what to do: OpDrain. Unknown ops are ignored (logged), so a
	// newer node may send an older one what it cannot do.
	Op string `json:"op"`
	// WindowS is the drain window in seconds; 0 is the node's default.
	WindowS float64 `json:"window_s"`
	// From is the id of the node whose API received the request.
	From string `json:"from"`
	// SentAt is when it was sent (the sender's clock; informational).
	SentAt time.Time `json:"sent_at"`
}

// OpDrain asks a node to drain (node.Server.Drain).
const OpDrain = "drain"

// maxQueuedCommands bounds the commands waiting for one node; older ones
// are dropped first.
const maxQueuedCommands = 100
