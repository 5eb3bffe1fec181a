package loadtest

// Verdict is what SeqChecker.Observe concludes about one sequence number.
type Verdict uint8

// Verdicts.
const (
	InOrder   Verdict = iota // the next expected number
	Gap                      // beyond the next expected: the numbers between are missing (so far)
	Reordered                // a number that was missing arrived late
	Duplicate                // a number that arrived before
)

func (v Verdict) String() string {
	switch v {
	case InOrder:
		return "in_order"
	case Gap:
		return "gap"
	case Reordered:
		return "reordered"
	case Duplicate:
		return "duplicate"
	}
	return "unknown"
}

// maxSpans bounds the missing ranges a SeqChecker remembers. Beyond it the
// oldest range is forgotten: its numbers stay counted as missing, and if
// they arrive later they are counted as duplicates, not reorders.
const maxSpans = 256

// span is the missing range [lo, hi].
type span struct{ lo, hi int64 }

// SeqChecker validates the sequence numbers one stream receives for one
// topic, which the publisher numbers 1, 2, 3, ... It keeps the ranges still
// missing, so a late arrival is told apart from a duplicate. The zero value
// expects 1 first; use NewSeqChecker to join a sequence in the middle.
//
// A SeqChecker is not safe for concurrent use.
type SeqChecker struct {
	next    int64 // the next expected number - 1 (so the zero value expects 1)
	missing []span
	forgot  int64 // numbers of missing ranges dropped beyond maxSpans

	// Unique counts distinct numbers received, Duplicates repeated ones,
	// Reordered the ones that arrived after a higher number, Gaps the jumps
	// forward (each leaves one missing range).
	Unique, Duplicates, Reordered, Gaps int64
}

// NewSeqChecker returns a checker that expects first as the next number.
func NewSeqChecker(first int64) SeqChecker {
	return SeqChecker{next: first - 1}
}

// Next returns the number the checker expects next.
func (c *SeqChecker) Next() int64 { return c.next + 1 }

// Observe checks seq, updates the counters and returns its verdict.
func (c *SeqChecker) Observe(seq int64) Verdict {
	switch {
	case seq == c.next+1:
		c.next = seq
		c.Unique++
		return InOrder
	case seq > c.next+1:
		c.missing = append(c.missing, span{c.next + 1, seq - 1})
		c.trim()
		c.next = seq
		c.Unique++
		c.Gaps++
		return Gap
	}
	// seq is below the highest seen: a late arrival if it is missing.
	for i := range c.missing {
		m := &c.missing[i]
		if seq < m.lo || seq > m.hi {
			continue
		}
		switch {
		case m.lo == m.hi:
			c.missing = append(c.missing[:i], c.missing[i+1:]...)
		case seq == m.lo:
			m.lo++
		case seq == m.hi:
			m.hi--
		default: // split
			rest := span{seq + 1, m.hi}
			m.hi = seq - 1
			c.missing = append(c.missing, span{})
			copy(c.missing[i+2:], c.missing[i+1:])
			c.missing[i+1] = rest
			c.trim()
		}
		c.Unique++
		c.Reordered++
		return Reordered
	}
	c.Duplicates++
	return Duplicate
}

// trim forgets the oldest missing range when there are too many.
func (c *SeqChecker) trim() {
	if len(c.missing) > maxSpans {
		m := c.missing[0]
		c.forgot += m.hi - m.lo + 1
		c.missing = append(c.missing[:0], c.missing[1:]...)
	}
}

// Missing returns how many numbers below the highest seen never arrived.
// Numbers after the highest seen (lost at the tail) are not counted: only
// the publisher knows them.
func (c *SeqChecker) Missing() int64 {
	n := c.forgot
	for _, m := range c.missing {
		n += m.hi - m.lo + 1
	}
	return n
}
