package loadtest

import "errors"

// errChunked is returned for a body that breaks HTTP/1.1 chunked framing.
var errChunked = errors.New("loadtest: malformed chunked encoding")

// maxChunkLine bounds a chunk-size line (with extensions) and each trailer
// line, as net/http does.
const maxChunkLine = 4096

// chunkState is where a chunkDecoder is in the framing.
type chunkState uint8

const (
	chunkSize    chunkState = iota // hex digits of the chunk size
	chunkSizeEnd                   // after the digits: whitespace, CR, then LF or ';'
	chunkExt                       // a chunk extension, up to LF
	chunkData                      // chunk payload, left bytes to go
	chunkDataCR                    // after the payload: CR must follow
	chunkDataLF                    // then LF
	chunkTrailer                   // after the last chunk: trailer lines up to an empty one
	chunkDone                      // the body ended
)

// chunkDecoder removes HTTP/1.1 chunked framing (RFC 9112 §7.1) from a
// body that arrives in pieces of any size, in place and without
// allocating. It accepts what net/http's reader accepts (and whitespace
// before an extension): a hex size, then optional whitespace and CRs, an
// optional extension (ignored) and LF; CRLF after every payload; trailers
// skipped. The zero value is at the start of a body.
type chunkDecoder struct {
	state   chunkState
	digits  bool  // the size has a digit
	left    int64 // payload bytes left in the current chunk (the size while it is parsed)
	lineLen int   // bytes of the current size or trailer line
}

// decode removes the framing from b, the next bytes of the body, and
// returns the payload bytes they hold, compacted to the front of b (so it
// aliases b), and whether the last chunk and its trailer have ended. Bytes
// after the end are ignored. After an error the body cannot be resumed.
func (c *chunkDecoder) decode(b []byte) (payload []byte, done bool, err error) {
	out := b[:0]
	for i := 0; i < len(b); {
		if c.state == chunkData {
			n := int(min(c.left, int64(len(b)-i)))
			out = append(out, b[i:i+n]...) // copy: out never passes i
			i += n
			if c.left -= int64(n); c.left == 0 {
				c.state = chunkDataCR
			}
			continue
		}
		ch := b[i]
		i++
		switch c.state {
		case chunkSize:
			if d, ok := unhex(ch); ok {
				if c.left >= 1<<59 {
					return out, false, errChunked // the next digit would overflow
				}
				c.left, c.digits = c.left<<4|int64(d), true
				continue
			}
			if !c.digits {
				return out, false, errChunked
			}
			c.state = chunkSizeEnd
			i-- // look at ch again as the rest of the line
		case chunkSizeEnd:
			switch ch {
			case '\n':
				c.endSizeLine()
			case ';':
				c.state = chunkExt
			case ' ', '\t', '\r':
				if c.lineLen++; c.lineLen > maxChunkLine {
					return out, false, errChunked
				}
			default:
				return out, false, errChunked // a size that is not hex
			}
		case chunkExt:
			if ch == '\n' {
				c.endSizeLine()
			} else if c.lineLen++; c.lineLen > maxChunkLine {
				return out, false, errChunked
			}
		case chunkDataCR:
			if ch != '\r' {
				return out, false, errChunked
			}
			c.state = chunkDataLF
		case chunkDataLF:
			if ch != '\n' {
				return out, false, errChunked
			}
			c.state, c.digits, c.left, c.lineLen = chunkSize, false, 0, 0
		case chunkTrailer:
			switch {
			case ch == '\n':
				if c.lineLen == 0 {
					c.state = chunkDone
					return out, true, nil
				}
				c.lineLen = 0
			case ch == '\r':
			case c.lineLen >= maxChunkLine:
				return out, false, errChunked
			default:
				c.lineLen++
			}
		case chunkDone:
			return out, true, nil
		}
	}
	return out, c.state == chunkDone, nil
}

// endSizeLine starts the payload of the chunk whose size line ended, or
// the trailer after the last chunk.
func (c *chunkDecoder) endSizeLine() {
	c.lineLen = 0
	if c.left == 0 {
		c.state = chunkTrailer
		return
	}
	c.state = chunkData
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
