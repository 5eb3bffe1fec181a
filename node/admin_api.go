package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ssecluster/ssecluster/pubsub"
)

// The node methods the admin API calls to list and kick streams and to
// describe topics. They take the locks of the data they read one at a time
// (a registry shard, then each conn; each partition), never several.

// ConnInfo describes one open stream.
type ConnInfo struct {
	ID             uint64    `json:"id"`
	Remote         string    `json:"remote"` // the peer's address (a proxy's, behind one)
	Topics         []string  `json:"topics"` // sorted
	ConnectedSince time.Time `json:"connected_since"`
	// EventsSent counts broker events (live and replayed) written to the
	// socket; BytesSent every byte written after the response head.
	EventsSent int64 `json:"events_sent"`
	BytesSent  int64 `json:"bytes_sent"`
	// QueueBytes is the backlog waiting for the socket (being written
	// included).
	QueueBytes int `json:"queue_bytes"`
}

// Connections page limits.
const (
	defaultConnPage = 100
	maxConnPage     = 10000
)

// Connections lists the node's open streams with an id above after,
// ordered by id, at most limit (100 when <= 0, at most 10000), only those
// subscribed to topic when topic is not empty. next is the id to pass as
// after for the next page, 0 when this page is the last.
func (s *Server) Connections(topic string, limit int, after uint64) (list []ConnInfo, next uint64) {
	if limit <= 0 {
		limit = defaultConnPage
	}
	limit = min(limit, maxConnPage)
	var conns []*conn
	for i := range registryShards {
		conns = s.conns.shard(i, conns)
	}
	conns = slices.DeleteFunc(conns, func(c *conn) bool { return c.id <= after || (topic != "" && !c.subscribes(topic)) })
	slices.SortFunc(conns, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	list = make([]ConnInfo, 0, min(limit, len(conns)))
	for i, c := range conns {
		if len(list) == limit {
			return list, list[len(list)-1].ID
		}
		info, open := c.info()
		if open {
			list = append(list, info)
		}
		conns[i] = nil
	}
	return list, 0
}

// subscribes reports whether c's topics include topic. c.parts is fixed.
func (c *conn) subscribes(topic string) bool {
	for i := range c.parts {
		if slices.Contains(c.parts[i].topics, topic) {
			return true
		}
	}
	return false
}

// info describes c; open is false once it closed.
func (c *conn) info() (ConnInfo, bool) {
	var topics []string
	for i := range c.parts {
		topics = append(topics, c.parts[i].topics...)
	}
	slices.Sort(topics)
	c.mu.Lock()
	defer c.mu.Unlock()
	return ConnInfo{
		ID: c.id, Remote: c.remote, Topics: topics, ConnectedSince: c.since.UTC(),
		EventsSent: c.events, BytesSent: c.bytes, QueueBytes: len(c.out) + c.inflight,
	}, !c.closed
}

// Kick closes stream id with a goodbye (a jittered retry hint and the
// comment "kicked"; ReasonKicked). It reports false when the node has no
// open stream with that id. A stream still being set up (head, history)
// gets its goodbye once the write in flight is stopped; one whose socket is
// full, with a backlog being written, ends without it.
func (s *Server) Kick(id uint64) bool {
	c := s.conns.get(id)
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closeLocked(ReasonKicked)
	return true
}

// get returns the conn with id, or nil.
func (r *registry) get(id uint64) *conn {
	s := &r.shards[id%registryShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[id]
}

// TopicCount is a topic with local subscribers.
type TopicCount struct {
	Topic       string `json:"topic"`
	Subscribers int    `json:"subscribers"`
}

// Topics lists the topics this node's streams subscribe to, with their
// local subscriber counts, sorted by topic.
func (s *Server) Topics() []TopicCount {
	var out []TopicCount
	for _, part := range s.hub.parts {
		part.mu.Lock()
		for t, subs := range part.topics {
			out = append(out, TopicCount{Topic: t, Subscribers: len(subs)})
		}
		part.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b TopicCount) int { return cmp.Compare(a.Topic, b.Topic) })
	return out
}

// TopicDetail describes one topic.
type TopicDetail struct {
	Topic       string `json:"topic"`
	Partition   int    `json:"partition"`
	Subscribers int    `json:"subscribers"` // on this node
	// Head is the partition's newest event (its position is zero when the
	// partition is empty).
	Head HeadID `json:"head"`
	// Retained is the history the broker holds for the topic's partition
	// (every topic of the partition shares it): a client whose cursor is
	// at or after the event before First resumes without a gap.
	Retained RetainedRange `json:"retained"`
}

// HeadID is a partition head: its epoch and position, and both as the
// event id a client would see ("<partition>.<epoch>.<ms>-<seq>").
type HeadID struct {
	ID    string `json:"id"`
	Epoch string `json:"epoch"`
	Pos   string `json:"pos"`
}

// RetainedRange is the range of positions a partition holds ("<ms>-<seq>";
// both "0-0" when it holds nothing) and how many entries.
type RetainedRange struct {
	First   string `json:"first"`
	Last    string `json:"last"`
	Entries int64  `json:"entries"`
}

// ErrInvalidTopic is returned by TopicInfo for a name that is not a valid
// topic.
var ErrInvalidTopic = errors.New("node: invalid topic")

// TopicInfo describes topic: its partition, local subscribers, and the
// partition's head and retained history, read from the broker in one
// consistent snapshot (pubsub.Broker.Retained). Errors: ErrInvalidTopic,
// or the broker's (pubsub.ErrUnavailable when it cannot be reached).
func (s *Server) TopicInfo(ctx context.Context, topic string) (TopicDetail, error) {
	if !validTopic(topic) {
		return TopicDetail{}, ErrInvalidTopic
	}
	p := pubsub.PartitionOf(topic, s.broker.Partitions())
	ret, err := s.broker.Retained(ctx, p)
	if err != nil {
		return TopicDetail{}, fmt.Errorf("node: topic %s: %w", topic, err)
	}
	head := pubsub.ID{Partition: p, Epoch: ret.Epoch, Pos: ret.Last}
	return TopicDetail{
		Topic:       topic,
		Partition:   p,
		Subscribers: s.hub.subscribers(topic),
		Head:        HeadID{ID: head.String(), Epoch: ret.Epoch, Pos: ret.Last.String()},
		Retained:    RetainedRange{First: ret.First.String(), Last: ret.Last.String(), Entries: ret.Len},
	}, nil
}
