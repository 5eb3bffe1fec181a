package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// readers are the ways tests feed a stream to the parser: whole, one byte per
// Read (every possible split, including BOM and CRLF), and uneven halves.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data+EOF", iotest.DataErrReader},
}

// parseAll returns the events before the first error, and that error.
func parseAll(tb testing.TB, r io.Reader, maxLine int) ([]Event, error) {
	tb.Helper()
	p := NewParser(r)
	p.MaxLine = maxLine
	var evs []Event
	for {
		ev, err := p.Next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
}

// msg is a dispatched default-type event; the methods adjust it.
func msg(data string) Event { return Event{Dispatch: true, Type: "message", Data: data, Retry: -1} }

// block is a block that fired nothing.
func block() Event { return Event{Retry: -1} }

func (e Event) typ(t string) Event     { e.Type = t; return e }
func (e Event) id(id string) Event     { e.ID, e.HasID = id, true; return e }
func (e Event) sticky(id string) Event { e.ID = id; return e }
func (e Event) retry(ms int64) Event   { e.Retry = ms; return e }
func (e Event) comments(n int) Event   { e.Comments = n; return e }

// specTests are the spec cases every parser front end must pass (Parser
// here, Decoder in decoder_test.go).
var specTests = []struct {
	name string
	in   string
	want []Event
}{
	{"simple", "data: hello\n\n", []Event{msg("hello")}},
	{"two events", "data: a\n\ndata: b\n\n", []Event{msg("a"), msg("b")}},
	{"data lines joined", "data: a\ndata: b\n\n", []Event{msg("a\nb")}},
	{"CRLF", "data: a\r\ndata: b\r\n\r\n", []Event{msg("a\nb")}},
	{"CR", "data: a\rdata: b\r\r", []Event{msg("a\nb")}},
	{"mixed line ends", "data: a\r\ndata: b\rdata: c\n\n", []Event{msg("a\nb\nc")}},
	{"CR then CRLF blank", "data: x\r\r\n", []Event{msg("x")}},
	{"LF CR is two line ends", "data: x\n\rdata: y\n\n", []Event{msg("x"), msg("y")}},
	{"no space after colon", "data:x\n\n", []Event{msg("x")}},
	{"only one space removed", "data:  x\n\n", []Event{msg(" x")}},
	{"tab kept", "data:\tx\n\n", []Event{msg("\tx")}},
	{"colon in value", "data: a:b: c\n\n", []Event{msg("a:b: c")}},
	{"no colon is empty value", "data\n\n", []Event{msg("")}},
	{"two empty data lines", "data\ndata\n\n", []Event{msg("\n")}},
	{"empty data value fires", "data:\n\n", []Event{msg("")}},
	{"trailing empty data line", "data: a\ndata:\n\n", []Event{msg("a\n")}},
	{"space before colon is another field", "data : x\n\n", []Event{block()}},
	{"names are case-sensitive", "Data: x\n\n", []Event{block()}},
	{"unknown field ignored", "foo: bar\ndata: x\n\n", []Event{msg("x")}},
	{"comment", ": hb\n\n", []Event{block().comments(1)}},
	{"comments counted with data", ":\n: x\ndata: y\n:\n\n", []Event{msg("y").comments(3)}},
	{"comment looking like field", ":data: x\n\n", []Event{block().comments(1)}},
	{"event type", "event: add\ndata: 1\n\n", []Event{msg("1").typ("add")}},
	{"event after data", "data: 1\nevent: add\n\n", []Event{msg("1").typ("add")}},
	{"last event field wins", "event: a\nevent: b\ndata: 1\n\n", []Event{msg("1").typ("b")}},
	{"empty event is message", "event\ndata: 1\n\n", []Event{msg("1")}},
	{"type reset without data", "event: add\n\ndata: x\n\n", []Event{block(), msg("x")}},
	{"type reset after dispatch", "event: a\ndata: 1\n\ndata: 2\n\n", []Event{msg("1").typ("a"), msg("2")}},
	{
		"id sticky then cleared", "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
		[]Event{msg("a").id("1"), msg("b").sticky("1"), msg("c").id("")},
	},
	{"id only block", "id: 7\n\n", []Event{block().id("7")}},
	{"id keeps spaces", "id:  7 \n\n", []Event{block().id(" 7 ")}},
	{"id with NUL ignored", "id: 1\n\nid: 2\x003\ndata: x\n\n", []Event{block().id("1"), msg("x").sticky("1")}},
	{"last id field wins", "id: 1\nid: 2\ndata: x\n\n", []Event{msg("x").id("2")}},
	{"retry", "retry: 3000\n\n", []Event{block().retry(3000)}},
	{"retry leading zero is decimal", "retry: 03000\n\n", []Event{block().retry(3000)}},
	{"retry exponent ignored", "retry: 1e3\n\n", []Event{block()}},
	{"retry negative ignored", "retry: -5\n\n", []Event{block()}},
	{"retry trailing space ignored", "retry: 10 \n\n", []Event{block()}},
	{"retry empty ignored", "retry\nretry:\n\n", []Event{block()}},
	{"retry overflow saturates", "retry: 99999999999999999999\n\n", []Event{block().retry(math.MaxInt64)}},
	{"retry last valid wins", "retry: 1\nretry: 2\nretry: x\ndata: d\n\n", []Event{msg("d").retry(2)}},
	{"retry per block", "retry: 1\n\ndata: d\n\n", []Event{block().retry(1), msg("d")}},
	{"BOM stripped", "\xEF\xBB\xBFdata: x\n\n", []Event{msg("x")}},
	{"only one BOM stripped", "\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n", []Event{block()}},
	{"BOM later is data", "data: x\n\n\xEF\xBB\xBFdata: y\n\n", []Event{msg("x"), block()}},
	{"BOM in value kept", "data: \xEF\xBB\xBFx\n\n", []Event{msg("\uFEFFx")}},
	{"partial BOM", "\xEF\xBBdata: x\n\n", []Event{block()}},
	{"UTF-16 BOM not honoured", "\xFE\xFFdata: x\n\n", []Event{block()}},
	{"invalid bytes one U+FFFD each", "data: \xff\xfe\n\n", []Event{msg("\uFFFD\uFFFD")}},
	{"truncated sequence one U+FFFD", "data: a\xe2\x82b\n\n", []Event{msg("a\uFFFDb")}},
	{"truncated at line end", "data: \xe2\x82\n\n", []Event{msg("\uFFFD")}},
	{"surrogate three U+FFFD", "data: \xed\xa0\x80\n\n", []Event{msg("\uFFFD\uFFFD\uFFFD")}},
	{
		// Unicode Standard Table 3-8 (maximal subparts).
		"unicode table 3-8", "data: \x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64\n\n",
		[]Event{msg("a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd")},
	},
	{"invalid field name", "dat\xffa: x\n\n", []Event{block()}},
	{"NUL in data kept", "data: a\x00b\n\n", []Event{msg("a\x00b")}},
	{"unicode", "data: héllo ✓ 🎉\n\n", []Event{msg("héllo ✓ 🎉")}},
	{"blank lines only", "\n\n\r\n\r\r", nil},
	{"leading blank lines", "\n\r\ndata: x\n\n", []Event{msg("x")}},
	{"empty input", "", nil},
	{"unterminated block discarded", "data: a\n\ndata: b\n", []Event{msg("a")}},
	{"unterminated line discarded", "data: a\n\ndata: b", []Event{msg("a")}},
	{"unterminated id not applied", "id: 1\n\nid: 2\n", []Event{block().id("1")}},
}

func TestParserSpec(t *testing.T) {
	for _, tt := range specTests {
		t.Run(tt.name, func(t *testing.T) {
			if ref := refParse([]byte(tt.in), ""); !reflect.DeepEqual(ref, tt.want) {
				t.Fatalf("reference parser disagrees with the table:\n got %v\nwant %v", fmtEvents(ref), fmtEvents(tt.want))
			}
			for _, rd := range readers {
				got, err := parseAll(t, rd.wrap(strings.NewReader(tt.in)), 0)
				if err != io.EOF {
					t.Fatalf("%s: error %v, want io.EOF", rd.name, err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("%s:\n got %v\nwant %v", rd.name, fmtEvents(got), fmtEvents(tt.want))
				}
			}
		})
	}
}

func TestParserSplitEverywhere(t *testing.T) {
	// Two reads split at every position: exercises CR|LF and BOM splits
	// with longer reads on either side than OneByteReader gives.
	in := "\xEF\xBB\xBFid: 1\r\nevent: e\r\ndata: a\r\rdata: \xe2\x82\xac\r\n\r\n: hb\n\n"
	want := []Event{msg("a").typ("e").id("1"), msg("€").sticky("1"), block().sticky("1").comments(1)}
	for i := 0; i <= len(in); i++ {
		r := io.MultiReader(strings.NewReader(in[:i]), strings.NewReader(in[i:]))
		got, err := parseAll(t, r, 0)
		if err != io.EOF || !reflect.DeepEqual(got, want) {
			t.Fatalf("split at %d: got %+v, %v\nwant %+v", i, got, err, want)
		}
	}
}

// maxLineTests are the MaxLine cases for every parser front end.
var maxLineTests = []struct {
	name    string
	maxLine int
	in      string
	want    []Event
	wantErr error
}{
	{"line at limit", 10, "data: 1234\n\n", []Event{msg("1234")}, io.EOF},
	{"line over limit", 10, "data: 12345\n\n", nil, ErrLineTooLong},
	{"comment over limit", 4, ": abc\n\n", nil, ErrLineTooLong},
	{"unterminated line over limit", 4, "data: x", nil, ErrLineTooLong},
	{"data at limit", 10, "data: 1234\ndata: 1234\n\n", []Event{msg("1234\n1234")}, io.EOF},
	{"data over limit", 10, "data: 1234\ndata: 1234\ndata: 1234\n\n", nil, ErrLineTooLong},
	{"error after good events", 10, "data: 1\n\ndata: 12345\n\n", []Event{msg("1")}, ErrLineTooLong},
	{"replacement growth counted", 10, "data: \xff\xff\n\n", nil, ErrLineTooLong},
	{"default allows 1 MiB line", 0, "data:" + strings.Repeat("x", DefaultMaxLine-5) + "\n\n",
		[]Event{msg(strings.Repeat("x", DefaultMaxLine-5))}, io.EOF},
	{"default refuses 1 MiB + 1", 0, "data:" + strings.Repeat("x", DefaultMaxLine-4) + "\n\n", nil, ErrLineTooLong},
}

func TestParserMaxLine(t *testing.T) {
	for _, tt := range maxLineTests {
		t.Run(tt.name, func(t *testing.T) {
			for _, rd := range readers {
				if rd.name == "one byte" && len(tt.in) > 1<<16 {
					continue
				}
				got, err := parseAll(t, rd.wrap(strings.NewReader(tt.in)), tt.maxLine)
				if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("%s: got %v, %v; want %d events, %v", rd.name, fmtEvents(got), err, len(tt.want), tt.wantErr)
				}
			}
		})
	}
}

func TestParserErrorsAreSticky(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("data: x\n\ndata: y\n"), iotest.ErrReader(boom))
	p := NewParser(r)
	if ev, err := p.Next(); err != nil || ev.Data != "x" {
		t.Fatalf("first Next = %+v, %v", ev, err)
	}
	for range 2 {
		if _, err := p.Next(); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "sse: read: ") {
			t.Fatalf("Next = %v, want wrapped boom", err)
		}
	}

	p = NewParser(strings.NewReader("data: x\n\n"))
	for _, want := range []error{nil, io.EOF, io.EOF} {
		if _, err := p.Next(); err != want {
			t.Fatalf("Next error %v, want %v", err, want)
		}
	}
}

