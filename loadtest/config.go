package loadtest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config describes one load run: Subs streams spread over Topics topics,
// and (unless Idle) a publisher at Rate events per second. The zero value
// with only URL set opens one stream and publishes nothing useful; set at
// least Subs and Rate (or Idle). Run applies the defaults.
type Config struct {
	// Scenario names the preset the run came from (see Scenario); it is
	// only reported.
	Scenario string `json:"scenario,omitempty"`
	// URL is the target's base URL, "http://host:port" (a path prefix is
	// kept); required. Streams GET URL/v1/events, the publisher POSTs
	// URL/v1/publish.
	URL string `json:"url"`
	// PublishToken, when set, is sent as "Authorization: Bearer <token>".
	PublishToken string `json:"-"`
	// SubscribeToken, when set, is sent as "Authorization: Bearer <token>"
	// on every stream request (a target with authorization on). Like
	// PublishToken it never appears in reports.
	SubscribeToken string `json:"-"`

	// Generic targets (any SSE server, not only ssecluster). EventsURL is
	// the stream URL with "{topic}" where the topic goes (query-escaped),
	// e.g. "http://127.0.0.1:3000/sse?channel={topic}"; default
	// URL + "/v1/events?topic={topic}". PublishURL, when set, is POSTed one
	// event per request with PublishBody as the body, in which "{topic}"
	// is replaced by the topic, "{payload}" by the payload JSON object and
	// "{payload_str}" by the same as a JSON string; default body
	// "{payload}"; any 2xx answer counts as confirmed. The target must
	// deliver the payload in the event's data, as is, as a JSON string, or
	// embedded in a larger JSON document.
	EventsURL   string `json:"events_url,omitempty"`
	PublishURL  string `json:"publish_url,omitempty"`
	PublishBody string `json:"publish_body,omitempty"`

	// Subs is how many streams to hold (all worker processes together);
	// default 1.
	Subs int `json:"subs"`
	// First is the global index of this process's first stream. Stream i
	// subscribes to topic (First+i) % Topics, so worker processes that
	// split the streams keep the global topic assignment. Default 0.
	First int `json:"first,omitempty"`
	// Topics is how many topics the streams and the publisher use; default
	// 1 (every stream on one topic). With Topics == Subs every stream has
	// its own topic.
	Topics int `json:"topics"`
	// TopicsPerStream is how many topics each stream subscribes to at once,
	// in one request (?topic=a&topic=b...); default 1. Stream i takes the
	// TopicsPerStream consecutive topics from (i*TopicsPerStream) % Topics
	// on, wrapping around (so with Subs*TopicsPerStream >= Topics every
	// topic has a subscriber), and checks each topic's sequence on its own.
	// At most Topics, and within the target's limit (ssecluster:
	// MAX_TOPICS, 32 by default). A generic EventsURL needs "name={topic}"
	// in its query, which is repeated.
	TopicsPerStream int `json:"topics_per_stream,omitempty"`
	// TopicPrefix names the topics: prefix + "-" + index; default "load".
	TopicPrefix string `json:"topic_prefix"`
	// Ramp is how many new streams are started per second; default 1000.
	Ramp float64 `json:"ramp"`
	// SourceAddrs are local addresses that streams bind to in turn (e.g.
	// 127.0.0.1..127.0.0.4), each with its own ephemeral port range, so
	// more than ~28k streams can reach one target port. Empty: the kernel
	// chooses.
	SourceAddrs []netip.Addr `json:"source_addrs,omitempty"`
	// Reconnect makes streams behave like a browser's EventSource: after a
	// drop or a network error they wait the last retry hint (DefaultRetry
	// before any) and reconnect with Last-Event-ID. A non-200 answer or a
	// wrong Content-Type ends the stream for good, as in a browser.
	Reconnect bool `json:"reconnect"`
	// DefaultRetry is the reconnection delay before any retry hint; default
	// 3 s (what browsers use).
	DefaultRetry time.Duration `json:"default_retry"`
	// DialTimeout bounds a TCP connect; default 5 s.
	DialTimeout time.Duration `json:"dial_timeout"`
	// HeadTimeout bounds connect plus the response head; default 10 s.
	HeadTimeout time.Duration `json:"head_timeout"`

	// Idle holds the streams for Duration after they are up and publishes
	// nothing (memory and connection-count measurements).
	Idle bool `json:"idle"`
	// Rate is the publisher's rate in events per second over all topics
	// (round-robin); required unless Idle.
	Rate float64 `json:"rate"`
	// Count bounds how many events are published; 0 means no bound (then
	// Duration must be set).
	Count int64 `json:"count,omitempty"`
	// Duration bounds the publishing (or, when Idle, the holding) time;
	// 0 means no bound (then Count must be set; Idle needs Duration).
	Duration time.Duration `json:"duration"`
	// Warmup is the pause between all streams being up and the first
	// publish (or the idle hold); default 0.
	Warmup time.Duration `json:"warmup"`
	// Drain is how long streams stay open after the last publish for events
	// still in flight; default 3 s. A single process stops earlier once
	// every expected delivery arrived.
	Drain time.Duration `json:"drain"`
	// Burst publishes in bursts: Burst events fall due at the same moment,
	// every Burst/Rate seconds (the mean rate stays Rate). 0 or 1: evenly
	// spaced.
	Burst int `json:"burst,omitempty"`
	// Batch is the most events in one POST /v1/publish; default 1. Events
	// are batched only when they are due at the same time (the publisher is
	// behind), never held back to fill a batch.
	Batch int `json:"batch"`
	// PublishConns is how many publish requests may be in flight, each on
	// its own keep-alive connection; default 4. Topics are pinned to one
	// connection, so per-topic order is kept.
	PublishConns int `json:"publish_conns"`
	// PublishRetry is how long a batch whose outcome is unknown or
	// transient (a connection error, a timeout, 502, 503, 504) is sent
	// again, with the same idempotency keys, backing off from 100 ms
	// (doubling, at most 1.6 s); the events behind it on its connection
	// wait. Default 0: 6 attempts (about 3 s of backoff), then the batch
	// counts as failed. Longer than an outage, every event is confirmed in
	// the end, so a subscriber missing one is a real loss (fault tests).
	PublishRetry time.Duration `json:"publish_retry,omitempty"`

	// Workers runs the streams in this many child processes (RunWorkers);
	// 0 or 1: in this process.
	Workers int `json:"workers,omitempty"`

	// The parent process only (worker processes never see these):
	// NodePIDs are processes of the target on this machine whose memory
	// and CPU are sampled (Report.Nodes); AdminURL and AdminToken read an
	// ssecluster admin API at the start and the end (Report.Admin); Storm
	// is the fault a storm run injects (Report.Storm).
	NodePIDs   []int  `json:"-"`
	AdminURL   string `json:"-"`
	AdminToken string `json:"-"`
	Storm      Storm  `json:"-"`

	// OnReady, when set, is called once every stream has made its first
	// connection attempt, with the number established (before Warmup).
	OnReady func(established int64) `json:"-"`
	// Progress, when set, gets one line every ProgressEvery (default 5 s)
	// while the run lasts.
	Progress      func(line string) `json:"-"`
	ProgressEvery time.Duration     `json:"-"`
	// SampleEvery is the period of Report.Timeline (whole multiples of it
	// in Unix time, so worker processes line up); default 1 s.
	SampleEvery time.Duration `json:"sample_every,omitempty"`
	// Logger; default slog.Default().
	Logger *slog.Logger `json:"-"`
}

