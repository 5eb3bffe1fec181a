package retry

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// CookieName is the cookie that carries a client's State.
const CookieName = "sse_retry"

// KeySize is the size of a cookie signing key.
const KeySize = 32

// cookieVersion leads every cookie value, so the format can change.
const cookieVersion = "1"

// Codec signs and checks cookie values. Every node of a cluster must use
// the same key.
type Codec struct {
	key []byte
}

// NewCodec returns a codec for key (at least 16 bytes).
func NewCodec(key []byte) (*Codec, error) {
	if len(key) < 16 {
		return nil, errors.New("retry: cookie key shorter than 16 bytes")
	}
	return &Codec{key: append([]byte(nil), key...)}, nil
}

// Encode returns the cookie value of s:
// "1.<attempt>.<issued unix ms>.<hint ms>.<early>.<mac>", the mac being
// base64url HMAC-SHA256 of everything before it, cut to 16 bytes.
func (c *Codec) Encode(s State) string {
	b := make([]byte, 0, 96)
	b = append(b, cookieVersion...)
	for _, n := range []int64{int64(s.Attempt), s.Issued.UnixMilli(), s.Hint.Milliseconds(), int64(s.Early)} {
		b = append(b, '.')
		b = strconv.AppendInt(b, n, 10)
	}
	mac := c.mac(b)
	b = append(b, '.')
	return string(base64.RawURLEncoding.AppendEncode(b, mac))
}

// Decode checks and reads a cookie value. Anything malformed, unsigned or
// signed with another key reports false.
func (c *Codec) Decode(v string) (State, bool) {
	if len(v) > 128 {
		return State{}, false
	}
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return State{}, false
	}
	// Strict: the last character's spare bits must be zero, so one MAC has
	// one spelling (found by FuzzCookieDecode). Go's decoder skips CR and
	// LF even then, so they are refused first (found by FuzzCookieDecode).
	if strings.ContainsAny(v, "\r\n") {
		return State{}, false
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(v[i+1:])
	if err != nil || !hmac.Equal(mac, c.mac([]byte(v[:i]))) {
		return State{}, false
	}
	f := strings.Split(v[:i], ".")
	if len(f) != 5 || f[0] != cookieVersion {
		return State{}, false
	}
	var n [4]int64
	for j := range n {
		if n[j], err = strconv.ParseInt(f[j+1], 10, 64); err != nil || n[j] < 0 {
			return State{}, false
		}
	}
	if n[0] > maxAttempt || n[2] > int64(24*time.Hour/time.Millisecond) || n[3] > 1<<20 {
		return State{}, false
	}
	return State{Attempt: int(n[0]), Issued: time.UnixMilli(n[1]), Hint: time.Duration(n[2]) * time.Millisecond, Early: int(n[3])}, true
}

func (c *Codec) mac(b []byte) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write(b)
	return h.Sum(nil)[:16]
}