func TestParserKeepsErrorSeenWhilePeekingBOM(t *testing.T) {
	// TimeoutReader fails the second Read, which happens while looking for
	// the rest of a BOM, and then succeeds: the error must not be lost.
	r := iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader("\xEFdata: x\n\n")))
	p := NewParser(r)
	if _, err := p.Next(); !errors.Is(err, iotest.ErrTimeout) {
		t.Fatalf("Next error %v, want ErrTimeout", err)
	}
}

// stallReader returns its input, then errStalled: a Parser that reads past
// the input waited for bytes a browser would not need.
type stallReader struct{ r io.Reader }

var errStalled = errors.New("read past the end of the available input")

func (s stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		return n, errStalled
	}
	return n, err
}

func TestParserDoesNotWaitForMoreInput(t *testing.T) {
	// A block must be returned as soon as its blank line arrives, even when
	// it ends with CR (whose possible LF is not there yet) or the stream
	// starts with a byte of a BOM.
	for _, in := range []string{"data: x\r\r", "data: x\n\n", "\xEF\xBB\xBFdata: x\r\r", "data: x\r\n\r"} {
		for _, rd := range readers[:3] {
			p := NewParser(rd.wrap(stallReader{strings.NewReader(in)}))
			if ev, err := p.Next(); err != nil || ev.Data != "x" {
				t.Errorf("%q %s: Next = %+v, %v; want event x", in, rd.name, ev, err)
			}
		}
	}
}

