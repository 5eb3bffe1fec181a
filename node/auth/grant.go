package auth

import (
	"slices"
	"strings"
	"time"
)

const (
	// maxPatterns bounds each list of the "sse" claim.
	maxPatterns = 256
	// maxTopicBytes is the longest topic; a prefix pattern may be one byte
	// longer for its "*".
	maxTopicBytes = 200
)

// Grant is what a verified token allows. It is immutable.
type Grant struct {
	// Subject is the token's sub claim ("" when absent).
	Subject string
	// Expires is the token's exp claim, zero when the token has none. The
	// token was accepted up to Expires plus the Verifier's Leeway.
	Expires time.Time

	subscribe, publish patterns
}

// CanSubscribe reports whether the token may subscribe to topic. The caller
// validates topic first. A nil Grant allows nothing.
func (g *Grant) CanSubscribe(topic string) bool {
	return g != nil && g.subscribe.match(topic)
}

// CanPublish reports whether the token may publish on topic. The caller
// validates topic first. A nil Grant allows nothing.
func (g *Grant) CanPublish(topic string) bool {
	return g != nil && g.publish.match(topic)
}

// patterns is one compiled list of the "sse" claim. Matching is a flag test,
// a binary search and a scan of the prefixes; no allocation.
type patterns struct {
	all      bool     // "*" was in the list
	exact    []string // sorted exact topics
	prefixes []string // prefixes without their "*"
}

func (p *patterns) match(topic string) bool {
	if p.all {
		return true
	}
	if _, ok := slices.BinarySearch(p.exact, topic); ok {
		return true
	}
	for _, pre := range p.prefixes {
		if strings.HasPrefix(topic, pre) {
			return true
		}
	}
	return false
}

// compilePatterns validates list and compiles it, reusing list's array (it
// was decoded for this token alone). It returns a constant detail for
// ErrClaims when list is invalid.
func compilePatterns(list []string) (patterns, string) {
	if len(list) > maxPatterns {
		return patterns{}, "more than 256 patterns"
	}
	var p patterns
	// Partition in place: exact topics go to list[:n], the rest after.
	n := 0
	for i, s := range list {
		prefix, ok := parsePattern(s)
		if !ok {
			return patterns{}, "invalid pattern"
		}
		if !prefix {
			list[n], list[i] = list[i], list[n]
			n++
		}
	}
	rest := list[n:]
	m := 0
	for _, s := range rest {
		if s == "*" {
			p.all = true
			continue
		}
		rest[m] = s[:len(s)-1]
		m++
	}
	if p.all {
		return p, "" // everything matches: keep no lists
	}
	p.exact = list[:n:n]
	slices.Sort(p.exact)
	p.prefixes = rest[:m:m]
	return p, ""
}

// parsePattern reports whether s is a valid pattern and whether it ends in
// "*". A pattern is a topic (1..200 bytes of [A-Za-z0-9._:@/-], the first
// one alphanumeric), such a topic or its non-empty beginning followed by
// "*", or "*". A pattern that could never match a valid topic is invalid:
// it is a mistake in the token, better reported than silently ignored.
func parsePattern(s string) (prefix, ok bool) {
	if s == "*" {
		return true, true
	}
	body := s
	if strings.HasSuffix(s, "*") {
		prefix = true
		body = s[:len(s)-1]
	}
	if body == "" || len(body) > maxTopicBytes || !isAlnum(body[0]) {
		return false, false
	}
	for i := 1; i < len(body); i++ {
		if !isTopicByte(body[i]) {
			return false, false
		}
	}
	return prefix, true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isTopicByte(c byte) bool {
	switch c {
	case '.', '_', ':', '@', '/', '-':
		return true
	}
	return isAlnum(c)
}
