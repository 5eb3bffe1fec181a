package sse

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		typ  Type
		data string
	}{
		{"plain", "", "hello"},
		{"LF", "", "a\nb"},
		{"CR", "", "a\rb"},
		{"CRLF", "", "a\r\nb"},
		{"mixed", "update", "a\rb\nc\r\nd\n\re"},
		{"empty", "", ""},
		{"only LF", "", "\n"},
		{"only newlines", "", "\n\r\n\r\r\n\n"},
		{"trailing CR", "", "x\r"},
		{"leading spaces", "", " a\n  b\n   "},
		{"only spaces", "", "   "},
		{"colons", "", ": not a comment\n:\ndata: x"},
		{"unicode", "événement", "héllo ✓ 🎉\n日本語"},
		{"BOM in payload", "", "\uFEFFx\n\uFEFF"},
		{"NUL", "", "a\x00b\n\x00"},
		{"JSON", "update", `{"a":"b\nc","d":[1,2]}`},
		{"injection", "", "x\n\nid: evil\nevent: reset\n\ndata: y"},
		{"injection CR", "", "x\r\rid: evil\revent: reset\r\rretry: 1\r\r"},
		{"1 MiB line", "big", strings.Repeat("0123456789abcdef", 1<<16)},
		{"many lines", "", strings.Repeat("line\r\n", 10000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The event under test, then one without id or type: the second
			// must still see the first id and the default type, proving the
			// payload set neither.
			stream := AppendEvent(nil, []byte("1-0"), tt.typ, []byte(tt.data))
			stream = AppendEvent(stream, nil, "", []byte("after"))
			wantType := string(tt.typ)
			if wantType == "" {
				wantType = "message"
			}
			want := []Event{
				{ID: "1-0", HasID: true, Type: wantType, Data: normalizeLineBreaks(tt.data), Retry: -1, Dispatch: true},
				{ID: "1-0", Type: "message", Data: "after", Retry: -1, Dispatch: true},
			}
			for _, rd := range readers {
				if rd.name == "one byte" && len(stream) > 1<<16 {
					continue // covered by the other readers; keep the suite fast
				}
				got, err := parseAll(t, rd.wrap(bytes.NewReader(stream)), 2<<20)
				if err != io.EOF || !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: got %v, %v\nwant %v", rd.name, fmtEvents(got), err, fmtEvents(want))
				}
			}
		})
	}
}

func TestRoundTripStream(t *testing.T) {
	// A stream as the node writes it: connect comment and retry, events
	// with shared bodies and per-connection ids, heartbeats.
	var s []byte
	s = AppendComment(s, "connected")
	s = AppendRetry(s, 2500)
	s = append(s, '\n')
	body := AppendBody(nil, "update", []byte("shared\nbody"))
	for _, id := range []string{"e1:1-0", "e1:2-0"} {
		s = AppendID(s, []byte(id))
		s = append(s, body...)
		s = append(s, '\n')
	}
	s = AppendComment(s, "hb")
	s = append(s, '\n')
	s = AppendEvent(s, []byte("e2:0-1"), "reset", nil)

	want := []Event{
		{Retry: 2500, Comments: 1},
		{ID: "e1:1-0", HasID: true, Type: "update", Data: "shared\nbody", Retry: -1, Dispatch: true},
		{ID: "e1:2-0", HasID: true, Type: "update", Data: "shared\nbody", Retry: -1, Dispatch: true},
		{ID: "e1:2-0", Retry: -1, Comments: 1},
		{ID: "e2:0-1", HasID: true, Type: "reset", Data: "", Retry: -1, Dispatch: true},
	}
	got, err := parseAll(t, iotest.OneByteReader(bytes.NewReader(s)), 0)
	if err != io.EOF || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v\nwant %v", fmtEvents(got), err, fmtEvents(want))
	}
}

