package loadtest

import (
	"math"
	"strconv"
)

// Payload is the data of every event the publisher sends: the topic, the
// event's number in that topic (1, 2, 3, ...) and the publish time in Unix
// nanoseconds, so each subscriber measures end-to-end latency and checks the
// sequence on its own. Its JSON form is
//
//	{"topic":"load-3","seq":17,"sent_ns":1767225600000000000}
type Payload struct {
	Topic  string `json:"topic"`
	Seq    int64  `json:"seq"`
	SentNs int64  `json:"sent_ns"`
}

// AppendPayload appends the JSON form of a payload to dst. topic must need
// no JSON escaping (valid ssecluster topics never do).
func AppendPayload(dst []byte, topic string, seq, sentNs int64) []byte {
	dst = append(dst, `{"topic":"`...)
	dst = append(dst, topic...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"sent_ns":`...)
	dst = strconv.AppendInt(dst, sentNs, 10)
	return append(dst, '}')
}

// ParsePayload reads a payload. The exact form AppendPayload writes (the
// node passes compact JSON through unchanged) is read without allocating;
// anything else is looked for in the data as JSON (findPayload). Topic
// aliases data.
func ParsePayload(data string) (Payload, bool) {
	if p, ok := parseExact(data); ok {
		return p, true
	}
	return findPayload(data)
}

// payloadRef is a Payload whose topic aliases the bytes it was read from:
// what a stream needs per event, without copying the topic.
type payloadRef struct {
	Topic       []byte
	Seq, SentNs int64
}

// parsePayloadRef is ParsePayload for the bytes of an event's data. The
// exact form allocates nothing; anything else is copied and goes through
// findPayload.
func parsePayloadRef(data []byte) (payloadRef, bool) {
	if topic, seq, sent, ok := scanExact(data); ok {
		return payloadRef{Topic: topic, Seq: seq, SentNs: sent}, true
	}
	p, ok := findPayload(string(data))
	return payloadRef{Topic: []byte(p.Topic), Seq: p.Seq, SentNs: p.SentNs}, ok
}

// parseExact reads the form AppendPayload writes.
func parseExact(s string) (Payload, bool) {
	topic, seq, sent, ok := scanExact(s)
	return Payload{Topic: topic, Seq: seq, SentNs: sent}, ok
}

// scanExact reads the form AppendPayload writes, from a string or from
// bytes (one implementation, so both accept exactly the same input).
func scanExact[T string | []byte](s T) (topic T, seq, sentNs int64, ok bool) {
	var none T
	rest, ok := cutPrefix(s, `{"topic":"`)
	if !ok {
		return none, 0, 0, false
	}
	i := 0
	for i < len(rest) && rest[i] != '"' {
		if rest[i] == '\\' {
			return none, 0, 0, false
		}
		i++
	}
	if i == 0 || i == len(rest) {
		return none, 0, 0, false
	}
	topic, rest = rest[:i], rest[i+1:]
	if rest, ok = cutPrefix(rest, `,"seq":`); !ok {
		return none, 0, 0, false
	}
	if seq, rest, ok = cutInt(rest); !ok || seq < 1 {
		return none, 0, 0, false
	}
	if rest, ok = cutPrefix(rest, `,"sent_ns":`); !ok {
		return none, 0, 0, false
	}
	if sentNs, rest, ok = cutInt(rest); !ok || string(rest) != "}" {
		return none, 0, 0, false
	}
	return topic, seq, sentNs, true
}

func cutPrefix[T string | []byte](s T, prefix string) (T, bool) {
	if len(s) < len(prefix) || string(s[:len(prefix)]) != prefix {
		return s, false
	}
	return s[len(prefix):], true
}

// cutInt parses the decimal digits at the start of s (at most 19, and not
// beyond MaxInt64).
func cutInt[T string | []byte](s T) (int64, T, bool) {
	var n int64
	i := 0
	for ; i < len(s) && i < 19 && s[i] >= '0' && s[i] <= '9'; i++ {
		d := int64(s[i] - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, s, false
		}
		n = n*10 + d
	}
	if i == 0 {
		return 0, s, false
	}
	return n, s[i:], true
}
