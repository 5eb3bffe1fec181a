package sse

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// splits are the ways tests cut a stream into the pieces fed to a Decoder:
// whole, one byte per Feed (every split at once, including BOM and CRLF)
// and uneven pieces.
var splits = []struct {
	name string
	cut  func(in []byte) [][]byte
}{
	{"whole", func(in []byte) [][]byte { return [][]byte{in} }},
	{"one byte", func(in []byte) [][]byte {
		out := make([][]byte, len(in))
		for i := range in {
			out[i] = in[i : i+1]
		}
		return out
	}},
	{"3,5,7", func(in []byte) [][]byte {
		var out [][]byte
		for n := 3; len(in) > 0; n = n%7 + 2 {
			k := min(n, len(in))
			out, in = append(out, in[:k]), in[k:]
		}
		return out
	}},
}

// decodeAll feeds pieces to a Decoder and returns the blocks as a Parser
// would return them (with an empty last event ID to start), and the first
// error, or io.EOF as Parser reports the end.
func decodeAll(tb testing.TB, pieces [][]byte, maxLine int) ([]Event, error) {
	tb.Helper()
	d := &Decoder{MaxLine: maxLine}
	var evs []Event
	emit := func(b Block) {
		ev := Event{ID: string(b.ID), HasID: b.HasID, Type: b.Type, Retry: b.Retry, Dispatch: b.Dispatch, Comments: b.Comments}
		if b.Dispatch {
			ev.Data = string(b.Data)
		}
		evs = append(evs, ev)
	}
	var scratch []byte
	for _, p := range pieces {
		// Feed gets a buffer that is overwritten once it returns, as a
		// reader's is: nothing may be kept from it.
		scratch = append(scratch[:0], p...)
		err := d.Feed(scratch, emit)
		for i := range scratch {
			scratch[i] = '#'
		}
		if err != nil {
			return evs, err
		}
	}
	return evs, io.EOF
}

func TestDecoderSpec(t *testing.T) {
	for _, tt := range specTests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sp := range splits {
				got, _ := decodeAll(t, sp.cut([]byte(tt.in)), 0)
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("%s:\n got %v\nwant %v", sp.name, fmtEvents(got), fmtEvents(tt.want))
				}
			}
		})
	}
}

func TestDecoderSplitEverywhere(t *testing.T) {
	in := "\xEF\xBB\xBFid: 1\r\nevent: e\r\ndata: a\r\rdata: \xe2\x82\xac\r\n\r\n: hb\n\n"
	want := []Event{msg("a").typ("e").id("1"), msg("€").sticky("1"), block().sticky("1").comments(1)}
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			got, err := decodeAll(t, [][]byte{[]byte(in[:i]), []byte(in[i:j]), []byte(in[j:])}, 0)
			if err != io.EOF || !reflect.DeepEqual(got, want) {
				t.Fatalf("split at %d, %d: got %+v, %v\nwant %+v", i, j, got, err, want)
			}
		}
	}
}

func TestDecoderMaxLine(t *testing.T) {
	for _, tt := range maxLineTests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sp := range splits {
				if sp.name == "one byte" && len(tt.in) > 1<<16 {
					continue
				}
				got, err := decodeAll(t, sp.cut([]byte(tt.in)), tt.maxLine)
				if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("%s: got %v, %v; want %d events, %v", sp.name, fmtEvents(got), err, len(tt.want), tt.wantErr)
				}
			}
		})
	}
}

func TestDecoderErrorIsSticky(t *testing.T) {
	d := &Decoder{MaxLine: 8}
	n := 0
	count := func(Block) { n++ }
	if err := d.Feed([]byte("data: 1\n\ndata: 123456\n\ndata: 2\n\n"), count); !errors.Is(err, ErrLineTooLong) || n != 1 {
		t.Fatalf("Feed = %v after %d blocks; want ErrLineTooLong after 1", err, n)
	}
	if err := d.Feed([]byte("data: 3\n\n"), count); !errors.Is(err, ErrLineTooLong) || n != 1 {
		t.Fatalf("second Feed = %v after %d blocks; want ErrLineTooLong, no block", err, n)
	}
}

