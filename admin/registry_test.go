package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/admin"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// waitTimeout bounds every wait: it decides when a broken part fails
// instead of hanging, never a claim about speed.
const waitTimeout = 15 * time.Second

// checkFor polls f until it returns nil or timeout passes.
func checkFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a synchroniser
	}
}

// newRedisRegistry returns a registry on r under a prefix of its own.
func newRedisRegistry(t testing.TB, r *pubsubtest.Redis, prefix string) *admin.RedisRegistry {
	t.Helper()
	reg, err := admin.NewRedisRegistry(admin.RedisRegistryConfig{URL: r.URL(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

func entry(id string, topics ...admin.TopicCount) admin.Entry {
	return admin.Entry{
		NodeID: id,
		Report: json.RawMessage(fmt.Sprintf(`{"node_id":%q}`, id)),
		Merge:  json.RawMessage(`{"x":1}`),
		Topics: admin.NodeTopics{Topics: topics, Truncated: len(topics) > 1},
	}
}

// TestRegistry runs the same cases against both registries.
func TestRegistry(t *testing.T) {
	impls := map[string]func(t *testing.T) admin.Registry{
		"local": func(*testing.T) admin.Registry { return admin.NewLocalRegistry() },
		"redis": func(t *testing.T) admin.Registry { return newRedisRegistry(t, pubsubtest.StartRedis(t), t.Name()) },
	}
	for name, newReg := range impls {
		t.Run(name, func(t *testing.T) {
			t.Run("publish_list", func(t *testing.T) { testRegistryPublishList(t, newReg(t)) })
			t.Run("expiry", func(t *testing.T) { testRegistryExpiry(t, newReg(t)) })
			t.Run("remove", func(t *testing.T) { testRegistryRemove(t, newReg(t)) })
			t.Run("commands", func(t *testing.T) { testRegistryCommands(t, newReg(t)) })
		})
	}
}

func testRegistryPublishList(t *testing.T, reg admin.Registry) {
	ctx := context.Background()
	for _, id := range []string{"n2", "n1"} {
		e := entry(id, admin.TopicCount{Topic: "a", Subscribers: 2}, admin.TopicCount{Topic: "b/c", Subscribers: 1})
		if err := reg.Publish(ctx, e, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// A newer publish replaces the entry.
	if err := reg.Publish(ctx, entry("n1", admin.TopicCount{Topic: "z", Subscribers: 7}), time.Minute); err != nil {
		t.Fatal(err)
	}
	nodes, err := reg.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].NodeID != "n1" || nodes[1].NodeID != "n2" {
		t.Fatalf("nodes = %+v, want n1, n2", nodes)
	}
	if string(nodes[0].Report) != `{"node_id":"n1"}` || string(nodes[1].Merge) != `{"x":1}` {
		t.Errorf("entry bytes changed: %s %s", nodes[0].Report, nodes[1].Merge)
	}
	if len(nodes[0].Topics.Topics) != 0 {
		t.Errorf("Nodes returned topics: %+v", nodes[0].Topics)
	}
	topics, err := reg.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []admin.NodeTopics{
		{NodeID: "n1", Topics: []admin.TopicCount{{Topic: "z", Subscribers: 7}}},
		{NodeID: "n2", Topics: []admin.TopicCount{{Topic: "a", Subscribers: 2}, {Topic: "b/c", Subscribers: 1}}, Truncated: true},
	}
	if !slices.EqualFunc(topics, want, func(a, b admin.NodeTopics) bool {
		return a.NodeID == b.NodeID && a.Truncated == b.Truncated && slices.Equal(a.Topics, b.Topics)
	}) {
		t.Errorf("topics = %+v, want %+v", topics, want)
	}
}

func testRegistryExpiry(t *testing.T, reg admin.Registry) {
	ctx := context.Background()
	if err := reg.Publish(ctx, entry("short"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := reg.Publish(ctx, entry("long"), time.Minute); err != nil {
		t.Fatal(err)
	}
	checkFor(t, waitTimeout, func() error {
		nodes, err := reg.Nodes(ctx)
		if err != nil {
			return err
		}
		if len(nodes) != 1 || nodes[0].NodeID != "long" {
			return fmt.Errorf("nodes = %v, want only long", ids(nodes))
		}
		topics, err := reg.Topics(ctx)
		if err != nil {
			return err
		}
		if len(topics) != 1 || topics[0].NodeID != "long" {
			return fmt.Errorf("topics of %d nodes, want only long", len(topics))
		}
		return nil
	})
	if err := reg.Send(ctx, "short", admin.Command{Op: admin.OpDrain}, time.Minute); !errors.Is(err, admin.ErrUnknownNode) {
		t.Fatalf("send to an expired node: %v, want ErrUnknownNode", err)
	}
	// It comes back when it publishes again.
	if err := reg.Publish(ctx, entry("short"), time.Minute); err != nil {
		t.Fatal(err)
	}
	nodes, err := reg.Nodes(ctx)
	if err != nil || len(nodes) != 2 {
		t.Fatalf("nodes after a new publish = %v, %v", ids(nodes), err)
	}
}

func testRegistryRemove(t *testing.T, reg admin.Registry) {
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := reg.Publish(ctx, entry(id), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.Send(ctx, "a", admin.Command{Op: admin.OpDrain}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := reg.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Remove(ctx, "never-there"); err != nil {
		t.Fatalf("removing an unknown node: %v", err)
	}
	nodes, err := reg.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].NodeID != "b" {
		t.Fatalf("nodes after remove = %v, %v", ids(nodes), err)
	}
	if cmds, err := reg.Receive(ctx, "a"); err != nil || len(cmds) != 0 {
		t.Fatalf("commands of a removed node = %v, %v", cmds, err)
	}
}

func testRegistryCommands(t *testing.T, reg admin.Registry) {
	ctx := context.Background()
	if err := reg.Send(ctx, "nobody", admin.Command{Op: admin.OpDrain}, time.Minute); !errors.Is(err, admin.ErrUnknownNode) {
		t.Fatalf("send to an unknown node: %v, want ErrUnknownNode", err)
	}
	if err := reg.Publish(ctx, entry("c"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if cmds, err := reg.Receive(ctx, "c"); err != nil || len(cmds) != 0 {
		t.Fatalf("receive with nothing queued = %v, %v", cmds, err)
	}
	sent := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 150 {
		c := admin.Command{Op: admin.OpDrain, WindowS: float64(i), From: "a", SentAt: sent}
		if err := reg.Send(ctx, "c", c, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	cmds, err := reg.Receive(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 100 || cmds[0].WindowS != 50 || cmds[99].WindowS != 149 {
		t.Fatalf("received %d commands (%v..), want the newest 100 oldest first", len(cmds), cmds[:min(len(cmds), 1)])
	}
	if c := cmds[0]; c.Op != admin.OpDrain || c.From != "a" || !c.SentAt.Equal(sent) {
		t.Errorf("command changed on the way: %+v", c)
	}
	if cmds, err := reg.Receive(ctx, "c"); err != nil || len(cmds) != 0 {
		t.Fatalf("second receive = %v, %v; want nothing", cmds, err)
	}
	// Queued commands expire with their ttl. Receive consumes, so the
	// test watches a marker node published with the same ttl just after:
	// by the registry's own clock it expires no earlier than the command.
	if err := reg.Send(ctx, "c", admin.Command{Op: admin.OpDrain}, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := reg.Publish(ctx, entry("marker"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	checkFor(t, waitTimeout, func() error {
		nodes, err := reg.Nodes(ctx)
		if err != nil {
			return err
		}
		if slices.Contains(ids(nodes), "marker") {
			return errors.New("marker not expired yet")
		}
		return nil
	})
	if cmds, err := reg.Receive(ctx, "c"); err != nil || len(cmds) != 0 {
		t.Fatalf("receive after the ttl = %v, %v; want nothing", cmds, err)
	}
}

func ids(es []admin.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.NodeID
	}
	return out
}

// With Redis gone every call reports ErrRegistryUnavailable, and works
// again once it is back.
func TestRedisRegistryUnavailable(t *testing.T) {
	r := pubsubtest.StartRedis(t)
	reg, err := admin.NewRedisRegistry(admin.RedisRegistryConfig{URL: r.URL(), Prefix: "down", Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx := context.Background()
	r.Stop()
	calls := map[string]func() error{
		"publish": func() error { return reg.Publish(ctx, entry("x"), time.Minute) },
		"remove":  func() error { return reg.Remove(ctx, "x") },
		"nodes":   func() error { _, err := reg.Nodes(ctx); return err },
		"topics":  func() error { _, err := reg.Topics(ctx); return err },
		"send":    func() error { return reg.Send(ctx, "x", admin.Command{Op: admin.OpDrain}, time.Minute) },
		"receive": func() error { _, err := reg.Receive(ctx, "x"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, admin.ErrRegistryUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrRegistryUnavailable", name, err)
		}
	}
	r.Restart()
	checkFor(t, waitTimeout, func() error { return reg.Publish(ctx, entry("x"), time.Minute) })
}

func TestNewRedisRegistryRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  admin.RedisRegistryConfig
	}{
		{"no url", admin.RedisRegistryConfig{}},
		{"bad url", admin.RedisRegistryConfig{URL: "http://x"}},
		{"braces in prefix", admin.RedisRegistryConfig{URL: "redis://127.0.0.1:1/0", Prefix: "a{b}"}},
		{"negative timeout", admin.RedisRegistryConfig{URL: "redis://127.0.0.1:1/0", Timeout: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if reg, err := admin.NewRedisRegistry(tt.cfg); err == nil {
				_ = reg.Close()
				t.Fatal("accepted")
			}
		})
	}
}
