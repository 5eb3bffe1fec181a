// Package redisconn turns the node's Redis settings into go-redis clients,
// for the three topologies ssecluster runs on: one Redis (REDIS_URL, also
// rediss:// and ACL users), a Sentinel-managed group (REDIS_SENTINEL_URL,
// go-redis's failover client, which follows failovers) and a Redis Cluster
// (REDIS_CLUSTER_URL, go-redis's cluster client, which follows MOVED/ASK
// and slot changes). Every user of Redis (the broker, the admin registry)
// builds its clients here, so one setting selects the topology for all.
//
// It does not decide how clients retry or time out: callers pass Tuning.
// It starts no goroutines of its own (go-redis's clients start theirs and
// stop them on Close).
package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode names a topology.
type Mode string

// The topologies.
const (
	ModeNone     Mode = ""         // no Redis: the standalone in-memory broker
	ModeSingle   Mode = "single"   // Config.URL
	ModeSentinel Mode = "sentinel" // Config.SentinelURL
	ModeCluster  Mode = "cluster"  // Config.ClusterURL
)

// Config selects a Redis topology. At most one of URL, SentinelURL and
// ClusterURL may be set; none means no Redis.
type Config struct {
	// URL of one Redis server: redis://[user:password@]host:port/db, or
	// rediss:// for TLS (REDIS_URL).
	URL string
	// SentinelURL is go-redis's failover URL: the sentinels and the name of
	// the master they watch,
	// redis://[user:password@]S1:P1?addr=S2:P2&addr=S3:P3&master_name=NAME;
	// the userinfo authenticates to the sentinels, the query parameters
	// username and password to the master and replicas
	// (REDIS_SENTINEL_URL).
	SentinelURL string
	// ClusterURL is go-redis's cluster URL: seed nodes,
	// redis://[user:password@]H1:P1?addr=H2:P2&addr=H3:P3
	// (REDIS_CLUSTER_URL).
	ClusterURL string
	// CAFile is a PEM file of the certificate authorities trusted for a
	// rediss:// URL instead of the system's (REDIS_CA_FILE); "" means the
	// system roots. Only with a rediss:// URL.
	CAFile string
}

// Mode returns the topology the config selects; call Validate first.
func (c Config) Mode() Mode {
	switch {
	case c.URL != "":
		return ModeSingle
	case c.SentinelURL != "":
		return ModeSentinel
	case c.ClusterURL != "":
		return ModeCluster
	}
	return ModeNone
}

// names of the settings, for errors a user reads.
const (
	nameURL      = "REDIS_URL"
	nameSentinel = "REDIS_SENTINEL_URL"
	nameCluster  = "REDIS_CLUSTER_URL"
	nameCA       = "REDIS_CA_FILE"
)

// Validate reports the first problem of the config: two topologies at once
// (naming both), a URL go-redis does not parse, a sentinel URL without a
// master name, a CA file without TLS or that holds no certificate.
func (c Config) Validate() error {
	var set []string
	for _, s := range []struct{ name, v string }{{nameURL, c.URL}, {nameSentinel, c.SentinelURL}, {nameCluster, c.ClusterURL}} {
		if s.v != "" {
			set = append(set, s.name)
		}
	}
	if len(set) > 1 {
		return fmt.Errorf("redisconn: %s are both set; choose one Redis topology", strings.Join(set, " and "))
	}
	if c.CAFile != "" && len(set) == 0 {
		return fmt.Errorf("redisconn: %s is set but no Redis URL is", nameCA)
	}
	_, err := c.parse()
	return err
}

// parsed is a validated config as go-redis options.
type parsed struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