// validType turns arbitrary fuzz input into a Type NewType accepts, or "".
func validType(s string) Type {
	s = strings.ToValidUTF8(s, "")
	s = strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(s)
	for len(s) > MaxTypeLen {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	if s == "" {
		return ""
	}
	return MustType(s)
}

func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add([]byte("1-0"), "update", []byte("hello"))
	f.Add([]byte(nil), "", []byte(""))
	f.Add([]byte("e:5-1"), "reset", []byte("x\n\nid: evil\nevent: reset\n\ndata: y"))
	f.Add([]byte("a\r\nb\x00"), "t\ny", []byte("a\r\nb\rc\n\r\n"))
	f.Add([]byte("\xff"), "\xefvent", []byte("\xef\xbb\xbf\xe2\x82\r\xac\xff "))
	f.Fuzz(func(t *testing.T, id []byte, typStr string, data []byte) {
		typ := validType(typStr)
		frame := AppendEvent(nil, id, typ, data)

		// Structure: only id, event and data lines, then one blank line.
		lines := strings.Split(string(frame), "\n")
		if len(lines) < 3 || lines[len(lines)-1] != "" || lines[len(lines)-2] != "" {
			t.Fatalf("frame %q does not end with exactly one blank line", frame)
		}
		for i, l := range lines[:len(lines)-2] {
			ok := strings.HasPrefix(l, "data:") ||
				(i == 0 && strings.HasPrefix(l, "id: ")) ||
				(i <= 1 && strings.HasPrefix(l, "event: "))
			if !ok || strings.ContainsRune(l, '\r') {
				t.Fatalf("frame %q: line %d %q is not an id, event or data line", frame, i, l)
			}
		}
		body := AppendBody(AppendID(nil, id), typ, data)
		if !bytes.Equal(append(body, '\n'), frame) {
			t.Fatalf("AppendID+AppendBody+LF = %q, AppendEvent = %q", body, frame)
		}

		// Parse: exactly one dispatched event carrying the input back.
		p := NewParser(bytes.NewReader(frame))
		p.MaxLine = 3*len(frame) + 1 // U+FFFD replacement can triple a line
		ev, err := p.Next()
		if err != nil {
			t.Fatalf("Next: %v (frame %q)", err, frame)
		}
		var kept []byte // the id bytes AppendID keeps (bytes.Map would decode UTF-8)
		for _, c := range id {
			if c != '\r' && c != '\n' && c != 0 {
				kept = append(kept, c)
			}
		}
		wantID := refDecode(kept)
		want := Event{
			ID: wantID, HasID: wantID != "", Type: string(typ), Dispatch: true, Retry: -1,
			Data: refDecode([]byte(normalizeLineBreaks(string(data)))),
		}
		if typ == "" {
			want.Type = "message"
		}
		if !reflect.DeepEqual(ev, want) {
			t.Fatalf("frame %q\n got %+v\nwant %+v", frame, ev, want)
		}
		if ev, err := p.Next(); err != io.EOF {
			t.Fatalf("second Next = %+v, %v; want io.EOF", ev, err)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"data: hello\n\n",
		"\xEF\xBB\xBFid: 1\r\nevent: e\r\ndata: a\r\rdata\n\n: hb\n\n",
		"retry: 3000\nid: 2\x003\n\nretry: 1e3\n\n",
		"data : x\n\nData: y\n\nid\n\n",
		"data: \xff\xe2\x82\n\n\xed\xa0\x80\r\n\r\n",
		"event: add\n\ndata: x\ndata: y\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Without limits in the way: the streaming parser, fed whole or a
		// byte at a time, agrees with the naive reference.
		want := refParse(in, "")
		for _, rd := range readers[:2] {
			got, err := parseAll(t, rd.wrap(bytes.NewReader(in)), 3*len(in)+1)
			if err != io.EOF {
				t.Fatalf("%s: error %v, want io.EOF", rd.name, err)
			}
			if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("input %q\n%s: got %v\nwant %v", in, rd.name, fmtEvents(got), fmtEvents(want))
			}
		}

		// With a small limit: only io.EOF or ErrLineTooLong, nothing returned
		// exceeds the limit, and the events before an error are those the
		// reference found.
		const limit = 16
		got, err := parseAll(t, bytes.NewReader(in), limit)
		if err != io.EOF && !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("limited: unexpected error %v", err)
		}
		if len(got) > len(want) || !reflect.DeepEqual(got, want[:len(got)]) && len(got) > 0 {
			t.Fatalf("input %q\nlimited: got %v\nnot a prefix of %v", in, fmtEvents(got), fmtEvents(want))
		}
		for _, ev := range got {
			for _, s := range []string{ev.ID, ev.Type, ev.Data} {
				if len(s) > limit || !utf8.ValidString(s) {
					t.Fatalf("limited: field %q longer than %d or invalid UTF-8", s, limit)
				}
			}
		}
	})
}
