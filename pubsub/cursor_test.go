package pubsub_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ssecluster/ssecluster/pubsub"
)

func TestParsePos(t *testing.T) {
	max := "18446744073709551615"
	tests := []struct {
		in   string
		want pubsub.Pos
		ok   bool
	}{
		{"0-0", pubsub.Pos{}, true},
		{"5-1", pubsub.Pos{Ms: 5, Seq: 1}, true},
		{max + "-" + max, pubsub.Pos{Ms: ^uint64(0), Seq: ^uint64(0)}, true},
		// What Redis would accept but must never reach it (SSE-NOTES §2.6).
		{"$", pubsub.Pos{}, false},
		{"5", pubsub.Pos{}, false},
		{" 5-0", pubsub.Pos{}, false},
		{"+", pubsub.Pos{}, false},
		{"-", pubsub.Pos{}, false},
		{"5-", pubsub.Pos{}, false},
		{"-1", pubsub.Pos{}, false},
		{"5-0abc", pubsub.Pos{}, false},
		{"0x5-0", pubsub.Pos{}, false},
		{"05-0", pubsub.Pos{}, false},
		{"5-00", pubsub.Pos{}, false},
		{"18446744073709551616-0", pubsub.Pos{}, false},
		{"1-99999999999999999999", pubsub.Pos{}, false},
		{"1-2-3", pubsub.Pos{}, false},
		{"", pubsub.Pos{}, false},
		{"١-٢", pubsub.Pos{}, false}, // non-ASCII digits
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := pubsub.ParsePos(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParsePos(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.ok && got != tt.want {
				t.Fatalf("ParsePos(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if tt.ok && got.String() != tt.in {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
			if !tt.ok && !errors.Is(err, pubsub.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
		})
	}
}

func TestPosOrder(t *testing.T) {
	a, b, c := pubsub.Pos{Ms: 1, Seq: 9}, pubsub.Pos{Ms: 2}, pubsub.Pos{Ms: 2, Seq: 1}
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Less(a) {
		t.Fatal("Less does not order by (ms, seq)")
	}
	if got := (pubsub.Pos{Ms: 3, Seq: ^uint64(0)}).Next(); got != (pubsub.Pos{Ms: 4}) {
		t.Fatalf("Next at seq max = %v", got)
	}
	if !(pubsub.Pos{}).IsZero() || b.IsZero() {
		t.Fatal("IsZero wrong")
	}
}

func TestParseCursor(t *testing.T) {
	long := strings.Repeat("1", pubsub.MaxCursorLen)
	tests := []struct {
		name string
		in   string
		n    int
		want string // "" = malformed
	}{
		{"one", "3.abc.5-0", 16, "3.abc.5-0"},
		{"two sorted", "0.e1.1-0_15.e2.2-3", 16, "0.e1.1-0_15.e2.2-3"},
		{"unsorted", "15.e2.2-3_0.e1.1-0", 16, ""},
		{"repeated partition", "1.e.1-0_1.e.2-0", 16, ""},
		{"partition too big", "16.e.1-0", 16, ""},
		{"partition leading zero", "01.e.1-0", 16, ""},
		{"negative partition", "-1.e.1-0", 16, ""},
		{"empty", "", 16, ""},
		{"empty entry", "1.e.1-0_", 16, ""},
		{"no epoch", "1..1-0", 16, ""},
		{"epoch upper case", "1.ABC.1-0", 16, ""},
		{"epoch too long", "1.abcdefghijklmnopq.1-0", 16, ""},
		{"epoch with newline", "1.a\nb.1-0", 16, ""},
		{"bad pos", "1.e.$", 16, ""},
		{"more entries than partitions", "0.e.1-0_1.e.1-0", 1, ""},
		{"too long", long, 16, ""},
		{"plain redis id", "1700000000000-0", 16, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pubsub.ParseCursor(tt.in, tt.n)
			if tt.want == "" {
				if !errors.Is(err, pubsub.ErrMalformed) {
					t.Fatalf("ParseCursor(%q) = %v, %v; want ErrMalformed", tt.in, c, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCursor(%q): %v", tt.in, err)
			}
			if c.String() != tt.want {
				t.Fatalf("round trip %q -> %q", tt.in, c.String())
			}
		})
	}
}

func TestCursorFind(t *testing.T) {
	c, err := pubsub.ParseCursor("2.e.1-0_7.f.3-4", 8)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := c.Find(7); !ok || id.Epoch != "f" || id.Pos != (pubsub.Pos{Ms: 3, Seq: 4}) {
		t.Fatalf("Find(7) = %v, %v", id, ok)
	}
	if _, ok := c.Find(3); ok {
		t.Fatal("Find(3) found an entry")
	}
}

func TestNewEpoch(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		e := pubsub.NewEpoch()
		if !pubsub.ValidEpoch(e) {
			t.Fatalf("NewEpoch() = %q is not a valid epoch", e)
		}
		if seen[e] {
			t.Fatalf("NewEpoch() repeated %q", e)
		}
		seen[e] = true
	}
}

func TestPartitionOf(t *testing.T) {
	// Pinned values: publishers in other languages compute the same
	// (Python: zlib.crc32(b"orders") % 16).
	tests := []struct {
		topic string
		n     int
		want  int
	}{
		{"orders", 16, 14},
		{"news", 16, 0},
		{"a", 1, 0},
	}
	for _, tt := range tests {
		if got := pubsub.PartitionOf(tt.topic, tt.n); got != tt.want {
			t.Errorf("PartitionOf(%q, %d) = %d, want %d", tt.topic, tt.n, got, tt.want)
		}
	}
}

// FuzzCursor: decoding never panics, and whatever decodes re-encodes to the
// same text, which decodes to the same cursor.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{"3.abc.5-0", "0.e1.1-0_15.e2.2-3", "", "$", "1.e.18446744073709551615-18446744073709551615", "1.e.1-0_", "0.a.0-0_1.b.1-1_2.c.2-2"} {
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 1 || n > 1024 {
			n = 16
		}
		c, err := pubsub.ParseCursor(s, n)
		if err != nil {
			if !errors.Is(err, pubsub.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		text := c.String()
		if text != s {
			t.Fatalf("ParseCursor(%q).String() = %q", s, text)
		}
		c2, err := pubsub.ParseCursor(text, n)
		if err != nil || c2.String() != text {
			t.Fatalf("re-parse of %q: %v, %v", text, c2, err)
		}
		for _, id := range c {
			if id.Partition < 0 || id.Partition >= n || !pubsub.ValidEpoch(id.Epoch) {
				t.Fatalf("decoded invalid id %+v", id)
			}
		}
	})
}
