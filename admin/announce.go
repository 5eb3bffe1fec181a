package admin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ssecluster/ssecluster/node"
)

// registryLoop publishes the node's entry at once and then every Interval,
// and takes the commands other nodes sent it every CommandPoll, until ctx
// ends. Registry failures are logged when they start and when they end,
// not on every attempt.
func (s *Server) registryLoop(ctx context.Context) {
	pub := time.NewTicker(s.cfg.Interval)
	defer pub.Stop()
	poll := time.NewTicker(s.cfg.CommandPoll)
	defer poll.Stop()
	failing := false
	report := func(err error) {
		if ctx.Err() != nil { // stopping: the call was cut short, Redis is fine
			return
		}
		switch {
		case err != nil && !failing:
			s.log.Warn("admin registry unreachable: this node is missing from the cluster view", "err", err)
		case err == nil && failing:
			s.log.Info("admin registry reachable again")
		}
		failing = err != nil
	}
	report(s.announce(ctx))
	for {
		select {
		case <-ctx.Done():
			return
		case <-pub.C:
			report(s.announce(ctx))
		case <-poll.C:
			report(s.takeCommands(ctx))
		}
	}
}

// announce publishes the node's entry.
func (s *Server) announce(ctx context.Context) error {
	e, err := s.entry(s.now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RegistryTimeout)
	defer cancel()
	return s.reg.Publish(ctx, e, s.cfg.TTL)
}

// entry builds the node's registry entry at now.
func (s *Server) entry(now time.Time) (Entry, error) {
	e, err := s.selfEntry(now)
	if err != nil {
		return Entry{}, fmt.Errorf("admin: encode entry: %w", err)
	}
	e.Topics = topTopics(s.node.Topics(), s.cfg.MaxTopics)
	return e, nil
}

// topTopics returns the n most subscribed topics (ties by name), and
// whether some were left out.
func topTopics(all []node.TopicCount, n int) NodeTopics {
	out := make([]TopicCount, len(all))
	for i, t := range all {
		out[i] = TopicCount{Topic: t.Topic, Subscribers: int64(t.Subscribers)}
	}
	slices.SortFunc(out, func(a, b TopicCount) int {
		if c := cmp.Compare(b.Subscribers, a.Subscribers); c != 0 {
			return c
		}
		return cmp.Compare(a.Topic, b.Topic)
	})
	nt := NodeTopics{Topics: out}
	if len(out) > n {
		nt.Topics, nt.Truncated = out[:n], true
	}
	return nt
}

// takeCommands performs the commands other nodes sent this one.
func (s *Server) takeCommands(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RegistryTimeout)
	defer cancel()
	cmds, err := s.reg.Receive(ctx, s.nodeID)
	if err != nil {
		return err
	}
	for _, c := range cmds {
		switch c.Op {
		case OpDrain:
			if !(c.WindowS >= 0 && c.WindowS <= MaxDrainWindow.Seconds()) { // NaN too
				s.log.Warn("ignoring a drain command with a bad window", "from", c.From, "window_s", c.WindowS)
				continue
			}
			window := time.Duration(c.WindowS * float64(time.Second))
			s.log.Info("drain requested through another node's admin API", "from", c.From, "window_s", c.WindowS)
			s.node.Drain(window)
		default:
			s.log.Warn("ignoring an unknown admin command", "op", c.Op, "from", c.From)
		}
	}
	return nil
}
