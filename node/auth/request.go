package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// FromRequest finds the token of r: the "Authorization: Bearer <token>"
// header (scheme case-insensitive) first, else the "token" query parameter,
// else the cookie named cookie (not looked at when cookie is ""). A source
// with an empty value, or an Authorization header of another scheme, counts
// as absent. It returns ErrAmbiguousToken when any of these sources holds
// more than one value (two Authorization headers, two "token" parameters,
// two cookies of that name), whichever would win: the client's intent is
// unclear. With no token it returns "" and nil; the caller decides whether
// that is ErrMissingToken.
func FromRequest(r *http.Request, cookie string) (string, error) {
	auth := r.Header.Values("Authorization")
	if len(auth) > 1 {
		return "", ErrAmbiguousToken
	}
	var query []string
	if r.URL != nil {
		query = r.URL.Query()["token"]
		if len(query) > 1 {
			return "", ErrAmbiguousToken
		}
	}
	var cookies []*http.Cookie
	if cookie != "" {
		cookies = r.CookiesNamed(cookie)
		if len(cookies) > 1 {
			return "", ErrAmbiguousToken
		}
	}
	if len(auth) == 1 {
		if t := Bearer(auth[0]); t != "" {
			return t, nil
		}
	}
	if len(query) == 1 && query[0] != "" {
		return query[0], nil
	}
	if len(cookies) == 1 && cookies[0].Value != "" {
		return cookies[0].Value, nil
	}
	return "", nil
}

// Bearer returns the token of an "Authorization: Bearer <token>" value
// (scheme case-insensitive, RFC 7235), or "" for another scheme or none.
func Bearer(h string) string {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(rest)
}

// StaticToken is a fixed bearer token (PUBLISH_TOKEN, ADMIN_TOKEN),
// compared in constant time over SHA-256 digests, so neither the token's
// bytes nor its length leak through timing. The zero value matches nothing.
type StaticToken struct {
	sum [sha256.Size]byte
	set bool
}

// NewStaticToken returns token's StaticToken; "" matches nothing.
func NewStaticToken(token string) StaticToken {
	return StaticToken{sum: sha256.Sum256([]byte(token)), set: token != ""}
}

// Matches reports whether tok (a token, not a header) is the token.
func (s StaticToken) Matches(tok string) bool {
	got := sha256.Sum256([]byte(tok))
	return s.set && subtle.ConstantTimeCompare(got[:], s.sum[:]) == 1
}
