package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// Config configures a Server. The zero value is a working admin API on
// 127.0.0.1:9090 with no token.
type Config struct {
	// Addr is the listen address; default ":9090". Keep it off the public
	// load balancer. Without Token the host is rewritten to 127.0.0.1 (the
	// API is then open to local processes only).
	Addr string
	// Token is the bearer token every request needs ("Authorization:
	// Bearer <token>"). Empty: no token, loopback only (see Addr).
	Token string
	// NodeID is this node's id in the registry; default: the node's report.
	NodeID string

	// Interval is how often the node publishes its report to the registry;
	// default 2 s.
	Interval time.Duration
	// TTL is how long a published report lives: a node that stops
	// publishing leaves the cluster view within TTL. Default 10 s; more
	// than Interval.
	TTL time.Duration
	// CommandPoll is how often the node takes the commands other nodes sent
	// it (a drain through another node's API); default 1 s.
	CommandPoll time.Duration
	// MaxTopics bounds the topics a node publishes to the registry (its
	// most subscribed ones); default 1000. Cluster subscriber counts of
	// topics beyond it are lower bounds (see the topics endpoint).
	MaxTopics int
	// RegistryTimeout bounds each registry call; default 2 s.
	RegistryTimeout time.Duration
	// Rate bounds the requests per second of one source address (a token
	// bucket of Burst), token checks included, so the token cannot be
	// guessed at speed; beyond it, 429. Defaults 20/s and a burst of 40.
	// Negative: no limit.
	Rate  float64
	Burst int

	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Bounds of request parameters.
const (
	// MaxDrainWindow is the longest drain window a request may ask for.
	MaxDrainWindow = 24 * time.Hour
	// DefaultPageLimit and MaxPageLimit bound the pages of the topics and
	// connections lists.
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = ":9090"
	}
	if c.Interval == 0 {
		c.Interval = 2 * time.Second
	}
	if c.TTL == 0 {
		c.TTL = max(10*time.Second, 2*c.Interval)
	}
	if c.CommandPoll == 0 {
		c.CommandPoll = time.Second
	}
	if c.MaxTopics == 0 {
		c.MaxTopics = 1000
	}
	if c.RegistryTimeout == 0 {
		c.RegistryTimeout = 2 * time.Second
	}
	if c.Rate == 0 {
		c.Rate = 20
	}
	if c.Burst == 0 {
		c.Burst = max(2*int(c.Rate), 1)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every invalid field of an already defaulted config.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("admin: "+format, args...))
		}
	}
	_, _, err := net.SplitHostPort(c.Addr)
	check(err != nil, "addr %q: %v", c.Addr, err)
	check(c.Interval < time.Millisecond, "interval %s below 1ms", c.Interval)
	check(c.TTL <= c.Interval, "ttl %s must be longer than the interval %s", c.TTL, c.Interval)
	check(c.CommandPoll < time.Millisecond, "command poll %s below 1ms", c.CommandPoll)
	check(c.MaxTopics < 1 || c.MaxTopics > 100000, "max topics %d out of range 1..100000", c.MaxTopics)
	check(c.RegistryTimeout <= 0, "registry timeout %s must be positive", c.RegistryTimeout)
	check(c.Rate > 0 && c.Burst < 1, "burst %d must be positive", c.Burst)
	return errors.Join(errs...)
}

// listenAddr returns the address to listen on: addr itself with a token,
// else addr with its host made loopback (a loopback IP or "localhost" is
// kept; anything else, the empty host included, becomes 127.0.0.1), and
// whether it was rewritten.
func listenAddr(addr, token string) (string, bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, fmt.Errorf("admin: addr %q: %w", addr, err)
	}
	if token != "" || host == "localhost" {
		return addr, false, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return addr, false, nil
	}
	return net.JoinHostPort("127.0.0.1", port), true, nil
}
