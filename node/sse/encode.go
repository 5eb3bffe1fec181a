package sse

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxTypeLen is the longest event type NewType accepts, in bytes.
const MaxTypeLen = 200

// ErrInvalidType is returned (wrapped) by NewType for a string that cannot be
// an event type.
var ErrInvalidType = errors.New("sse: invalid event type")

// Type is an event type, the value of the "event:" field. The zero value ""
// is the default type: no "event:" line is written and a browser dispatches
// the event as "message".
//
// Build a Type with NewType (or MustType for package-level constants) so the
// value has been checked. A Type made by plain conversion is still guarded by
// the encoder, which drops CR, LF and NUL bytes from it, but its length and
// UTF-8 validity are not checked again.
type Type string

// NewType returns s as a Type after checking that it is 1 to MaxTypeLen
// bytes of valid UTF-8 without CR, LF or NUL. CR and LF would end the field
// and start another one; NUL is refused to match ids, which a browser ignores
// when they contain it.
func NewType(s string) (Type, error) {
	switch {
	case len(s) == 0 || len(s) > MaxTypeLen:
		return "", fmt.Errorf("%w: length %d not in 1..%d", ErrInvalidType, len(s), MaxTypeLen)
	case strings.ContainsAny(s, "\r\n\x00"):
		return "", fmt.Errorf("%w: contains CR, LF or NUL", ErrInvalidType)
	case !utf8.ValidString(s):
		return "", fmt.Errorf("%w: not valid UTF-8", ErrInvalidType)
	}
	return Type(s), nil
}

// MustType is NewType for package-level constants: it panics if s is not a
// valid event type. Never call it with input.
func MustType(s string) Type {
	t, err := NewType(s)
	if err != nil {
		panic(err)
	}
	return t
}

// AppendEvent appends one complete event frame to dst and returns the
// extended slice: the id line (omitted when id is empty), the body written by
// AppendBody, and the blank line that makes a browser dispatch it.
//
// It is AppendID, then AppendBody, then "\n", so a node can encode a body
// once per event and prepend a per-connection id line to each copy. It does
// not allocate when dst has enough capacity.
func AppendEvent(dst []byte, id []byte, typ Type, data []byte) []byte {
	dst = AppendID(dst, id)
	dst = AppendBody(dst, typ, data)
	return append(dst, '\n')
}

// AppendID appends "id: <id>\n" to dst, or nothing when id is empty.
//
// Ids are produced by this project, never taken from clients, so they should
// never hold CR, LF or NUL. As a guard, those bytes are dropped: CR or LF
// would end the field and let the rest inject fields, and a browser ignores
// an id containing NUL, silently keeping the previous one. An id made only of
// such bytes writes nothing. Other bytes, including invalid UTF-8 (which a
// browser turns into U+FFFD), are written unchanged.
func AppendID(dst, id []byte) []byte {
	if len(id) == 0 {
		return dst
	}
	if !hasLineBreakOrNUL(id) {
		dst = append(dst, "id: "...)
		dst = append(dst, id...)
		return append(dst, '\n')
	}
	start := len(dst)
	dst = append(dst, "id: "...)
	dst = appendWithout(dst, id)
	if len(dst) == start+len("id: ") {
		return dst[:start]
	}
	return append(dst, '\n')
}

// AppendBody appends the event type line (if typ is not "") and the data
// lines of an event to dst, without an id line and without the terminating
// blank line. A frame is AppendID + AppendBody + "\n".
//
// data is split into lines at CR, LF and CRLF; each line is written as
// "data: <line>\n", or "data:\n" when empty. The value always follows a
// single space, so a payload line that itself starts with a space keeps it
// (a parser removes only one). A payload with n line breaks writes n+1 data
// lines: an empty payload writes one empty "data:" line, so the event still
// fires with empty data, and a payload ending in a line break writes a final
// empty "data:" line, so a parser returns the payload exactly, with its line
// breaks normalised to LF. Because every line of the payload is prefixed
// with "data:", no payload can produce another field or end the event.
//
// AppendBody does not allocate when dst has enough capacity.
func AppendBody(dst []byte, typ Type, data []byte) []byte {
	if typ != "" {
		dst = append(dst, "event: "...)
		if hasLineBreakOrNULString(string(typ)) {
			dst = appendWithout(dst, typ)
		} else {
			dst = append(dst, typ...)
		}
		dst = append(dst, '\n')
	}

	// Index the next LF and CR with bytes.IndexByte (vectorised) and only
	// search again once the cursor has passed a cached position, so long
	// payloads are scanned once per byte value rather than byte by byte.
	lf := bytes.IndexByte(data, '\n')
	cr := bytes.IndexByte(data, '\r')
	off := 0
	for {
		if lf >= 0 && lf < off {
			if lf = bytes.IndexByte(data[off:], '\n'); lf >= 0 {
				lf += off
			}
		}
		if cr >= 0 && cr < off {
			if cr = bytes.IndexByte(data[off:], '\r'); cr >= 0 {
				cr += off
			}
		}
		end := len(data)
		if lf >= 0 {
			end = lf
		}
		if cr >= 0 && cr < end {
			end = cr
		}
		dst = appendDataLine(dst, data[off:end])
		if end == len(data) {
			return dst
		}
		off = end + 1
		if data[end] == '\r' && off < len(data) && data[off] == '\n' {
			off++ // CRLF is one line break
		}
	}
}

func appendDataLine(dst, line []byte) []byte {
	if len(line) == 0 {
		return append(dst, "data:\n"...)
	}
	dst = append(dst, "data: "...)
	dst = append(dst, line...)
	return append(dst, '\n')
}

// AppendRetry appends "retry: <ms>\n", which sets a browser's reconnection
// delay in milliseconds. A negative ms is written as 0. The line is a field
// of the event it is part of; to send it alone, follow it with "\n".
func AppendRetry(dst []byte, ms int64) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, max(ms, 0), 10)
	return append(dst, '\n')
}

// AppendComment appends the comment line ": <text>\n", or ":\n" when text is
// empty. Comments are ignored by parsers; they keep idle connections alive
// through proxies. CR, LF and NUL in text are replaced by spaces so the
// comment stays one line.
func AppendComment(dst []byte, text string) []byte {
	if text == "" {
		return append(dst, ":\n"...)
	}
	dst = append(dst, ": "...)
	if !hasLineBreakOrNULString(text) {
		dst = append(dst, text...)
	} else {
		for i := 0; i < len(text); i++ {
			c := text[i]
			if c == '\r' || c == '\n' || c == 0 {
				c = ' '
			}
			dst = append(dst, c)
		}
	}
	return append(dst, '\n')
}

func hasLineBreakOrNUL(b []byte) bool {
	return bytes.IndexByte(b, '\n') >= 0 || bytes.IndexByte(b, '\r') >= 0 || bytes.IndexByte(b, 0) >= 0
}

func hasLineBreakOrNULString(s string) bool {
	return strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, '\r') >= 0 || strings.IndexByte(s, 0) >= 0
}

// appendWithout appends s to dst, dropping CR, LF and NUL.
func appendWithout[S ~string | ~[]byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\r' && c != '\n' && c != 0 {
			dst = append(dst, c)
		}
	}
	return dst
}
