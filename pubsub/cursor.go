package pubsub

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strconv"
	"strings"
)

// Pos is a position inside one partition: a Redis stream ID "<ms>-<seq>".
// The zero Pos is before every event.
type Pos struct {
	Ms, Seq uint64
}

// Less reports whether p comes before q.
func (p Pos) Less(q Pos) bool {
	return p.Ms < q.Ms || (p.Ms == q.Ms && p.Seq < q.Seq)
}

// IsZero reports whether p is the position before every event.
func (p Pos) IsZero() bool { return p.Ms == 0 && p.Seq == 0 }

// Next returns the smallest position after p.
func (p Pos) Next() Pos {
	if p.Seq == ^uint64(0) {
		return Pos{Ms: p.Ms + 1}
	}
	return Pos{Ms: p.Ms, Seq: p.Seq + 1}
}

// AppendText appends "<ms>-<seq>" to dst.
func (p Pos) AppendText(dst []byte) []byte {
	dst = strconv.AppendUint(dst, p.Ms, 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, p.Seq, 10)
}

func (p Pos) String() string { return string(p.AppendText(nil)) }

// ErrMalformed reports a position, ID or cursor that does not parse.
var ErrMalformed = errors.New("pubsub: malformed cursor")

// ParsePos parses "<ms>-<seq>" strictly: canonical decimals (1 to 20 ASCII
// digits, no leading zero) on each side, each fitting in uint64. It refuses everything else Redis would accept ("$",
// "5", " 5-0", "+"), because those make XREAD or XRANGE skip history.
func ParsePos(s string) (Pos, error) {
	i := strings.IndexByte(s, '-')
	if i < 0 {
		return Pos{}, ErrMalformed
	}
	ms, ok1 := parseUint(s[:i])
	seq, ok2 := parseUint(s[i+1:])
	if !ok1 || !ok2 {
		return Pos{}, ErrMalformed
	}
	return Pos{Ms: ms, Seq: seq}, nil
}

// parseUint parses a canonical decimal: no sign, no leading zero.
func parseUint(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// ID names one position of one partition in one epoch. Its text form,
// "<partition>.<epoch>.<ms>-<seq>", is also a one-entry Cursor.
type ID struct {
	Partition int
	Epoch     string
	Pos       Pos
}

// AppendText appends the text form of id to dst.
func (id ID) AppendText(dst []byte) []byte {
	dst = strconv.AppendInt(dst, int64(id.Partition), 10)
	dst = append(dst, '.')
	dst = append(dst, id.Epoch...)
	dst = append(dst, '.')
	return id.Pos.AppendText(dst)
}

func (id ID) String() string { return string(id.AppendText(nil)) }

// Cursor is a resume point: at most one ID per partition, sorted by
// partition. Its text form joins the IDs with '_'.
type Cursor []ID

// MaxCursorLen bounds the text form accepted by ParseCursor.
const MaxCursorLen = 8192

// MaxPartitions is the most partitions a broker accepts. It keeps a Cursor
// naming every partition below MaxCursorLen: one ID takes at most 64 bytes
// of text (3-digit partition, 16-byte epoch, two 20-digit numbers, three
// separators and the '_').
const MaxPartitions = MaxCursorLen / 64

// AppendText appends the text form of c to dst.
func (c Cursor) AppendText(dst []byte) []byte {
	for i, id := range c {
		if i > 0 {
			dst = append(dst, '_')
		}
		dst = id.AppendText(dst)
	}
	return dst
}

func (c Cursor) String() string { return string(c.AppendText(nil)) }

// Find returns the ID of partition p, if c has one.
func (c Cursor) Find(p int) (ID, bool) {
	for _, id := range c {
		if id.Partition == p {
			return id, true
		}
	}
	return ID{}, false
}

// ParseCursor parses the text form of a Cursor whose partitions are below
// partitions. It returns ErrMalformed for anything else: empty entries,
// unknown partitions, repeated or unsorted partitions, bad epochs or
// positions, or text longer than MaxCursorLen. It never panics.
func ParseCursor(s string, partitions int) (Cursor, error) {
	if s == "" || len(s) > MaxCursorLen {
		return nil, ErrMalformed
	}
	n := strings.Count(s, "_") + 1
	if n > partitions {
		return nil, ErrMalformed
	}
	c := make(Cursor, 0, n)
	for part := range strings.SplitSeq(s, "_") {
		id, err := parseID(part, partitions)
		if err != nil {
			return nil, err
		}
		if len(c) > 0 && c[len(c)-1].Partition >= id.Partition {
			return nil, ErrMalformed
		}
		c = append(c, id)
	}
	return c, nil
}

func parseID(s string, partitions int) (ID, error) {
	p, rest, ok := strings.Cut(s, ".")
	if !ok {
		return ID{}, ErrMalformed
	}
	epoch, pos, ok := strings.Cut(rest, ".")
	if !ok || !ValidEpoch(epoch) {
		return ID{}, ErrMalformed
	}
	pn, ok := parseUint(p)
	if !ok || pn >= uint64(partitions) {
		return ID{}, ErrMalformed
	}
	ps, err := ParsePos(pos)
	if err != nil {
		return ID{}, err
	}
	return ID{Partition: int(pn), Epoch: epoch, Pos: ps}, nil
}

// ValidEpoch reports whether s has the form of an epoch: 1 to 16 characters
// of [0-9a-z].
func ValidEpoch(s string) bool {
	if len(s) == 0 || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// NewEpoch returns a fresh random epoch.
func NewEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return strconv.FormatUint(binary.LittleEndian.Uint64(b[:]), 36)
}

// PartitionOf returns the partition of topic among n partitions: the
// CRC-32 (IEEE) of the topic's bytes modulo n. Publishers in other languages
// compute the same with zlib.crc32 (Python), java.util.zip.CRC32, crc32 (PHP).
func PartitionOf(topic string, n int) int {
	return int(crc32.ChecksumIEEE([]byte(topic)) % uint32(n))
}
