package loadtest

import (
	"encoding/json"
	"io"
	"strings"
)

// maxPayloadDepth bounds how deep findPayload looks into a document.
const maxPayloadDepth = 8

// findPayload looks for a payload in data that is not exactly the payload:
// a generic target may send it as a JSON string, or inside a larger JSON
// document (an envelope with the channel, an array, ...), as an object or
// as a string holding the object.
func findPayload(data string) (Payload, bool) { return payloadInJSON(data, 0) }

func payloadInJSON(data string, depth int) (Payload, bool) {
	d := json.NewDecoder(strings.NewReader(data))
	d.UseNumber() // sent_ns needs all 19 digits
	var v any
	if err := d.Decode(&v); err != nil {
		return Payload{}, false
	}
	if _, err := d.Token(); err != io.EOF { // one document, nothing after it
		return Payload{}, false
	}
	return payloadIn(v, depth)
}

func payloadIn(v any, depth int) (Payload, bool) {
	if depth > maxPayloadDepth {
		return Payload{}, false
	}
	switch v := v.(type) {
	case string:
		if !strings.Contains(v, `"sent_ns"`) {
			return Payload{}, false
		}
		if p, ok := parseExact(v); ok {
			return p, true
		}
		return payloadInJSON(v, depth+1)
	case map[string]any:
		if p, ok := payloadObject(v); ok {
			return p, true
		}
		for _, e := range v {
			if p, ok := payloadIn(e, depth+1); ok {
				return p, true
			}
		}
	case []any:
		for _, e := range v {
			if p, ok := payloadIn(e, depth+1); ok {
				return p, true
			}
		}
	}
	return Payload{}, false
}

// payloadObject reads a decoded object with the payload's fields.
func payloadObject(m map[string]any) (Payload, bool) {
	topic, _ := m["topic"].(string)
	seqN, _ := m["seq"].(json.Number)
	sentN, _ := m["sent_ns"].(json.Number)
	seq, err1 := seqN.Int64()
	sent, err2 := sentN.Int64()
	if topic == "" || err1 != nil || err2 != nil || seq < 1 {
		return Payload{}, false
	}
	return Payload{Topic: topic, Seq: seq, SentNs: sent}, true
}