// Defaults of Config fields left at zero.
const (
	DefaultRamp         = 1000
	DefaultRetry        = 3 * time.Second
	DefaultDialTimeout  = 5 * time.Second
	DefaultHeadTimeout  = 10 * time.Second
	DefaultDrain        = 3 * time.Second
	DefaultPublishConns = 4
	DefaultTopicPrefix  = "load"
)

// MaxBatch is the largest Batch: the node's default publish limit.
const MaxBatch = 1000

func (c Config) withDefaults() Config {
	if c.Subs == 0 {
		c.Subs = 1
	}
	if c.Topics == 0 {
		c.Topics = 1
	}
	if c.TopicsPerStream == 0 {
		c.TopicsPerStream = 1
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = DefaultTopicPrefix
	}
	if c.Ramp == 0 {
		c.Ramp = DefaultRamp
	}
	if c.DefaultRetry == 0 {
		c.DefaultRetry = DefaultRetry
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.HeadTimeout == 0 {
		c.HeadTimeout = DefaultHeadTimeout
	}
	if c.Drain == 0 {
		c.Drain = DefaultDrain
	}
	if c.Batch == 0 {
		c.Batch = 1
	}
	if c.PublishConns == 0 {
		c.PublishConns = DefaultPublishConns
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 5 * time.Second
	}
	if c.SampleEvery == 0 {
		c.SampleEvery = DefaultSampleEvery
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every invalid field of a defaulted Config.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("loadtest: "+format, args...))
		}
	}
	check(!validBaseURL(c.URL, false), "target %q must be http://host[:port][/path] (https is not supported)", c.URL)
	if c.EventsURL != "" {
		check(!validBaseURL(c.EventsURL, true), "events url %q must be an http:// URL", c.EventsURL)
		check(strings.Count(c.EventsURL, "{topic}") > 1, "events url %q has more than one {topic}", c.EventsURL)
		check(!strings.Contains(c.EventsURL, "{topic}") && c.Topics > 1, "events url %q has no {topic}, so it cannot carry %d topics", c.EventsURL, c.Topics)
	}
	check(c.PublishURL != "" && !validBaseURL(c.PublishURL, true), "publish url %q must be an http:// URL", c.PublishURL)
	check(c.PublishURL == "" && c.PublishBody != "", "a publish body template needs a publish url")
	check(c.PublishURL != "" && c.Batch > 1, "a generic publish url takes one event per request (batch 1)")
	check(c.Burst < 0 || c.Burst > 1_000_000, "burst %d out of range 0..1000000", c.Burst)
	check(c.AdminURL != "" && !validBaseURL(c.AdminURL, false), "admin url %q must be http://host[:port]", c.AdminURL)
	for _, pid := range c.NodePIDs {
		check(pid <= 1, "node pid %d is not a process of the target", pid)
	}
	if err := c.Storm.validate(c); err != nil {
		errs = append(errs, err)
	}
	check(c.Subs < 0, "subs %d is negative", c.Subs)
	check(c.First < 0, "first %d is negative", c.First)
	check(c.Topics < 1, "topics %d must be positive", c.Topics)
	check(c.TopicsPerStream < 1 || c.TopicsPerStream > max(c.Topics, 1),
		"topics per stream %d out of range 1..%d (the topics)", c.TopicsPerStream, c.Topics)
	if c.TopicsPerStream > 1 && c.EventsURL != "" {
		head, _, _ := strings.Cut(c.EventsURL, "{topic}")
		_, ok := topicParam(head)
		check(!ok, "events url %q must hold the topic as a query parameter (name={topic}) to carry %d topics per stream", c.EventsURL, c.TopicsPerStream)
	}
	check(c.PublishRetry < 0, "publish retry %s is negative", c.PublishRetry)
	check(!validTopicPrefix(c.TopicPrefix), "topic prefix %q must be 1..180 characters of [A-Za-z0-9._:@/-] starting with a letter or digit", c.TopicPrefix)
	check(c.Ramp < 0, "ramp %g is negative", c.Ramp)
	check(c.DefaultRetry < 0 || c.DialTimeout < 0 || c.HeadTimeout < 0 || c.Drain < 0 || c.Warmup < 0 || c.SampleEvery < 0,
		"durations must not be negative")
	check(c.Duration < 0, "duration %s is negative", c.Duration)
	if c.Idle {
		check(c.Duration == 0, "idle mode needs a duration")
	} else {
		check(!(c.Rate > 0) || c.Rate > 1e6, "rate %g must be in (0, 1e6] events/s", c.Rate)
		check(c.Count < 0, "count %d is negative", c.Count)
		check(c.Count == 0 && c.Duration == 0, "set a count or a duration: every run is bounded")
	}
	check(c.Batch < 1 || c.Batch > MaxBatch, "batch %d out of range 1..%d", c.Batch, MaxBatch)
	check(c.PublishConns < 1 || c.PublishConns > 256, "publish conns %d out of range 1..256", c.PublishConns)
	check(c.Workers < 0 || c.Workers > 64, "workers %d out of range 0..64", c.Workers)
	for _, a := range c.SourceAddrs {
		check(!a.IsValid(), "invalid source address")
	}
	if c.Workers > 1 && len(c.SourceAddrs) > 0 {
		check(len(c.SourceAddrs) < c.Workers, "%d source addresses cannot be split over %d workers", len(c.SourceAddrs), c.Workers)
	}
	return errors.Join(errs...)
}

