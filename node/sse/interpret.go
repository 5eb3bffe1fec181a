package sse

import (
	"bytes"
	"math"
	"unicode/utf8"
)

// Block is one block of an event stream as Decoder reports it: the fields of
// Event, with ID and Data aliasing the decoder's buffers instead of being
// copied into strings. They are valid only until the function Decoder.Feed
// called returns; copy what must outlive it.
type Block struct {
	// ID is the last event ID after this block (sticky, as Event.ID).
	ID []byte
	// HasID reports that the block held an id field that took effect.
	HasID bool
	// Type is the event type, "message" when the block set none; empty when
	// Dispatch is false. Repeated types share one string, so a stream
	// whose types repeat allocates nothing for them.
	Type string
	// Data is the block's data lines joined with LF; empty when Dispatch is
	// false.
	Data []byte
	// Retry is the block's last valid retry value in milliseconds, or -1.
	Retry int64
	// Dispatch reports that an event fired (the block had a data field).
	Dispatch bool
	// Comments counts the block's comment lines.
	Comments int
}

// interp is the interpretation state of one stream (§9.2.6): the data,
// event type and last event ID buffers, and what the block being read has
// set so far. Parser and Decoder split the stream into lines their own way
// (pull and push) and share this, so both apply the spec the same way.
type interp struct {
	data     []byte // the data buffer: each value followed by LF
	typ      []byte // the event type buffer
	lastID   []byte // the last event ID string: the buffer as of the last block's end
	idBuf    []byte // the last event ID buffer, when the open block set it (idSet)
	dec      []byte // a line after invalid UTF-8 was replaced
	lastType string // the previous Type, reused to avoid an allocation

	inBlock  bool // a non-blank line was seen since the last blank one
	idSet    bool // the open block's id field is in idBuf; else the buffer equals lastID
	hasID    bool
	hasRetry bool
	retry    int64
	comments int
}

// field interprets one non-blank line (§9.2.6). line is not kept.
func (s *interp) field(line []byte, maxLine int) error {
	s.inBlock = true
	if !utf8.Valid(line) {
		s.dec = appendValidUTF8(s.dec[:0], line)
		line = s.dec
		if len(line) > maxLine {
			return ErrLineTooLong
		}
	}
	if line[0] == ':' {
		s.comments++
		return nil
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "event":
		s.typ = append(s.typ[:0], value...)
	case "data":
		if len(s.data)+len(value) > maxLine {
			return ErrLineTooLong
		}
		s.data = append(s.data, value...)
		s.data = append(s.data, '\n')
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			s.idBuf = append(s.idBuf[:0], value...)
			s.idSet, s.hasID = true, true
		}
	case "retry":
		if ms, ok := parseRetry(value); ok {
			s.retry, s.hasRetry = ms, true
		}
	}
	return nil
}

// end ends the block at a blank line (§9.2.6 "dispatch the event") and
// starts the next. The returned Block aliases s's buffers: it is valid
// until the next call to field or end.
func (s *interp) end() Block {
	if s.idSet { // the buffer becomes the string: swap rather than copy
		s.lastID, s.idBuf = s.idBuf, s.lastID
	}
	b := Block{ID: s.lastID, HasID: s.hasID, Retry: -1, Comments: s.comments}
	if s.hasRetry {
		b.Retry = s.retry
	}
	if len(s.data) > 0 {
		b.Dispatch = true
		b.Data = s.data[:len(s.data)-1] // drop the LF after the last value
		switch {
		case len(s.typ) == 0:
			b.Type = "message"
		case string(s.typ) == s.lastType:
			b.Type = s.lastType
		default:
			s.lastType = string(s.typ)
			b.Type = s.lastType
		}
	}
	s.data, s.typ = s.data[:0], s.typ[:0]
	s.inBlock, s.idSet, s.hasID, s.hasRetry, s.retry, s.comments = false, false, false, false, 0, 0
	return b
}

// restart forgets the block being read and sets the last event ID, as at
// the start of a stream.
func (s *interp) restart(lastEventID string) {
	s.lastID = append(s.lastID[:0], lastEventID...)
	s.data, s.typ = s.data[:0], s.typ[:0]
	s.inBlock, s.idSet, s.hasID, s.hasRetry, s.retry, s.comments = false, false, false, false, 0, 0
}

// release drops buffers that one large event grew, so it does not pin its
// memory for the life of the stream.
func (s *interp) release() {
	if cap(s.data) > keepBuf {
		s.data = nil
	}
	if cap(s.dec) > keepBuf {
		s.dec = nil
	}
	if cap(s.idBuf) > keepBuf && !s.idSet {
		s.idBuf = nil
	}
}

// parseRetry reports whether v is all ASCII digits (and not empty) and its
// value, saturated at MaxInt64.
func parseRetry(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
		} else {
			n = n*10 + d
		}
	}
	return n, true
}

// lineBreaks finds line ends (CR, LF) in a buffer that the caller consumes
// from the front, one line at a time.
type lineBreaks struct {
	noLF int // leading bytes of the buffer known to hold no LF
}

// index returns the index of the first CR or LF in b, or -1. It remembers
// how much of the buffer is known to hold no LF, so a stream that ends its
// lines with CR alone is not rescanned for LF on every line. Call it with
// the buffer's unconsumed bytes, starting right after the previous break.
func (lb *lineBreaks) index(b []byte) int {
	end := len(b)
	if lb.noLF < len(b) {
		if i := bytes.IndexByte(b[lb.noLF:], '\n'); i >= 0 {
			end = lb.noLF + i
		}
	}
	if cr := bytes.IndexByte(b[:end], '\r'); cr >= 0 {
		lb.noLF = end - (cr + 1) // bytes after this CR, before the next LF
		return cr
	}
	lb.noLF = 0
	if end == len(b) {
		return -1
	}
	return end
}

// appendValidUTF8 appends s to dst with every ill-formed sequence replaced
// by U+FFFD, one per maximal subpart, as the WHATWG Encoding Standard's
// UTF-8 decoder does. (strings.ToValidUTF8 replaces a whole run with one
// U+FFFD, so "\xff\xff" would become one replacement instead of two.)
func appendValidUTF8(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			// The maximal subpart is the longest prefix that could still
			// start a valid sequence: FullRune is false exactly for those.
			for k := min(3, len(s)-i); k > 1; k-- {
				if !utf8.FullRune(s[i : i+k]) {
					n = k
					break
				}
			}
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return dst
}
