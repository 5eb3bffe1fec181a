package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/ssecluster/ssecluster/node/auth"
	"github.com/ssecluster/ssecluster/node/retry"
)

// Config configures a Server. The zero value is a working standalone node.
type Config struct {
	// Addr is the HTTP listen address; default ":8080".
	Addr string
	// NodeID names this node in logs and the X-SSE-Node header; default
	// "node". cmd/ssenode defaults it to the hostname.
	NodeID string
	// Version is what the node reports as its version (admin API,
	// ssecluster_node_info); 1..128 characters of [A-Za-z0-9._+-]. Empty:
	// from the binary's build info (module version, "+<revision>" when it
	// was built from a VCS checkout). cmd/ssenode sets it from a value
	// stamped at link time (-ldflags "-X main.version=...").
	Version string
	// PublishToken, when set, is required as "Authorization: Bearer <token>"
	// on POST /v1/publish (or a JWT that grants the topics, with Auth).
	PublishToken string
	// Auth verifies JSON Web Tokens (package auth): with it every stream
	// needs a token whose sse.subscribe patterns cover its topics, and
	// every publish one whose sse.publish patterns do (or PublishToken).
	// Nil: the node runs open.
	Auth *auth.Verifier
	// AuthCookie names the cookie a token may come in (after the
	// Authorization header and the token query parameter); default
	// "sse_token".
	AuthCookie string

	// CORSOrigins are the origins browsers may call the public API from
	// ("https://app.example.com", or "*" for any). Default: none with Auth;
	// "*" for streams only (not publish) without. CORSCredentials lets
	// them send cookies (not with "*").
	CORSOrigins     []string
	CORSCredentials bool
	// corsDefault: CORSOrigins was defaulted (open mode): streams only.
	corsDefault bool

	// MaxTopics is the most topics one stream may subscribe to; default 32.
	MaxTopics int
	// Heartbeat is the longest an idle stream stays silent; default 15 s.
	// Keep it below every idle timeout on the path (load balancers, proxies).
	Heartbeat time.Duration
	// Retry is the reconnect policy (package retry): jittered exponential
	// hints, enforced. Defaults: base 1 s, cap 60 s, healthy after the cap,
	// 5 early reconnects before 429.
	Retry retry.Policy
	// CookieKey signs the retry cookie; every node of a cluster needs the
	// same one. Empty: the broker's shared key "retry-cookie" (one per
	// Redis, created by the first node that asks).
	CookieKey []byte
	// CookieKeyRefresh is how often a node reads the broker's shared key
	// again when CookieKey is empty (jittered, default 10 s). A Redis that
	// restarts without its data gets a new key from the first node that
	// asks; the others follow within this time, so a cookie signed by one
	// node is again valid on every node.
	CookieKeyRefresh time.Duration
	// DrainWindow is how long a drain spreads the closing of the node's
	// streams over; default 30 s.
	DrainWindow time.Duration
	// MaxStreams bounds the streams of the node; beyond it new streams are
	// shed. Default: the process's open-file limit minus a tenth (at least
	// 100) for everything else.
	MaxStreams int
	// AdmitRate is how many new streams per second the node admits (a token
	// bucket of AdmitBurst), so a reconnect wave is absorbed at a pace the
	// node can serve, resume reads included; beyond it new streams are
	// shed. Defaults 2000/s and a burst of AdmitRate. Negative: no limit.
	AdmitRate  float64
	AdmitBurst int
	// MaxStreamsPerAddr and ConnectRatePerAddr limit one source address
	// (streams open at once; new streams per second, burst of the rate
	// rounded up); 0, the default, is no limit. The source address is the
	// peer's, or the last X-Forwarded-For hop when the peer is in
	// TrustedProxies.
	MaxStreamsPerAddr  int
	ConnectRatePerAddr float64
	TrustedProxies     []netip.Prefix
	// DeadPeerTimeout is how long written bytes may stay unacknowledged
	// before the kernel drops the connection (TCP_USER_TIMEOUT); with the
	// heartbeat it bounds how long a vanished client holds a stream.
	// Default 30 s.
	DeadPeerTimeout time.Duration
	// WriteTimeout bounds one blocking write to a stream (replay, backlog);
	// default 10 s. A stream that cannot take its bytes by then is closed.
	WriteTimeout time.Duration
	// MaxPending is the most bytes a stream may have waiting for its socket
	// (a client that reads slowly, or live events arriving during a long
	// replay); default 1 MiB. Above it the stream is closed with a retry
	// hint and the client resumes from its cursor.
	MaxPending int

	// MaxBodyBytes bounds a publish request body; default 1 MiB.
	MaxBodyBytes int64
	// MaxBatch is the most events in one publish request; default 1000.
	MaxBatch int
	// PublishTimeout bounds the broker write of a publish; default 5 s.
	PublishTimeout time.Duration

	// ReplayPage is how many broker entries one history read scans during
	// a resume; default 500.
	ReplayPage int
	// Cache bounds the replay cache.
	Cache CacheConfig

	// SurvivalWindow is how far back connection survival looks (streams
	// opened within it); default 1 h, at most 24 h.
	SurvivalWindow time.Duration
	// SurvivalRecords bounds the streams the survival estimate keeps, at
	// 16 bytes each; default 262144 (4 MiB). When more open within the
	// window, the estimate covers only the newest (its window_s says how
	// far back).
	SurvivalRecords int

	// ReadHeaderTimeout bounds reading a request's headers; default 10 s.
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds reading a publish request's body; default 10 s.
	// A body that does not arrive in time is answered 408.
	BodyTimeout time.Duration
	// MaxHeaderBytes bounds a request's header fields (names and values,
	// the request line not included): beyond it, 431. Default 32 KiB.
	// Far beyond it (4 times MaxHeaderBytes plus MaxURLBytes) Go's server
	// stops reading and answers a plain-text 431 itself.
	MaxHeaderBytes int
	// MaxURLBytes bounds the request target (path and query): beyond it,
	// 414. Default 16 KiB: 32 topics of 200 bytes and a token fit.
	MaxURLBytes int
	// MaxCursorBytes bounds Last-Event-ID: beyond it, 400. Default 64
	// bytes per partition a stream may span (MaxTopics, at most
	// pubsub.MaxPartitions), the most a cursor the node wrote can need.
	MaxCursorBytes int
	// MaxDataBytes bounds the data of one published event: beyond it, 413.
	// Default 256 KiB (at most MaxBodyBytes).
	MaxDataBytes int

	// Logger; default slog.Default().
	Logger *slog.Logger
}

