package loadtest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http/httputil"
	"strings"
	"testing"
)

// unchunk feeds in to a chunkDecoder in pieces of at most step bytes and
// returns the payload, whether the body ended, and the first error.
func unchunk(in string, step int) (string, bool, error) {
	_, out, done, err := unchunkState(in, step)
	return out, done, err
}

func unchunkState(in string, step int) (chunkState, string, bool, error) {
	var c chunkDecoder
	var out []byte
	b := []byte(in)
	for len(b) > 0 {
		n := min(step, len(b))
		piece := append([]byte(nil), b[:n]...) // decode works in place
		b = b[n:]
		payload, done, err := c.decode(piece)
		out = append(out, payload...)
		if err != nil || done {
			return c.state, string(out), done, err
		}
	}
	return c.state, string(out), false, nil
}

func TestChunkDecoder(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		done bool
		bad  bool
	}{
		{"one chunk", "5\r\nhello\r\n", "hello", false, false},
		{"two chunks and end", "5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n", "hello!", true, false},
		{"upper and lower hex", "a\r\n0123456789\r\nA\r\n0123456789\r\n", strings.Repeat("0123456789", 2), false, false},
		{"leading zeros", "0005\r\nhello\r\n", "hello", false, false},
		{"extension ignored", "5;name=value\r\nhello\r\n0;x\r\n\r\n", "hello", true, false},
		{"whitespace after size", "5 \t\r\nhello\r\n", "hello", false, false},
		{"bare LF after size", "5\nhello\r\n", "hello", false, false},
		{"trailer skipped", "1\r\nx\r\n0\r\nExpires: never\r\nX: y\r\n\r\n", "x", true, false},
		{"bytes after the end ignored", "0\r\n\r\njunk", "", true, false},
		{"payload with CRLF inside", "4\r\n\r\n\r\n\r\n", "\r\n\r\n", false, false},
		{"empty size", "\r\nhello", "", false, true},
		{"not hex", "5x\r\nhello\r\n", "", false, true},
		{"negative", "-5\r\nhello\r\n", "", false, true},
		{"leading space", " 5\r\nhello\r\n", "", false, true},
		{"too large", "10000000000000000\r\n", "", false, true},
		{"largest size", "0fffffffffffffff\r\nx", "x", false, false},
		{"CRs and whitespace after size", "5\r \r\nhello\r\n", "hello", false, false},
		{"CR without LF", "5\rhello\r\n", "", false, true},
		{"missing CRLF after data", "5\r\nhelloX\r\n", "hello", false, true},
		{"LF only after data", "5\r\nhello\n1\r\n!\r\n", "hello", false, true},
		{"size line too long", "5;" + strings.Repeat("x", maxChunkLine) + "\r\nhello\r\n", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{1, 2, 3, 7, len(tt.in)} {
				got, done, err := unchunk(tt.in, max(step, 1))
				if (err != nil) != tt.bad || got != tt.want || done != tt.done {
					t.Fatalf("step %d: got %q done %v err %v; want %q done %v bad %v", step, got, done, err, tt.want, tt.done, tt.bad)
				}
				if err != nil && !errors.Is(err, errChunked) {
					t.Fatalf("step %d: error %v is not errChunked", step, err)
				}
			}
		})
	}
}

func TestChunkDecoderDoesNotAllocate(t *testing.T) {
	in := []byte("2a\r\nid: 1\ndata: {\"topic\":\"load-0\",\"seq\":1}\n\n\r\n")
	buf := make([]byte, len(in))
	var c chunkDecoder
	if n := testing.AllocsPerRun(100, func() {
		copy(buf, in)
		_, _, _ = c.decode(buf)
	}); n != 0 {
		t.Fatalf("decode allocates %v times", n)
	}
}

// FuzzChunkDecoder checks the decoder against net/http's chunked reader:
// where that reader returns the payload and EOF, the decoder returns the
// same payload and the end of the body, however the input is split.
func FuzzChunkDecoder(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext\r\nhello\r\n1\r\n!\r\n0\r\nX: y\r\n\r\n",
		"a\r\n0123456789\r\n0\r\n\r\n",
		"5\nhello\r\n0\n\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		want, err := io.ReadAll(httputil.NewChunkedReader(bufio.NewReader(bytes.NewReader(in))))
		if err != nil {
			return // net/http refuses it or wants more; the decoder may be laxer (extensions, whitespace)
		}
		// net/http stops at the last chunk; the decoder also reads the
		// trailer, which it may find malformed.
		state, got, _, derr := unchunkState(string(in)+"\r\n", max(int(step), 1))
		if derr != nil && state != chunkTrailer || got != string(want) {
			t.Fatalf("input %q: decoder %q, %v; net/http %q", in, got, derr, want)
		}
	})
}