func (c Config) parse() (parsed, error) {
	var p parsed
	var tlsCfg *tls.Config
	var raw, name string
	var err error
	switch c.Mode() {
	case ModeNone:
		return p, nil
	case ModeSingle:
		raw, name = c.URL, nameURL
		if p.single, err = redis.ParseURL(c.URL); err == nil {
			tlsCfg = p.single.TLSConfig
		}
	case ModeSentinel:
		raw, name = c.SentinelURL, nameSentinel
		if p.failover, err = redis.ParseFailoverURL(c.SentinelURL); err == nil {
			tlsCfg = p.failover.TLSConfig
			if p.failover.MasterName == "" {
				err = errors.New("missing master_name query parameter (the name the sentinels monitor)")
			}
		}
	case ModeCluster:
		raw, name = c.ClusterURL, nameCluster
		if p.cluster, err = redis.ParseClusterURL(c.ClusterURL); err == nil {
			tlsCfg = p.cluster.TLSConfig
			if u, _ := url.Parse(raw); u != nil && strings.Trim(u.Path, "/") != "" && strings.Trim(u.Path, "/") != "0" {
				err = errors.New("a Redis Cluster has only database 0; remove the path")
			}
		}
	}
	if err != nil {
		return parsed{}, fmt.Errorf("redisconn: %s %s: %s", name, Redact(raw), cleanErr(err))
	}
	if err := checkHosts(raw); err != nil {
		return parsed{}, fmt.Errorf("redisconn: %s %s: %w", name, Redact(raw), err)
	}
	if c.CAFile != "" {
		if tlsCfg == nil {
			return parsed{}, fmt.Errorf("redisconn: %s is set but %s does not use rediss://", nameCA, name)
		}
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return parsed{}, fmt.Errorf("redisconn: %s: %w", nameCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return parsed{}, fmt.Errorf("redisconn: %s %s holds no PEM certificate", nameCA, c.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if tlsCfg != nil && tlsCfg.MinVersion == 0 {
		tlsCfg.MinVersion = tls.VersionTLS12
	}
	return p, nil
}

// checkHosts refuses a URL without a host: go-redis would quietly dial
// localhost:6379.
func checkHosts(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Hostname() == "" {
		return errors.New("missing host")
	}
	return nil
}

// cleanErr keeps go-redis's message but never a password it may quote.
func cleanErr(err error) string {
	return strings.TrimPrefix(err.Error(), "redis: ")
}

// Tuning is what a caller decides about its clients.
type Tuning struct {
	// MaxRetries as in go-redis (-1: never retry a command). For a cluster
	// it also bounds the redirects (MOVED, ASK) followed per command.
	MaxRetries int
	// MaxRedirects for a cluster client; 0 means go-redis's default (3).
	MaxRedirects int
	// ReadTimeout and WriteTimeout of every connection.
	ReadTimeout, WriteTimeout time.Duration
	// PoolSize per server; 0 means go-redis's default.
	PoolSize int
	// DialerRetries; 0 means go-redis's default.
	DialerRetries int
	// ContextTimeoutEnabled: commands also end at the context's deadline.
	ContextTimeoutEnabled bool
	// ClientName is sent with CLIENT SETNAME on every connection, so
	// CLIENT LIST shows which part of which node holds it.
	ClientName string
}

// NewClient returns a client for the topology: a *redis.Client for single
// and sentinel (go-redis's failover client), a *redis.ClusterClient for a
// cluster. It does not contact Redis. It fails only on a config that
// Validate refuses, or with ModeNone.
func (c Config) NewClient(t Tuning) (redis.UniversalClient, error) {
	p, err := c.parse()
	if err != nil {
		return nil, err
	}
	switch {
	case p.single != nil:
		o := p.single
		o.MaxRetries, o.ReadTimeout, o.WriteTimeout = t.MaxRetries, t.ReadTimeout, t.WriteTimeout
		o.PoolSize, o.ContextTimeoutEnabled, o.ClientName = t.PoolSize, t.ContextTimeoutEnabled, t.ClientName
		if t.DialerRetries != 0 {
			o.DialerRetries = t.DialerRetries
		}
		return redis.NewClient(o), nil
	case p.failover != nil:
		o := p.failover
		o.MaxRetries, o.ReadTimeout, o.WriteTimeout = t.MaxRetries, t.ReadTimeout, t.WriteTimeout
		o.PoolSize, o.ContextTimeoutEnabled, o.ClientName = t.PoolSize, t.ContextTimeoutEnabled, t.ClientName
		if t.DialerRetries != 0 {
			o.DialerRetries = t.DialerRetries
		}
		return redis.NewFailoverClient(o), nil
	case p.cluster != nil:
		o := p.cluster
		o.MaxRetries, o.ReadTimeout, o.WriteTimeout = t.MaxRetries, t.ReadTimeout, t.WriteTimeout
		o.PoolSize, o.ContextTimeoutEnabled, o.ClientName = t.PoolSize, t.ContextTimeoutEnabled, t.ClientName
		if t.MaxRedirects != 0 {
			o.MaxRedirects = t.MaxRedirects
		}
		if t.DialerRetries != 0 {
			o.DialerRetries = t.DialerRetries
		}
		return redis.NewClusterClient(o), nil
	}
	return nil, errors.New("redisconn: no Redis configured")
}

// Redacted returns the config's URL with its passwords hidden, for logs.
func (c Config) Redacted() string {
	switch c.Mode() {
	case ModeSingle:
		return Redact(c.URL)
	case ModeSentinel:
		return Redact(c.SentinelURL)
	case ModeCluster:
		return Redact(c.ClusterURL)
	}
	return ""
}

// Redact hides the password of a Redis URL, in its userinfo and in a
// password or sentinel_password query parameter. A value that does not
// parse is replaced whole: it may hold a password in any place.
func Redact(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	changed := false
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}