func TestParserLastEventIDSeed(t *testing.T) {
	p := NewParser(strings.NewReader("data: a\n\nid: 9\ndata: b\n\nid: 10\n"))
	p.LastEventID = "5"
	want := []Event{msg("a").sticky("5"), msg("b").id("9")}
	for i, w := range want {
		ev, err := p.Next()
		if err != nil || !reflect.DeepEqual(ev, w) {
			t.Fatalf("event %d = %+v, %v; want %+v", i, ev, err, w)
		}
		if p.LastEventID != w.ID {
			t.Fatalf("LastEventID = %q, want %q", p.LastEventID, w.ID)
		}
	}
	if _, err := p.Next(); err != io.EOF || p.LastEventID != "9" {
		t.Fatalf("at EOF: %v, LastEventID %q; want io.EOF, 9 (the unterminated id is not applied)", err, p.LastEventID)
	}
}

func TestAppendValidUTF8(t *testing.T) {
	for _, in := range []string{
		"", "ascii", "héllo", "\uFFFD", "\xff", "\xc0\x80", "\xe0\x80\x80", "\xe0\xa0", "\xf0\x90\x80",
		"\xf4\x90\x80\x80", "\xf5", "\xed\xbf\xbf", "a\xf0\x9f\x8e", "\xf0\x9f\x8e\x89",
	} {
		if got, want := string(appendValidUTF8(nil, []byte(in))), refDecode([]byte(in)); got != want {
			t.Errorf("appendValidUTF8(%q) = %q, reference %q", in, got, want)
		}
	}
}

