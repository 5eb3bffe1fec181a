package sse

// Decoder is Parser turned inside out, for callers that read the stream
// themselves, such as an event loop over many non-blocking sockets: Feed
// hands it the next bytes of the stream, in pieces of any size, and it calls
// a function for every block those bytes complete. It applies exactly the
// rules Parser does (one leading BOM stripped, CR, LF and CRLF line ends
// also when split between pieces, invalid UTF-8 replaced, sticky last event
// ID, MaxLine) and reports the same blocks. The stream's end is the
// caller's to see: a block still open then is simply never reported, as the
// spec requires.
//
// In steady state it allocates nothing: complete lines are read where they
// lie in the caller's bytes; only a line split between two pieces, and the
// block's data, type and id, are copied into buffers it reuses.
//
// The zero Decoder is ready to use, with an empty last event ID. A Decoder
// is not safe for concurrent use.
type Decoder struct {
	// MaxLine bounds lines and the data of one event as Parser.MaxLine
	// does; longer input makes Feed return ErrLineTooLong. Zero means
	// DefaultMaxLine (1 MiB).
	MaxLine int

	bomLen  int8 // leading BOM bytes matched so far
	pastBOM bool // the BOM check is over
	skipLF  bool // the last line ended with CR: a leading LF belongs to it
	lb      lineBreaks
	err     error

	line []byte // the start of a line whose end has not been fed yet
	st   interp
}

// Reset makes d ready for a new stream whose last event ID buffer starts as
// lastEventID (what a browser sends as Last-Event-ID when it reconnects). It
// forgets the error, the block and any line left unfinished, and keeps
// MaxLine and its buffers.
func (d *Decoder) Reset(lastEventID string) {
	d.bomLen, d.pastBOM, d.skipLF, d.lb, d.err = 0, false, false, lineBreaks{}, nil
	d.line = d.line[:0]
	d.st.restart(lastEventID)
}

// LastEventID returns the last event ID: the id of the last block that
// ended (sticky), or what Reset set. It allocates; call it when needed, not
// per block (Block.ID holds the same bytes).
func (d *Decoder) LastEventID() string { return string(d.st.lastID) }

// Feed parses p, the next bytes of the stream, and calls fn for each block
// they complete, in order. The Block passed to fn aliases d's buffers and is
// valid only until fn returns; Feed does not keep p. Once Feed has returned
// an error (only ErrLineTooLong) it returns it again without reading.
func (d *Decoder) Feed(p []byte, fn func(Block)) error {
	if d.err != nil {
		return d.err
	}
	if !d.pastBOM {
		if p = d.skipBOM(p); !d.pastBOM {
			return nil // p was all a prefix of a BOM
		}
	}
	maxLine := DefaultMaxLine
	if d.MaxLine > 0 {
		maxLine = d.MaxLine
	}
	d.lb = lineBreaks{} // its state is relative to p, which is new
	for len(p) > 0 {
		if d.skipLF {
			d.skipLF = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := d.lb.index(p)
		if i < 0 {
			if len(d.line)+len(p) > maxLine {
				return d.fail(ErrLineTooLong)
			}
			d.line = append(d.line, p...)
			return nil
		}
		if len(d.line)+i > maxLine {
			return d.fail(ErrLineTooLong)
		}
		d.skipLF = p[i] == '\r'
		line := p[:i:i]
		if len(d.line) > 0 {
			d.line = append(d.line, line...)
			line = d.line
		}
		p = p[i+1:]
		switch {
		case len(line) > 0:
			if err := d.st.field(line, maxLine); err != nil {
				return d.fail(err)
			}
		case d.st.inBlock:
			fn(d.st.end())
			d.st.release()
		}
		if d.line = d.line[:0]; cap(d.line) > keepBuf {
			d.line = nil
		}
	}
	return nil
}

// skipBOM consumes the bytes of p that continue a leading BOM and returns
// the rest. On the first byte that does not, the BOM bytes matched so far
// turn out to be the start of the first line.
func (d *Decoder) skipBOM(p []byte) []byte {
	for len(p) > 0 {
		if p[0] != bom[d.bomLen] {
			d.line = append(d.line, bom[:d.bomLen]...)
			d.pastBOM = true
			return p
		}
		p = p[1:]
		if d.bomLen++; int(d.bomLen) == len(bom) {
			d.pastBOM = true
			return p
		}
	}
	return p
}

func (d *Decoder) fail(err error) error {
	d.err = err
	d.st.release()
	d.line = nil
	return err
}