// CacheConfig bounds the per-node replay cache.
type CacheConfig struct {
	// Topics is the most topics cached; default 10000.
	Topics int
	// PerTopic is the most events cached per topic; default 256.
	PerTopic int
	// Bytes is the most encoded bytes cached overall; default 64 MiB.
	Bytes int64
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.NodeID == "" {
		c.NodeID = "node"
	}
	if c.MaxTopics == 0 {
		c.MaxTopics = 32
	}
	def(&c.Heartbeat, 15*time.Second)
	def(&c.Retry.Base, retry.DefaultBase)
	def(&c.Retry.Cap, retry.DefaultCap)
	def(&c.Retry.HealthyAfter, max(c.Retry.Cap, c.Retry.Base))
	if c.Retry.EarlyLimit == 0 {
		c.Retry.EarlyLimit = retry.DefaultEarlyLimit
	}
	def(&c.CookieKeyRefresh, 10*time.Second)
	def(&c.DrainWindow, 30*time.Second)
	def(&c.DeadPeerTimeout, 30*time.Second)
	if c.MaxStreams == 0 {
		c.MaxStreams = defaultMaxStreams()
	}
	if c.AdmitRate == 0 {
		c.AdmitRate = 2000
	}
	if c.AdmitBurst == 0 {
		c.AdmitBurst = max(int(c.AdmitRate), 1)
	}
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.PublishTimeout, 5*time.Second)
	def(&c.ReadHeaderTimeout, 10*time.Second)
	if c.MaxPending == 0 {
		c.MaxPending = 1 << 20
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1000
	}
	if c.ReplayPage == 0 {
		c.ReplayPage = 500
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 32 << 10
	}
	if c.MaxURLBytes == 0 {
		c.MaxURLBytes = 16 << 10
	}
	if c.MaxCursorBytes == 0 {
		c.MaxCursorBytes = c.minCursorBytes()
	}
	if c.MaxDataBytes == 0 {
		c.MaxDataBytes = int(min(256<<10, c.MaxBodyBytes))
	}
	def(&c.BodyTimeout, 10*time.Second)
	if c.AuthCookie == "" {
		c.AuthCookie = "sse_token"
	}
	if c.CORSOrigins == nil && c.Auth == nil {
		c.CORSOrigins, c.corsDefault = []string{"*"}, true
	}
	def(&c.SurvivalWindow, time.Hour)
	if c.SurvivalRecords == 0 {
		c.SurvivalRecords = 1 << 18
	}
	if c.Cache.Topics == 0 {
		c.Cache.Topics = 10000
	}
	if c.Cache.PerTopic == 0 {
		c.Cache.PerTopic = 256
	}
	if c.Cache.Bytes == 0 {
		c.Cache.Bytes = 64 << 20
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
			errs = append(errs, fmt.Errorf("node: "+format, args...))
		}
	}
	check(!validNodeID(c.NodeID), "node id %q must be 1..64 characters of [A-Za-z0-9._-]", c.NodeID)
	check(c.Version != "" && !validVersion(c.Version), "version %q must be 1..128 characters of [A-Za-z0-9._+-]", c.Version)
	check(c.MaxTopics < 1 || c.MaxTopics > 1024, "max topics %d out of range 1..1024", c.MaxTopics)
	check(c.Heartbeat < 10*time.Millisecond, "heartbeat %s below 10ms", c.Heartbeat)
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("node: %w", err))
	}
	check(c.CookieKey != nil && len(c.CookieKey) < 16, "cookie key shorter than 16 bytes")
	check(c.CookieKeyRefresh < 10*time.Millisecond, "cookie key refresh %s below 10ms", c.CookieKeyRefresh)
	check(c.DrainWindow < 0, "drain window %s is negative", c.DrainWindow)
	check(c.MaxStreams < 1, "max streams %d must be positive", c.MaxStreams)
	check(c.AdmitRate > 0 && c.AdmitBurst < 1, "admit burst %d must be positive", c.AdmitBurst)
	check(c.MaxStreamsPerAddr < 0 || c.ConnectRatePerAddr < 0, "per-address limits must not be negative")
	check(c.DeadPeerTimeout < time.Millisecond, "dead peer timeout %s below 1ms", c.DeadPeerTimeout)
	check(c.WriteTimeout <= 0, "write timeout %s must be positive", c.WriteTimeout)
	check(c.MaxPending < 4096, "max pending %d below 4096", c.MaxPending)
	check(c.MaxBodyBytes < 1024, "max body %d below 1024", c.MaxBodyBytes)
	check(c.MaxBatch < 1, "max batch %d must be positive", c.MaxBatch)
	check(c.PublishTimeout <= 0, "publish timeout %s must be positive", c.PublishTimeout)
	check(c.ReplayPage < 1, "replay page %d must be positive", c.ReplayPage)
	check(c.Cache.Topics < 1 || c.Cache.PerTopic < 1 || c.Cache.Bytes < 1, "cache bounds must be positive")
	check(c.ReadHeaderTimeout <= 0, "read header timeout must be positive")
	check(c.MaxHeaderBytes < 1024, "max header bytes %d below 1024", c.MaxHeaderBytes)
	check(c.MaxURLBytes < 1024, "max URL bytes %d below 1024", c.MaxURLBytes)
	check(c.MaxCursorBytes < c.minCursorBytes(),
		"max cursor bytes %d below %d (%d bytes for each partition a stream of max topics %d may span): cursors the node writes would be refused",
		c.MaxCursorBytes, c.minCursorBytes(), MaxCursorEntryBytes, c.MaxTopics)
	check(c.MaxDataBytes < 1 || int64(c.MaxDataBytes) > c.MaxBodyBytes, "max data bytes %d out of range 1..max body bytes", c.MaxDataBytes)
	check(c.BodyTimeout <= 0, "body timeout must be positive")
	check(!validCookieName(c.AuthCookie), "auth cookie name %q is not a cookie name", c.AuthCookie)
	for _, o := range c.CORSOrigins {
		check(o != "*" && !validOrigin(o), "CORS origin %q must be scheme://host[:port] or *", o)
		check(o == "*" && c.CORSCredentials, "CORS credentials cannot be allowed for any origin (*)")
	}
	check(c.SurvivalWindow <= 0 || c.SurvivalWindow > 24*time.Hour, "survival window %s out of range (0, 24h]", c.SurvivalWindow)
	check(c.SurvivalRecords < 1, "survival records %d must be positive", c.SurvivalRecords)
	return errors.Join(errs...)
}

func validNodeID(s string) bool { return validName(s, 64, "._-") }

func validVersion(s string) bool { return validName(s, 128, "._+-") }

// validName reports whether s is 1..maxLen ASCII letters, digits and bytes
// of extra.
func validName(s string, maxLen int, extra string) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// defaultMaxStreams derives the stream limit from the open-file limit: each
// stream holds one descriptor; a tenth (at least 100) stays for the
// listener, Redis connections, publishes and the admin API.
func defaultMaxStreams() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 10000
	}
	n := int(min(rl.Cur, 1<<24))
	return max(n-max(n/10, 100), 1)
}