// cycleReader returns its bytes over and over, never EOF.
type cycleReader struct {
	b   []byte
	off int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	n := copy(p, c.b[c.off:])
	c.off = (c.off + n) % len(c.b)
	return n, nil
}

func BenchmarkParser(b *testing.B) {
	// 64 events with changing ids (2 allocations each: Data and ID) and 8
	// heartbeat blocks (none); one op is one Next.
	var stream []byte
	blocks := 0
	for i := range 64 {
		blocks++
		id := []byte("1700000000000-" + string(rune('0'+i%10)))
		stream = AppendEvent(stream, id, "update", []byte(`{"topic":"orders","id":12345,"status":"shipped","items":[1,2,3]}`))
		if i%8 == 0 {
			stream = AppendComment(stream, "hb")
			stream = append(stream, '\n')
			blocks++
		}
	}
	p := NewParser(&cycleReader{b: stream})
	b.SetBytes(int64(len(stream) / blocks))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParserMultiline(b *testing.B) {
	stream := AppendEvent(nil, nil, "", bytes.Repeat([]byte("a line of text\r\n"), 64))
	p := NewParser(&cycleReader{b: stream})
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// fmtEvents formats events for failure messages, quoting strings and
// shortening long ones.
func fmtEvents(evs []Event) string {
	short := func(s string) string {
		if len(s) > 100 {
			return fmt.Sprintf("%q...(%d bytes)", s[:100], len(s))
		}
		return fmt.Sprintf("%q", s)
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n\t{ID:%s HasID:%v Type:%s Data:%s Retry:%d Dispatch:%v Comments:%d}",
			short(e.ID), e.HasID, short(e.Type), short(e.Data), e.Retry, e.Dispatch, e.Comments)
	}
	return b.String()
}
