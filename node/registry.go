package node

import (
	"sync"
	"sync/atomic"
)

const registryShards = 16

// registry holds every open stream of the node, sharded so the heartbeat
// sweeper walks one shard at a time and connects do not contend.
type registry struct {
	n      atomic.Int64 // conns held
	shards [registryShards]struct {
		mu    sync.Mutex
		conns map[uint64]*conn
	}
}

func newRegistry() *registry {
	r := &registry{}
	for i := range r.shards {
		r.shards[i].conns = make(map[uint64]*conn)
	}
	return r
}

func (r *registry) add(c *conn) {
	s := &r.shards[c.id%registryShards]
	s.mu.Lock()
	s.conns[c.id] = c
	s.mu.Unlock()
	r.n.Add(1)
}

func (r *registry) remove(c *conn) {
	s := &r.shards[c.id%registryShards]
	s.mu.Lock()
	if _, ok := s.conns[c.id]; ok {
		delete(s.conns, c.id)
		r.n.Add(-1)
	}
	s.mu.Unlock()
}

// shard appends the conns of shard i to dst.
func (r *registry) shard(i int, dst []*conn) []*conn {
	s := &r.shards[i%registryShards]
	s.mu.Lock()
	for _, c := range s.conns {
		dst = append(dst, c)
	}
	s.mu.Unlock()
	return dst
}

// len returns the number of open streams.
func (r *registry) len() int { return int(r.n.Load()) }
