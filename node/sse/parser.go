package sse

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine is the value of Parser.MaxLine when it is left at zero.
const DefaultMaxLine = 1 << 20

// keepBuf is the capacity above which a buffer is released after use, so a
// single huge event does not pin its memory for the life of the stream.
const keepBuf = 64 << 10

// ErrLineTooLong is returned by Parser.Next when a line, or the data of one
// event, is longer than Parser.MaxLine. The stream cannot be resumed.
var ErrLineTooLong = errors.New("sse: line or event too long")

// Event is what a browser's EventSource does with one block of an event
// stream: one or more non-blank lines ended by a blank line.
type Event struct {
	// ID is the last event ID after this block: the value a browser would
	// send as Last-Event-ID on reconnection. It is sticky: blocks without an
	// id field keep the previous one; an empty "id:" field clears it.
	ID string
	// HasID reports that the block held an id field that took effect. An id
	// whose value contains NUL is ignored by the spec and does not set HasID.
	HasID bool
	// Type is the event type, "message" when the block set none. Empty when
	// Dispatch is false.
	Type string
	// Data is the block's data lines joined with LF. Empty when Dispatch is
	// false.
	Data string
	// Retry is the reconnection delay in milliseconds from the block's last
	// valid retry field (all ASCII digits; values beyond MaxInt64 saturate),
	// or -1 if the block had none.
	Retry int64
	// Dispatch reports that an event fired: the block had at least one data
	// field. Blocks with only id, retry, event, comment or unknown fields are
	// returned with Dispatch false.
	Dispatch bool
	// Comments counts the block's comment lines (lines starting with ':'),
	// the usual heartbeat.
	Comments int
}

// Parser reads an event stream as defined by the WHATWG HTML Living
// Standard §9.2.5 (parsing) and §9.2.6 (interpreting), and reports each
// block with what a browser would do with it. It pulls its input from an
// io.Reader; Decoder is the same parser for input pushed to it.
//
// A Parser is not safe for concurrent use.
type Parser struct {
	// MaxLine bounds, in bytes, every line (raw and after invalid UTF-8 is
	// replaced by U+FFFD) and the data of one event (its data values joined
	// with LF). Longer input makes Next return ErrLineTooLong. Zero means
	// DefaultMaxLine (1 MiB). Set it before the first call to Next.
	MaxLine int

	// LastEventID is the last event ID string, updated when a block ends.
	// A new Parser starts with it empty; browsers carry it across a
	// reconnection, so set it before the first call to Next to parse a
	// resumed stream the same way.
	LastEventID string

	r       *bufio.Reader
	readErr error // an error bufio returned while the BOM was peeked

	started bool // the BOM check has run
	skipLF  bool // the last line ended with CR: a leading LF belongs to it
	lb      lineBreaks
	err     error

	line []byte // a line that spans more than one buffer fill
	st   interp
}

// NewParser returns a Parser reading from r. It buffers r with a
// bufio.Reader of the default size unless r already is one.
func NewParser(r io.Reader) *Parser {
	return &Parser{r: bufio.NewReader(r)}
}

// Next reads up to the end of the next block and returns it. Blank lines that
// do not end a block are skipped.
//
// At the end of the stream an unterminated block is discarded, as the spec
// requires, and Next returns io.EOF. A read error is returned wrapped. After
// any error Next keeps returning it.
func (p *Parser) Next() (Event, error) {
	if p.err != nil {
		return Event{}, p.err
	}
	if !p.started {
		p.started = true
		p.st.restart(p.LastEventID)
		p.skipBOM()
	}
	maxLine := p.maxLine()
	for {
		line, err := p.readLine(maxLine)
		if err == nil && len(line) > 0 {
			err = p.st.field(line, maxLine)
		}
		if err != nil {
			p.err = err
			p.release()
			return Event{}, err
		}
		if len(line) == 0 && p.st.inBlock {
			ev := p.event(p.st.end())
			p.release()
			return ev, nil
		}
	}
}

// event turns an ended block into an Event, copying what it aliases.
func (p *Parser) event(b Block) Event {
	if string(b.ID) != p.LastEventID {
		p.LastEventID = string(b.ID)
	}
	ev := Event{
		ID: p.LastEventID, HasID: b.HasID, Type: b.Type, Retry: b.Retry,
		Dispatch: b.Dispatch, Comments: b.Comments,
	}
	if b.Dispatch {
		ev.Data = string(b.Data)
	}
	return ev
}

// release drops buffers that one large event grew.
func (p *Parser) release() {
	p.st.release()
	if cap(p.line) > keepBuf {
		p.line = nil
	}
}

func (p *Parser) maxLine() int {
	if p.MaxLine > 0 {
		return p.MaxLine
	}
	return DefaultMaxLine
}

var bom = [3]byte{0xEF, 0xBB, 0xBF}

// skipBOM discards one UTF-8 byte order mark at the start of the stream.
// It peeks one byte more only while the bytes so far match, so it never
// waits for input a complete line would not need anyway.
func (p *Parser) skipBOM() {
	for i := range bom {
		b, err := p.r.Peek(i + 1)
		if err != nil {
			p.readErr = err // bufio reports an error once; keep it for fill
			return
		}
		if b[i] != bom[i] {
			return
		}
	}
	_, _ = p.r.Discard(len(bom))
}

// fill returns the buffered bytes, reading if there are none.
func (p *Parser) fill() ([]byte, error) {
	n := p.r.Buffered()
	if n == 0 {
		if err := p.readErr; err != nil {
			return nil, err
		}
		if _, err := p.r.Peek(1); err != nil {
			return nil, err
		}
		n = p.r.Buffered()
	}
	b, _ := p.r.Peek(n)
	return b, nil
}

// readLine returns the next line without its terminator. CR, LF and CRLF
// each end a line, also when the LF of a CRLF arrives in a later read. The
// returned slice may alias the bufio buffer and is valid until the next read.
func (p *Parser) readLine(maxLine int) ([]byte, error) {
	p.line = p.line[:0]
	for {
		buf, err := p.fill()
		if err != nil {
			if err == io.EOF {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("sse: read: %w", err)
		}
		if p.skipLF {
			// Decided lazily: waiting for the byte after a CR would delay a
			// block that ends with CR CR until more input arrives.
			p.skipLF = false
			if buf[0] == '\n' {
				_, _ = p.r.Discard(1)
				if buf = buf[1:]; len(buf) == 0 {
					continue
				}
			}
		}
		i := p.lb.index(buf)
		if i < 0 {
			if len(p.line)+len(buf) > maxLine {
				return nil, ErrLineTooLong
			}
			p.line = append(p.line, buf...)
			_, _ = p.r.Discard(len(buf))
			continue
		}
		if len(p.line)+i > maxLine {
			return nil, ErrLineTooLong
		}
		p.skipLF = buf[i] == '\r'
		line := buf[:i:i]
		if len(p.line) > 0 {
			p.line = append(p.line, line...)
			line = p.line
		}
		_, _ = p.r.Discard(i + 1)
		return line, nil
	}
}
