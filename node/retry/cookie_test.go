package retry

import (
	"strings"
	"testing"
	"time"
)

// TestCookieAcrossNodes: a cookie issued by one node is read by another of
// the same cluster (same key), and by no one else; tampering shows.
func TestCookieAcrossNodes(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, err := NewCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewCodec(key)
	other, _ := NewCodec([]byte("another key of at least sixteen bytes"))
	st := State{Attempt: 4, Issued: time.UnixMilli(1_800_000_000_123), Hint: 12345 * time.Millisecond, Early: 1}
	v := a.Encode(st)
	if strings.ContainsAny(v, " ;,\"\\") {
		t.Errorf("cookie value %q has characters a cookie cannot carry", v)
	}
	got, ok := b.Decode(v)
	if !ok || got != st {
		t.Errorf("decoded %+v, %v; want %+v", got, ok, st)
	}
	if _, ok := other.Decode(v); ok {
		t.Error("a cookie signed with another key was accepted")
	}
	bad := []string{
		"", "1", "garbage", strings.Replace(v, "1.4.", "1.0.", 1), v + "x", "2" + v[1:],
		"1.4.1800000000123.12345.1", "1.-1.5.5.5." + v[strings.LastIndexByte(v, '.')+1:],
		strings.Repeat("1", 200),
	}
	for _, s := range bad {
		if got, ok := b.Decode(s); ok {
			t.Errorf("Decode(%q) = %+v, accepted", s, got)
		}
	}
	if _, err := NewCodec([]byte("short")); err == nil {
		t.Error("a short key was accepted")
	}
}

func FuzzCookieDecode(f *testing.F) {
	c, _ := NewCodec([]byte("0123456789abcdef0123456789abcdef"))
	f.Add(c.Encode(State{Attempt: 1, Issued: time.UnixMilli(5), Hint: time.Second}))
	f.Add("1.2.3.4.5.AAAA")
	f.Add("1.1.5.1000.0.7AsofOstXv2XmKmWSN6J0X") // non-zero spare bits in the MAC's last character
	f.Fuzz(func(t *testing.T, v string) {
		st, ok := c.Decode(v)
		if ok && c.Encode(st) != v {
			t.Errorf("accepted %q, which re-encodes as %q", v, c.Encode(st))
		}
	})
}