// validBaseURL reports whether s is an absolute http URL with a host and no
// fragment (and no query unless query is allowed).
func validBaseURL(s string, query bool) bool {
	u, err := url.Parse(strings.ReplaceAll(s, "{topic}", "t"))
	return err == nil && u.Scheme == "http" && u.Host != "" && u.Fragment == "" && u.User == nil &&
		(query || u.RawQuery == "")
}

// topicParam returns the name of the query parameter that head, the
// events URL up to "{topic}", ends with: "...?topic=" or "...&ch=".
func topicParam(head string) (string, bool) {
	_, query, ok := strings.Cut(head, "?")
	if !ok || !strings.HasSuffix(query, "=") {
		return "", false
	}
	name := query[strings.LastIndex(query, "&")+1 : len(query)-1]
	return name, name != "" && !strings.Contains(name, "=")
}

// Topic returns the name of topic i of the run.
func (c Config) Topic(i int) string { return c.TopicPrefix + "-" + strconv.Itoa(i) }

// maxRuntime bounds a whole run, whatever the target does: ramp, first
// connection, warmup, publishing, drain, and a margin.
func (c Config) maxRuntime() time.Duration {
	d := c.HeadTimeout + c.Warmup + c.Drain + 30*time.Second
	if c.Ramp > 0 {
		d += time.Duration(float64(c.Subs) / c.Ramp * float64(time.Second))
	}
	pub := c.Duration
	if !c.Idle && c.Count > 0 {
		if byCount := time.Duration(float64(c.Count) / c.Rate * float64(time.Second)); pub == 0 || byCount < pub {
			pub = byCount
		}
	}
	return d + pub + pub/10 + c.PublishRetry
}

// LoopbackAddrs returns the n addresses 127.0.0.1 .. 127.0.0.n (n <= 254):
// on Linux every address of 127.0.0.0/8 is local, and each has its own
// ephemeral port range towards a given target.
func LoopbackAddrs(n int) ([]netip.Addr, error) {
	if n < 0 || n > 254 {
		return nil, fmt.Errorf("loadtest: %d loopback addresses out of range 0..254", n)
	}
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)})
	}
	return addrs, nil
}

// validTopicPrefix checks that prefix + "-<index>" is a valid ssecluster
// topic (see node.validTopic; the 200-byte limit leaves room for the index).
func validTopicPrefix(s string) bool {
	if len(s) == 0 || len(s) > 180 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return false
		}
		if !alnum && c != '.' && c != '_' && c != ':' && c != '@' && c != '/' && c != '-' {
			return false
		}
	}
	return true
}