func TestDecoderReset(t *testing.T) {
	d := &Decoder{}
	var ids []string
	record := func(b Block) { ids = append(ids, string(b.ID)) }
	// An unfinished line, block and BOM prefix, then a new stream resumed
	// from id 5: nothing of the first stream leaks into the second.
	_ = d.Feed([]byte("id: 3\ndata: a\n\nid: 4\ndata: b\ndat"), record)
	if got := d.LastEventID(); got != "3" {
		t.Fatalf("LastEventID = %q, want 3 (the open block's id is not applied)", got)
	}
	d.Reset("5")
	if got := d.LastEventID(); got != "5" {
		t.Fatalf("after Reset LastEventID = %q, want 5", got)
	}
	_ = d.Feed([]byte("\xEF\xBB"), record)
	_ = d.Feed([]byte("\xBFa: x\ndata: c\n\n"), record)
	if want := []string{"3", "5"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("ids %q, want %q", ids, want)
	}
}

func TestDecoderDoesNotAllocate(t *testing.T) {
	// Steady state of a typical stream: every event has a new id, lines
	// are sometimes split between two reads, heartbeats come between.
	var stream []byte
	for i := range 16 {
		stream = append(stream, "id: 7.1b2rnjs2juyzc.17952468999"...)
		stream = append(stream, byte('0'+i%10), byte('a'+i))
		stream = append(stream, "\ndata: {\"topic\":\"load-0\",\"seq\":17,\"sent_ns\":1767225600000000000}\n\n:\n\n"...)
	}
	d := &Decoder{}
	n := 0
	count := func(b Block) {
		if b.Dispatch {
			n++
		}
	}
	feed := func() {
		for i := 0; i < len(stream); i += 97 { // lines split between pieces
			_ = d.Feed(stream[i:min(i+97, len(stream))], count)
		}
	}
	feed() // grow the buffers
	if allocs := testing.AllocsPerRun(20, feed); allocs != 0 {
		t.Fatalf("Feed allocates %v times per stream of 16 events", allocs)
	}
	if n != 16*22 {
		t.Fatalf("%d events, want %d", n, 16*22)
	}
}

// FuzzDecode checks that the Decoder, fed in random pieces, reports what
// the Parser reports, errors included.
func FuzzDecode(f *testing.F) {
	for _, tt := range specTests {
		f.Add([]byte(tt.in), uint64(len(tt.in)), 0)
	}
	f.Add([]byte("data: 123456789\n\n"), uint64(1), 8)
	f.Fuzz(func(t *testing.T, in []byte, seed uint64, maxLine int) {
		if maxLine < 0 || maxLine > 1<<16 {
			maxLine = 0
		}
		rng := rand.New(rand.NewPCG(seed, seed>>32))
		var pieces [][]byte
		for rest := in; len(rest) > 0; {
			k := min(1+rng.IntN(16), len(rest))
			pieces, rest = append(pieces, rest[:k]), rest[k:]
		}
		want, wantErr := parseAll(t, strings.NewReader(string(in)), maxLine)
		got, err := decodeAll(t, pieces, maxLine)
		if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("input %q\ndecoder: %v\nparser:  %v", in, fmtEvents(got), fmtEvents(want))
		}
		// A stream that ends inside a possible BOM is the one place the two
		// must differ: Parser sees the end and counts those bytes as a line
		// (which may exceed a tiny MaxLine); Decoder never sees the end.
		partialBOM := len(in) < len(bom) && bytes.HasPrefix(bom[:], in)
		if !partialBOM && errors.Is(err, ErrLineTooLong) != errors.Is(wantErr, ErrLineTooLong) {
			t.Fatalf("input %q: decoder error %v, parser error %v", in, err, wantErr)
		}
	})
}

func BenchmarkDecoder(b *testing.B) {
	// The stream of BenchmarkParser, fed in reads of 4 KiB; one op is one
	// block, as there.
	var stream []byte
	for i := range 64 {
		stream = append(stream, "id: 1-"...)
		stream = append(stream, byte('0'+i/10), byte('0'+i%10))
		stream = append(stream, "\nevent: update\ndata: {\"topic\":\"load-0\",\"seq\":17,\"sent_ns\":1767225600000000000}\n\n"...)
		if i%8 == 0 {
			stream = append(stream, ":\n\n"...)
		}
	}
	blocks := 64 + 8
	d := &Decoder{}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)) / int64(blocks))
	n := 0
	count := func(Block) { n++ }
	for n < b.N {
		for i := 0; i < len(stream); i += 4096 {
			_ = d.Feed(stream[i:min(i+4096, len(stream))], count)
		}
	}
}
