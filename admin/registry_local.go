package admin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// LocalRegistry is a Registry in process memory: a standalone node's (its
// cluster view is itself), or one shared by several admin servers of one
// process (tests). Entries expire by the process clock, as they do in
// Redis. The zero value is not usable: call NewLocalRegistry.
type LocalRegistry struct {
	now func() time.Time

	mu    sync.Mutex // guards what follows
	nodes map[string]localEntry
	cmds  map[string]localQueue
}

type localEntry struct {
	e       Entry
	expires time.Time
}

type localQueue struct {
	cmds    []Command
	expires time.Time
}

var _ Registry = (*LocalRegistry)(nil)

// NewLocalRegistry returns an empty in-memory registry.
func NewLocalRegistry() *LocalRegistry {
	return &LocalRegistry{now: time.Now, nodes: make(map[string]localEntry), cmds: make(map[string]localQueue)}
}

// Publish implements Registry.
func (r *LocalRegistry) Publish(_ context.Context, e Entry, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("admin: registry ttl %s below 1ms", ttl)
	}
	e.Topics.NodeID = e.NodeID
	e.Topics.Topics = slices.Clone(e.Topics.Topics)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodes[e.NodeID] = localEntry{e: e, expires: r.now().Add(ttl)}
	return nil
}

// Remove implements Registry.
func (r *LocalRegistry) Remove(_ context.Context, nodeID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.nodes, nodeID)
	delete(r.cmds, nodeID)
	return nil
}

// liveLocked returns the live entries, dropping the expired ones.
func (r *LocalRegistry) liveLocked() []Entry {
	now := r.now()
	out := make([]Entry, 0, len(r.nodes))
	for id, le := range r.nodes {
		if !now.Before(le.expires) {
			delete(r.nodes, id)
			continue
		}
		out = append(out, le.e)
	}
	sortEntries(out)
	return out
}

// Nodes implements Registry.
func (r *LocalRegistry) Nodes(context.Context) ([]Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.liveLocked()
	for i := range out {
		out[i].Topics = NodeTopics{}
	}
	return out, nil
}

// Topics implements Registry.
func (r *LocalRegistry) Topics(context.Context) ([]NodeTopics, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := r.liveLocked()
	out := make([]NodeTopics, len(live))
	for i, e := range live {
		out[i] = e.Topics
	}
	return out, nil
}

// Send implements Registry.
func (r *LocalRegistry) Send(_ context.Context, nodeID string, c Command, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("admin: command ttl %s below 1ms", ttl)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if le, ok := r.nodes[nodeID]; !ok || !now.Before(le.expires) {
		return fmt.Errorf("%w: %s", ErrUnknownNode, nodeID)
	}
	q := r.cmds[nodeID]
	if !now.Before(q.expires) {
		q.cmds = nil
	}
	q.cmds = append(q.cmds, c)
	if len(q.cmds) > maxQueuedCommands {
		q.cmds = slices.Clone(q.cmds[len(q.cmds)-maxQueuedCommands:])
	}
	q.expires = now.Add(ttl)
	r.cmds[nodeID] = q
	return nil
}

// Receive implements Registry.
func (r *LocalRegistry) Receive(_ context.Context, nodeID string) ([]Command, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, ok := r.cmds[nodeID]
	delete(r.cmds, nodeID)
	if !ok || !r.now().Before(q.expires) {
		return nil, nil
	}
	return q.cmds, nil
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return cmp.Compare(a.NodeID, b.NodeID) })
}

func sortNodeTopics(ts []NodeTopics) {
	slices.SortFunc(ts, func(a, b NodeTopics) int { return cmp.Compare(a.NodeID, b.NodeID) })
}
