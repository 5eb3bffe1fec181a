package sse

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestNewType(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "update", true},
		{"unicode", "événement-✓", true},
		{"leading space", " x", true},
		{"max length", strings.Repeat("a", MaxTypeLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxTypeLen+1), false},
		{"LF", "a\nb", false},
		{"CR", "a\rb", false},
		{"NUL", "a\x00b", false},
		{"invalid UTF-8", "a\xffb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewType(tt.in)
			if tt.ok {
				if err != nil || got != Type(tt.in) {
					t.Fatalf("NewType(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.in)
				}
				return
			}
			if !errors.Is(err, ErrInvalidType) || got != "" {
				t.Fatalf("NewType(%q) = %q, %v; want ErrInvalidType", tt.in, got, err)
			}
		})
	}
}

func TestMustTypePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("MustType(\"a\\nb\") did not panic")
		}
	}()
	MustType("a\nb")
}

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		name string
		id   []byte
		typ  Type
		data string
		want string
	}{
		{"minimal", nil, "", "x", "data: x\n\n"},
		{"empty payload fires", nil, "", "", "data:\n\n"},
		{"id and type", []byte("5-0"), "update", "{}", "id: 5-0\nevent: update\ndata: {}\n\n"},
		{"empty non-nil id omitted", []byte{}, "", "x", "data: x\n\n"},
		{"LF", nil, "", "a\nb", "data: a\ndata: b\n\n"},
		{"CR", nil, "", "a\rb", "data: a\ndata: b\n\n"},
		{"CRLF is one break", nil, "", "a\r\nb", "data: a\ndata: b\n\n"},
		{"LFCR is two breaks", nil, "", "a\n\rb", "data: a\ndata:\ndata: b\n\n"},
		{"mixed", nil, "", "a\rb\nc\r\nd", "data: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"trailing LF", nil, "", "a\n", "data: a\ndata:\n\n"},
		{"trailing CRLF", nil, "", "a\r\n", "data: a\ndata:\n\n"},
		{"trailing CR", nil, "", "a\r", "data: a\ndata:\n\n"},
		{"only LF", nil, "", "\n", "data:\ndata:\n\n"},
		{"blank lines inside", nil, "", "a\n\nb", "data: a\ndata:\ndata: b\n\n"},
		{"leading space kept", nil, "", " a\n  b", "data:  a\ndata:   b\n\n"},
		{"colon in data", nil, "", ":a: b", "data: :a: b\n\n"},
		{"NUL kept in data", nil, "", "a\x00b", "data: a\x00b\n\n"},
		{
			"injection stays data", []byte("1"), "", "x\n\nid: evil\nevent: reset\n\ndata: y",
			"id: 1\ndata: x\ndata:\ndata: id: evil\ndata: event: reset\ndata:\ndata: data: y\n\n",
		},
		{"id guard drops CR LF NUL", []byte("1\r\n2\x003"), "", "x", "id: 123\ndata: x\n\n"},
		{"id of only line breaks omitted", []byte("\r\n\x00"), "", "x", "data: x\n\n"},
		{"unchecked type guarded", nil, Type("a\nid: 9"), "x", "event: aid: 9\ndata: x\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendEvent(nil, tt.id, tt.typ, []byte(tt.data)))
			if got != tt.want {
				t.Fatalf("AppendEvent = %q\nwant           %q", got, tt.want)
			}
			// The frame is AppendID + AppendBody + "\n", appended after any prefix.
			composed := AppendID([]byte("prefix"), tt.id)
			composed = AppendBody(composed, tt.typ, []byte(tt.data))
			composed = append(composed, '\n')
			if string(composed) != "prefix"+tt.want {
				t.Fatalf("AppendID+AppendBody+LF = %q, want %q", composed, "prefix"+tt.want)
			}
		})
	}
}

func TestAppendRetry(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{0, "retry: 0\n"},
		{2500, "retry: 2500\n"},
		{-1, "retry: 0\n"},
		{1<<63 - 1, "retry: 9223372036854775807\n"},
	}
	for _, tt := range tests {
		if got := string(AppendRetry(nil, tt.ms)); got != tt.want {
			t.Errorf("AppendRetry(%d) = %q, want %q", tt.ms, got, tt.want)
		}
	}
}

func TestAppendComment(t *testing.T) {
	tests := []struct {
		text string
		want string
	}{
		{"", ":\n"},
		{"hb", ": hb\n"},
		{"a\nb\rc\x00d", ": a b c d\n"},
		{"\r\n", ":   \n"},
	}
	for _, tt := range tests {
		if got := string(AppendComment(nil, tt.text)); got != tt.want {
			t.Errorf("AppendComment(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestAppendChunk(t *testing.T) {
	tests := []struct {
		payload string
		want    string
	}{
		{"", ""},
		{"a", "1\r\na\r\n"},
		{strings.Repeat("x", 26), "1a\r\n" + strings.Repeat("x", 26) + "\r\n"},
		{strings.Repeat("x", 4096), "1000\r\n" + strings.Repeat("x", 4096) + "\r\n"},
	}
	for _, tt := range tests {
		if got := string(AppendChunk([]byte("p"), []byte(tt.payload))); got != "p"+tt.want {
			t.Errorf("AppendChunk(%d bytes) = %.20q, want %.20q", len(tt.payload), got, "p"+tt.want)
		}
	}
	for n, want := range map[int]string{-1: "", 0: "", 1: "1\r\n", 255: "ff\r\n", 65536: "10000\r\n"} {
		if got := string(AppendChunkHeader(nil, n)); got != want {
			t.Errorf("AppendChunkHeader(%d) = %q, want %q", n, got, want)
		}
	}
	if ChunkEnd != "0\r\n\r\n" {
		t.Errorf("ChunkEnd = %q", ChunkEnd)
	}
}

func TestEncodersDoNotAllocate(t *testing.T) {
	id := []byte("1700000000000-0")
	typ := MustType("update")
	data := []byte("line one\r\nline two\nline three\r")
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendEvent(buf[:0], id, typ, data)
		buf = AppendRetry(buf, 1500)
		buf = AppendComment(buf, "heartbeat")
		buf = AppendChunk(buf, data)
		buf = AppendID(buf, []byte("guard\n"))
		buf = AppendBody(buf, Type("bad\ntype"), data)
	})
	if allocs != 0 {
		t.Fatalf("encoders allocated %v times per run, want 0", allocs)
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	id := []byte("1700000000000-0")
	typ := MustType("update")
	cases := []struct {
		name string
		data []byte
	}{
		{"small", []byte(`{"topic":"orders","id":12345,"status":"shipped","items":[1,2,3]}`)},
		{"multiline", bytes.Repeat([]byte("a line of text\r\n"), 16)},
		{"4KiB", bytes.Repeat([]byte("x"), 4096)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 2*len(c.data)+256)
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendEvent(buf[:0], id, typ, c.data)
			}
		})
	}
}
