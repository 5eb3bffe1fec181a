package loadtest

import (
	"encoding/json"
	"strconv"
	"strings"
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
// anything else goes through encoding/json. Topic aliases data.
func ParsePayload(data string) (Payload, bool) {
	if p, ok := parseExact(data); ok {
		return p, true
	}
	var p Payload
	if err := json.Unmarshal([]byte(data), &p); err != nil || p.Topic == "" || p.Seq < 1 {
		return Payload{}, false
	}
	return p, true
}

func parseExact(s string) (Payload, bool) {
	var p Payload
	rest, ok := strings.CutPrefix(s, `{"topic":"`)
	if !ok {
		return p, false
	}
	i := strings.IndexByte(rest, '"')
	if i <= 0 || strings.IndexByte(rest[:i], '\\') >= 0 {
		return p, false
	}
	p.Topic, rest = rest[:i], rest[i+1:]
	if rest, ok = strings.CutPrefix(rest, `,"seq":`); !ok {
		return p, false
	}
	if p.Seq, rest, ok = cutInt(rest); !ok || p.Seq < 1 {
		return p, false
	}
	if rest, ok = strings.CutPrefix(rest, `,"sent_ns":`); !ok {
		return p, false
	}
	if p.SentNs, rest, ok = cutInt(rest); !ok || rest != "}" {
		return p, false
	}
	return p, true
}

// cutInt parses the decimal digits at the start of s.
func cutInt(s string) (int64, string, bool) {
	i := 0
	for i < len(s) && i < 19 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, s, false
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	return n, s[i:], err == nil
}
