package sse

import (
	"math"
	"strconv"
	"strings"
)

// This file holds a deliberately naive transcription of the specs, used as
// an oracle by the parser tests and the fuzz targets: it decodes the whole
// input at once and works on strings, sharing no code with Parser.

// refDecode is the WHATWG Encoding Standard UTF-8 decoder (§4.1 "UTF-8
// decoder", error mode replacement), without BOM handling.
func refDecode(in []byte) string {
	var sb strings.Builder
	var cp rune
	var seen, needed int
	lower, upper := byte(0x80), byte(0xBF)
	for i := 0; i < len(in); {
		b := in[i]
		if needed == 0 {
			i++
			switch {
			case b <= 0x7F:
				sb.WriteByte(b)
			case b >= 0xC2 && b <= 0xDF:
				needed, cp = 1, rune(b&0x1F)
			case b >= 0xE0 && b <= 0xEF:
				if b == 0xE0 {
					lower = 0xA0
				}
				if b == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(b&0xF)
			case b >= 0xF0 && b <= 0xF4:
				if b == 0xF0 {
					lower = 0x90
				}
				if b == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(b&0x7)
			default:
				sb.WriteRune(0xFFFD)
			}
			continue
		}
		if b < lower || b > upper {
			// Error; the byte is "restored to the stream" and read again.
			cp, needed, seen = 0, 0, 0
			lower, upper = 0x80, 0xBF
			sb.WriteRune(0xFFFD)
			continue
		}
		i++
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(b&0x3F)
		if seen++; seen == needed {
			sb.WriteRune(cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 {
		sb.WriteRune(0xFFFD)
	}
	return sb.String()
}

// refParse is HTML §9.2.5–9.2.6 over a complete input, reporting blocks the
// way Parser does. lastID seeds the last event ID buffer.
func refParse(in []byte, lastID string) []Event {
	s := strings.TrimPrefix(refDecode(in), "\uFEFF")
	var out []Event
	var data strings.Builder
	typ, id := "", lastID
	ev, inBlock := Event{Retry: -1}, false
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			return out // an unterminated last line or block is discarded
		}
		line := s[:i]
		if strings.HasPrefix(s[i:], "\r\n") {
			s = s[i+2:]
		} else {
			s = s[i+1:]
		}
		switch {
		case line == "":
			if !inBlock {
				continue
			}
			ev.ID = id
			if data.Len() > 0 {
				ev.Dispatch = true
				ev.Data = strings.TrimSuffix(data.String(), "\n")
				ev.Type = typ
				if ev.Type == "" {
					ev.Type = "message"
				}
			}
			out = append(out, ev)
			data.Reset()
			typ, ev, inBlock = "", Event{Retry: -1}, false
			continue
		case line[0] == ':':
			ev.Comments++
		default:
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "event":
				typ = value
			case "data":
				data.WriteString(value)
				data.WriteByte('\n')
			case "id":
				if !strings.Contains(value, "\x00") {
					id, ev.HasID = value, true
				}
			case "retry":
				if value != "" && strings.Trim(value, "0123456789") == "" {
					n, err := strconv.ParseInt(value, 10, 64)
					if err != nil {
						n = math.MaxInt64 // all digits: only overflow can fail
					}
					ev.Retry = n
				}
			}
		}
		inBlock = true
	}
}

// normalizeLineBreaks maps CRLF and CR to LF.
func normalizeLineBreaks(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}
