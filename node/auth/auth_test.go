package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssecluster/ssecluster/node/auth"
)

// now is the fixed clock of every Verifier in these tests.
var now = time.Unix(1_700_000_000, 0)

func clock() time.Time { return now }

// testKeys are generated once per test binary: 2048-bit RSA generation is
// the slowest part of the suite, more so under -race.
type testKeys struct {
	secret   []byte
	rsa      *rsa.PrivateKey
	rsaOther *rsa.PrivateKey
	rsa1024  *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	ecOther  *ecdsa.PrivateKey
	rsaPEM   []byte // PKIX "PUBLIC KEY" of rsa
	ecPEM    []byte // PKIX "PUBLIC KEY" of ec
}

var generateKeys = sync.OnceValues(func() (*testKeys, error) {
	k := &testKeys{secret: []byte("0123456789abcdef0123456789abcdef")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		return nil, err
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if k.ecOther, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if k.rsaPEM, err = pkixPEM(&k.rsa.PublicKey); err != nil {
		return nil, err
	}
	if k.ecPEM, err = pkixPEM(&k.ec.PublicKey); err != nil {
		return nil, err
	}
	return k, nil
})

func keys(tb testing.TB) *testKeys {
	tb.Helper()
	k, err := generateKeys()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func pkixPEM(pub any) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func mustPEM(tb testing.TB, typ string, der []byte, err error) []byte {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func newVerifier(tb testing.TB, c auth.Config) *auth.Verifier {
	tb.Helper()
	if c.Now == nil {
		c.Now = clock
	}
	v, err := auth.New(c)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return v
}

// claims are valid for an hour and grant subscribing to orders/* and
// publishing on chat/alice; mod changes them.
func claims(mod func(*auth.Claims)) auth.Claims {
	c := auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   "alice",
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		SSE: &auth.Access{Subscribe: []string{"orders/*"}, Publish: []string{"chat/alice"}},
	}
	if mod != nil {
		mod(&c)
	}
	return c
}

func sign(tb testing.TB, key any, c auth.Claims) string {
	tb.Helper()
	s, err := auth.Sign(key, c)
	if err != nil {
		tb.Fatalf("Sign: %v", err)
	}
	return s
}

// signWith signs any claims the way another library would.
func signWith(tb testing.TB, m jwt.SigningMethod, key any, c jwt.Claims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		tb.Fatalf("SignedString: %v", err)
	}
	return s
}

// hsMap signs map claims with HS256 under secret.
func hsMap(tb testing.TB, secret []byte, c jwt.MapClaims) string {
	tb.Helper()
	return signWith(tb, jwt.SigningMethodHS256, secret, c)
}

// raw builds a token from its decoded header and payload and an encoded
// signature.
func raw(header, payload, sig string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + sig
}

var sentinels = []error{
	auth.ErrMissingToken, auth.ErrAmbiguousToken, auth.ErrTokenTooLong, auth.ErrMalformed,
	auth.ErrSignature, auth.ErrAlgorithm, auth.ErrExpired, auth.ErrNotYetValid,
	auth.ErrAudience, auth.ErrIssuer, auth.ErrClaims,
}

// matched returns the sentinels err matches.
func matched(err error) []error {
	var m []error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			m = append(m, s)
		}
	}
	return m
}

func patternList(n int) []string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprintf("t%d/*", i)
	}
	return l
}

func TestVerify(t *testing.T) {
	k := keys(t)
	hs := newVerifier(t, auth.Config{Secret: k.secret})
	rs := newVerifier(t, auth.Config{PublicKeyPEM: k.rsaPEM})
	es := newVerifier(t, auth.Config{PublicKeyPEM: k.ecPEM})
	both := newVerifier(t, auth.Config{Secret: k.secret, PublicKeyPEM: k.rsaPEM})
	strict := newVerifier(t, auth.Config{Secret: k.secret, Audience: "sse", Issuer: "https://issuer.example"})
	noLeeway := newVerifier(t, auth.Config{Secret: k.secret, Leeway: -1})
	small := newVerifier(t, auth.Config{Secret: k.secret, MaxTokenBytes: 64})

	valid := sign(t, k.secret, claims(nil))
	validParts := strings.Split(valid, ".")
	other := sign(t, k.secret, claims(func(c *auth.Claims) { c.SSE.Subscribe = []string{"*"} }))
	sse := map[string]any{"subscribe": []string{"orders/*"}}
	exp := now.Add(time.Hour).Unix()

	withHeader := func(key string, val any) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
		tok.Header[key] = val
		s, err := tok.SignedString(k.secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// flipLast changes the padding bits of a segment's last character: the
	// bytes decode the same, the spelling is not canonical.
	flipLast := func(seg string) string {
		last := seg[len(seg)-1]
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, last)
		return seg[:len(seg)-1] + string(alphabet[i^1])
	}

	type tc struct {
		name  string
		v     *auth.Verifier
		token string
		want  error // nil: accepted
	}
	tests := []tc{
		{"HS256", hs, valid, nil},
		{"HS256 from jwt.NewWithClaims", hs, hsMap(t, k.secret, jwt.MapClaims{"sub": "alice", "exp": exp, "iat": now.Unix(), "sse": sse}), nil},
		{"RS256", rs, sign(t, k.rsa, claims(nil)), nil},
		{"ES256", es, sign(t, k.ec, claims(nil)), nil},
		{"both keys HS256", both, valid, nil},
		{"both keys RS256", both, sign(t, k.rsa, claims(nil)), nil},
		{"no exp", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.ExpiresAt = nil })), nil},
		{"unknown claims ignored", hs, hsMap(t, k.secret, jwt.MapClaims{"exp": exp, "sse": map[string]any{"subscribe": []string{"a"}, "future": 1}, "x": true}), nil},
		{"sse with no lists", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.SSE = &auth.Access{} })), nil},
		{"256 patterns", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.SSE.Publish = patternList(256) })), nil},

		{"wrong secret", hs, sign(t, []byte("another secret of thirty-two bytes!"), claims(nil)), auth.ErrSignature},
		{"other RSA key", rs, sign(t, k.rsaOther, claims(nil)), auth.ErrSignature},
		{"other EC key", es, sign(t, k.ecOther, claims(nil)), auth.ErrSignature},
		{"payload swapped", hs, validParts[0] + "." + strings.Split(other, ".")[1] + "." + validParts[2], auth.ErrSignature},
		{"signature removed", hs, validParts[0] + "." + validParts[1] + ".", auth.ErrSignature},
		// 342 base64url characters hold the 256-byte signature; 340 hold 255
		// bytes exactly, so the cut keeps a canonical spelling.
		{"RSA signature truncated", rs, func() string { s := sign(t, k.rsa, claims(nil)); return s[:len(s)-2] }(), auth.ErrSignature},

		{"alg none", hs, raw(`{"alg":"none","typ":"JWT"}`, `{"sub":"alice","sse":{"subscribe":["*"]}}`, ""), auth.ErrAlgorithm},
		{"alg none with public key", rs, raw(`{"alg":"none","typ":"JWT"}`, `{"sub":"alice","sse":{"subscribe":["*"]}}`, ""), auth.ErrAlgorithm},
		{"alg none with both", both, raw(`{"alg":"none","typ":"JWT"}`, `{"sub":"alice","sse":{"subscribe":["*"]}}`, ""), auth.ErrAlgorithm},
		{"alg None", hs, raw(`{"alg":"None"}`, `{"sse":{}}`, ""), auth.ErrAlgorithm},
		{"alg missing", hs, raw(`{"typ":"JWT"}`, `{"sse":{}}`, "c2ln"), auth.ErrAlgorithm},
		{"alg not a string", hs, raw(`{"alg":256}`, `{"sse":{}}`, "c2ln"), auth.ErrAlgorithm},
		{"alg unknown", hs, raw(`{"alg":"HS999"}`, `{"sse":{}}`, "c2ln"), auth.ErrAlgorithm},
		{"key confusion: HS256 keyed with the public key PEM", rs, signWith(t, jwt.SigningMethodHS256, k.rsaPEM, claims(nil)), auth.ErrAlgorithm},
		{"key confusion with a secret configured too", both, signWith(t, jwt.SigningMethodHS256, k.rsaPEM, claims(nil)), auth.ErrSignature},
		{"RS256 without public key", hs, sign(t, k.rsa, claims(nil)), auth.ErrAlgorithm},
		{"ES256 with RSA key", rs, sign(t, k.ec, claims(nil)), auth.ErrAlgorithm},
		{"ES256 with secret and RSA key", both, sign(t, k.ec, claims(nil)), auth.ErrAlgorithm},
		{"RS256 with EC key", es, sign(t, k.rsa, claims(nil)), auth.ErrAlgorithm},
		{"HS512", hs, signWith(t, jwt.SigningMethodHS512, k.secret, claims(nil)), auth.ErrAlgorithm},
		{"PS256 with RSA key", rs, signWith(t, jwt.SigningMethodPS256, k.rsa, claims(nil)), auth.ErrAlgorithm},
		{"crit header", hs, withHeader("crit", []string{"exp"}), auth.ErrMalformed},

		{"expired", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) })), auth.ErrExpired},
		{"expired within leeway", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-5 * time.Second)) })), nil},
		{"expired by exactly the leeway", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-10 * time.Second)) })), auth.ErrExpired},
		{"expired without leeway", noLeeway, sign(t, k.secret, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Second)) })), auth.ErrExpired},
		{"not yet valid", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Minute)) })), auth.ErrNotYetValid},
		{"not yet valid within leeway", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Second)) })), nil},
		{"iat in the future is not checked", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) })), nil},

		{"aud and iss match", strict, sign(t, k.secret, claims(func(c *auth.Claims) {
			c.Audience = jwt.ClaimStrings{"other", "sse"}
			c.Issuer = "https://issuer.example"
		})), nil},
		{"aud and iss not configured", hs, sign(t, k.secret, claims(func(c *auth.Claims) {
			c.Audience = jwt.ClaimStrings{"other"}
			c.Issuer = "elsewhere"
		})), nil},
		{"wrong aud", strict, sign(t, k.secret, claims(func(c *auth.Claims) {
			c.Audience = jwt.ClaimStrings{"other"}
			c.Issuer = "https://issuer.example"
		})), auth.ErrAudience},
		{"missing aud", strict, sign(t, k.secret, claims(func(c *auth.Claims) { c.Issuer = "https://issuer.example" })), auth.ErrAudience},
		{"wrong iss", strict, sign(t, k.secret, claims(func(c *auth.Claims) {
			c.Audience = jwt.ClaimStrings{"sse"}
			c.Issuer = "https://evil.example"
		})), auth.ErrIssuer},
		{"missing iss", strict, sign(t, k.secret, claims(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"sse"} })), auth.ErrIssuer},

		{"empty", hs, "", auth.ErrMalformed},
		{"one dot", hs, "a.b", auth.ErrMalformed},
		{"a.b.c", hs, "a.b.c", auth.ErrMalformed},
		{"three dots", hs, valid + ".x", auth.ErrMalformed},
		{"garbage base64", hs, "!!!.@@@.###", auth.ErrMalformed},
		{"header not JSON", hs, raw(`hello`, `{}`, "c2ln"), auth.ErrMalformed},
		{"header a JSON array", hs, raw(`["HS256"]`, `{}`, "c2ln"), auth.ErrMalformed},
		{"payload not JSON", hs, raw(`{"alg":"HS256"}`, `{"sse":`, "c2ln"), auth.ErrMalformed},
		{"exp not a number", hs, hsMap(t, k.secret, jwt.MapClaims{"exp": "tomorrow", "sse": sse}), auth.ErrMalformed},
		{"sub not a string", hs, hsMap(t, k.secret, jwt.MapClaims{"sub": 7, "sse": sse}), auth.ErrMalformed},
		{"padded base64", hs, validParts[0] + "=." + validParts[1] + "." + validParts[2], auth.ErrMalformed},
		{"non-canonical base64 signature", hs, validParts[0] + "." + validParts[1] + "." + flipLast(validParts[2]), auth.ErrMalformed},
		{"standard base64 alphabet", hs, strings.NewReplacer("-", "+", "_", "/").Replace(valid) + "+/", auth.ErrMalformed},

		{"too long", hs, strings.Repeat("a", auth.DefaultMaxTokenBytes+1), auth.ErrTokenTooLong},
		{"at the limit is parsed", hs, strings.Repeat("a", auth.DefaultMaxTokenBytes), auth.ErrMalformed},
		{"valid but over MaxTokenBytes", small, valid, auth.ErrTokenTooLong},

		{"sse missing", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.SSE = nil })), auth.ErrClaims},
		{"sse null", hs, hsMap(t, k.secret, jwt.MapClaims{"exp": exp, "sse": nil}), auth.ErrClaims},
		{"sse a string", hs, hsMap(t, k.secret, jwt.MapClaims{"exp": exp, "sse": "orders/*"}), auth.ErrClaims},
		{"sse a list", hs, hsMap(t, k.secret, jwt.MapClaims{"exp": exp, "sse": []string{"orders/*"}}), auth.ErrClaims},
		{"subscribe a string", hs, hsMap(t, k.secret, jwt.MapClaims{"exp": exp, "sse": map[string]any{"subscribe": "orders/*"}}), auth.ErrClaims},
		{"publish of numbers", hs, hsMap(t, k.secret, jwt.MapClaims{"exp": exp, "sse": map[string]any{"publish": []int{1}}}), auth.ErrClaims},
		{"257 patterns", hs, sign(t, k.secret, claims(func(c *auth.Claims) { c.SSE.Subscribe = patternList(257) })), auth.ErrClaims},
	}
	bad := []string{"a*b", "*a", "", "**", "orders/**", "or ders/*", "-orders", "/orders", "orders/é", "orders\n", strings.Repeat("a", 201), strings.Repeat("a", 201) + "*"}
	good := []string{"a", "orders*", "9/x", "a.b_c:d@e/f-g", strings.Repeat("a", 200), strings.Repeat("a", 200) + "*"}
	for _, list := range []string{"subscribe", "publish"} {
		for _, p := range bad {
			tok := hsMap(t, k.secret, jwt.MapClaims{"sse": map[string]any{list: []string{"ok", p}}})
			tests = append(tests, tc{fmt.Sprintf("%s pattern %.20q", list, p), hs, tok, auth.ErrClaims})
		}
		for _, p := range good {
			tok := hsMap(t, k.secret, jwt.MapClaims{"sse": map[string]any{list: []string{p}}})
			tests = append(tests, tc{fmt.Sprintf("%s pattern %.20q", list, p), hs, tok, nil})
		}
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := tc.v.Verify(tc.token)
			if tc.want == nil {
				if err != nil || g == nil {
					t.Fatalf("Verify = %v, %v; want a grant", g, err)
				}
				return
			}
			if g != nil {
				t.Errorf("Verify returned a grant with error %v", err)
			}
			if m := matched(err); len(m) != 1 || m[0] != tc.want {
				t.Fatalf("Verify error %v matches %v; want only %v", err, m, tc.want)
			}
		})
	}
}

func TestVerifyErrorsWrapJWT(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, auth.Config{Secret: k.secret})
	_, err := v.Verify(sign(t, k.secret, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) })))
	if !errors.Is(err, auth.ErrExpired) || !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("err = %v; want both auth.ErrExpired and jwt.ErrTokenExpired", err)
	}
}

func TestGrant(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, auth.Config{Secret: k.secret})

	g, err := v.Verify(sign(t, k.secret, claims(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if g.Subject != "alice" {
		t.Errorf("Subject = %q; want alice", g.Subject)
	}
	if want := now.Add(time.Hour); !g.Expires.Equal(want) {
		t.Errorf("Expires = %v; want %v", g.Expires, want)
	}

	g, err = v.Verify(sign(t, k.secret, claims(func(c *auth.Claims) { c.ExpiresAt = nil; c.Subject = "" })))
	if err != nil {
		t.Fatal(err)
	}
	if !g.Expires.IsZero() || g.Subject != "" {
		t.Errorf("Expires, Subject = %v, %q; want zero values", g.Expires, g.Subject)
	}

	var none *auth.Grant
	if none.CanSubscribe("a") || none.CanPublish("a") {
		t.Error("a nil Grant allows something")
	}
}

func TestGrantMatch(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, auth.Config{Secret: k.secret})
	tests := []struct {
		name     string
		patterns []string
		topic    string
		want     bool
	}{
		{"exact", []string{"orders"}, "orders", true},
		{"exact is not a prefix", []string{"orders"}, "orders/1", false},
		{"exact shorter topic", []string{"orders"}, "order", false},
		{"exact is case-sensitive", []string{"orders"}, "Orders", false},
		{"prefix", []string{"orders/*"}, "orders/1", true},
		{"prefix deep", []string{"orders/*"}, "orders/eu/1", true},
		{"prefix needs its slash", []string{"orders/*"}, "orders", false},
		{"prefix other topic", []string{"orders/*"}, "orders-x", false},
		{"plain prefix, no boundary", []string{"orders*"}, "orders-x", true},
		{"plain prefix matches itself", []string{"orders*"}, "orders", true},
		{"plain prefix shorter topic", []string{"orders*"}, "order", false},
		{"star", []string{"*"}, "anything/at:all", true},
		{"star among others", []string{"a", "*", "b/*"}, "zzz", true},
		{"empty list", nil, "orders", false},
		{"several, exact hit", []string{"b/*", "c", "a"}, "c", true},
		{"several, prefix hit", []string{"b/*", "c", "a"}, "b/x", true},
		{"several, miss", []string{"b/*", "c", "a"}, "bx", false},
		{"duplicates", []string{"a", "a", "b/*", "b/*"}, "b/1", true},
		{"many exact", patternList(0), "x", false},
		{"last of 256", append(patternList(255), "zz"), "zz", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := v.Verify(sign(t, k.secret, claims(func(c *auth.Claims) {
				c.SSE = &auth.Access{Subscribe: tc.patterns}
			})))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := v.Verify(sign(t, k.secret, claims(func(c *auth.Claims) {
				c.SSE = &auth.Access{Publish: tc.patterns}
			})))
			if err != nil {
				t.Fatal(err)
			}
			if got := sub.CanSubscribe(tc.topic); got != tc.want {
				t.Errorf("subscribe grant: CanSubscribe(%q) = %v; want %v", tc.topic, got, tc.want)
			}
			if sub.CanPublish(tc.topic) {
				t.Errorf("subscribe grant: CanPublish(%q) = true", tc.topic)
			}
			if got := pub.CanPublish(tc.topic); got != tc.want {
				t.Errorf("publish grant: CanPublish(%q) = %v; want %v", tc.topic, got, tc.want)
			}
			if pub.CanSubscribe(tc.topic) {
				t.Errorf("publish grant: CanSubscribe(%q) = true", tc.topic)
			}
		})
	}
}

func TestFromRequest(t *testing.T) {
	type cookie struct{ name, value string }
	tests := []struct {
		name    string
		target  string
		auth    []string
		cookies []cookie
		cookie  string // FromRequest's argument
		want    string
		wantErr error
	}{
		{name: "none", target: "/v1/events", cookie: "tok"},
		{name: "bearer", target: "/", auth: []string{"Bearer h.h.h"}, want: "h.h.h"},
		{name: "bearer lower case", target: "/", auth: []string{"bearer h.h.h"}, want: "h.h.h"},
		{name: "bearer upper case, spaces", target: "/", auth: []string{"  BEARER   h.h.h "}, want: "h.h.h"},
		{name: "header before query and cookie", target: "/?token=q.q.q", auth: []string{"Bearer h.h.h"}, cookies: []cookie{{"tok", "c.c.c"}}, cookie: "tok", want: "h.h.h"},
		{name: "query", target: "/?topic=a&token=q.q.q", want: "q.q.q"},
		{name: "query before cookie", target: "/?token=q.q.q", cookies: []cookie{{"tok", "c.c.c"}}, cookie: "tok", want: "q.q.q"},
		{name: "escaped query key", target: "/?%74oken=q.q.q", want: "q.q.q"},
		{name: "cookie", target: "/", cookies: []cookie{{"other", "x"}, {"tok", "c.c.c"}}, cookie: "tok", want: "c.c.c"},
		{name: "cookie not asked for", target: "/", cookies: []cookie{{"tok", "c.c.c"}}},
		{name: "other scheme ignored", target: "/?token=q.q.q", auth: []string{"Basic dXNlcjpwYXNz"}, want: "q.q.q"},
		{name: "empty bearer ignored", target: "/?token=q.q.q", auth: []string{"Bearer "}, want: "q.q.q"},
		{name: "empty query ignored", target: "/?token=", cookies: []cookie{{"tok", "c.c.c"}}, cookie: "tok", want: "c.c.c"},
		{name: "empty cookie ignored", target: "/", cookies: []cookie{{"tok", ""}}, cookie: "tok"},
		{name: "two Authorization headers", target: "/", auth: []string{"Bearer a.a.a", "Bearer b.b.b"}, wantErr: auth.ErrAmbiguousToken},
		{name: "two token parameters", target: "/?token=a.a.a&token=b.b.b", wantErr: auth.ErrAmbiguousToken},
		{name: "two token parameters behind a header", target: "/?token=a.a.a&token=b.b.b", auth: []string{"Bearer h.h.h"}, wantErr: auth.ErrAmbiguousToken},
		{name: "two cookies", target: "/", cookies: []cookie{{"tok", "a.a.a"}, {"tok", "b.b.b"}}, cookie: "tok", wantErr: auth.ErrAmbiguousToken},
		{name: "two cookies not asked for", target: "/", cookies: []cookie{{"tok", "a.a.a"}, {"tok", "b.b.b"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			for _, a := range tc.auth {
				r.Header.Add("Authorization", a)
			}
			for _, c := range tc.cookies {
				r.AddCookie(&http.Cookie{Name: c.name, Value: c.value})
			}
			got, err := auth.FromRequest(r, tc.cookie)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v; want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("token = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	k := keys(t)
	ed, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
	}
	certDER, certErr := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsa.PublicKey, k.rsa)
	pkcs8DER, pkcs8Err := x509.MarshalPKCS8PrivateKey(k.rsa)
	edDER, edErr := x509.MarshalPKIXPublicKey(ed)
	p384DER, p384Err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	rsa1024DER, rsa1024Err := x509.MarshalPKIXPublicKey(&k.rsa1024.PublicKey)

	rs256 := sign(t, k.rsa, claims(nil))
	tests := []struct {
		name   string
		cfg    auth.Config
		ok     bool
		verify string // a token the Verifier must accept
	}{
		{name: "zero config", cfg: auth.Config{}},
		{name: "secret", cfg: auth.Config{Secret: k.secret}, ok: true},
		{name: "short secret", cfg: auth.Config{Secret: k.secret[:auth.MinSecretBytes-1]}},
		{name: "short secret with a key", cfg: auth.Config{Secret: []byte("short"), PublicKeyPEM: k.rsaPEM}},
		{name: "negative MaxTokenBytes", cfg: auth.Config{Secret: k.secret, MaxTokenBytes: -1}},
		{name: "PKIX RSA", cfg: auth.Config{PublicKeyPEM: k.rsaPEM}, ok: true, verify: rs256},
		{name: "PKCS#1 RSA", cfg: auth.Config{PublicKeyPEM: mustPEM(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey), nil)}, ok: true, verify: rs256},
		{name: "certificate", cfg: auth.Config{PublicKeyPEM: mustPEM(t, "CERTIFICATE", certDER, certErr)}, ok: true, verify: rs256},
		{name: "PKIX EC", cfg: auth.Config{PublicKeyPEM: k.ecPEM}, ok: true, verify: sign(t, k.ec, claims(nil))},
		{name: "not PEM", cfg: auth.Config{PublicKeyPEM: []byte("not a pem")}},
		{name: "bad DER", cfg: auth.Config{PublicKeyPEM: mustPEM(t, "PUBLIC KEY", []byte("garbage"), nil)}},
		{name: "unknown block type", cfg: auth.Config{PublicKeyPEM: mustPEM(t, "SOMETHING", []byte("x"), nil)}},
		{name: "private key", cfg: auth.Config{PublicKeyPEM: mustPEM(t, "PRIVATE KEY", pkcs8DER, pkcs8Err)}},
		{name: "two blocks", cfg: auth.Config{PublicKeyPEM: append(append([]byte{}, k.rsaPEM...), k.ecPEM...)}},
		{name: "RSA 1024", cfg: auth.Config{PublicKeyPEM: mustPEM(t, "PUBLIC KEY", rsa1024DER, rsa1024Err)}},
		{name: "Ed25519", cfg: auth.Config{PublicKeyPEM: mustPEM(t, "PUBLIC KEY", edDER, edErr)}},
		{name: "EC P-384", cfg: auth.Config{PublicKeyPEM: mustPEM(t, "PUBLIC KEY", p384DER, p384Err)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Now = clock
			v, err := auth.New(tc.cfg)
			if !tc.ok {
				if err == nil {
					t.Fatal("New succeeded; want an error")
				}
				if !strings.HasPrefix(err.Error(), "auth: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if tc.verify != "" {
				if _, err := v.Verify(tc.verify); err != nil {
					t.Errorf("Verify: %v", err)
				}
			}
		})
	}
}

func TestConfig(t *testing.T) {
	k := keys(t)
	tests := []struct {
		name    string
		cfg     auth.Config
		enabled bool
		leeway  time.Duration
	}{
		{"zero", auth.Config{}, false, 0},
		{"secret, default leeway", auth.Config{Secret: k.secret}, true, auth.DefaultLeeway},
		{"key, own leeway", auth.Config{PublicKeyPEM: k.ecPEM, Leeway: 3 * time.Second}, true, 3 * time.Second},
		{"negative leeway is none", auth.Config{Secret: k.secret, Leeway: -time.Second}, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.Enabled(); got != tc.enabled {
				t.Fatalf("Enabled = %v; want %v", got, tc.enabled)
			}
			if !tc.enabled {
				return
			}
			if got := newVerifier(t, tc.cfg).Leeway(); got != tc.leeway {
				t.Errorf("Leeway = %v; want %v", got, tc.leeway)
			}
		})
	}
}

func TestVerifierKeepsOwnSecret(t *testing.T) {
	k := keys(t)
	secret := append([]byte{}, k.secret...)
	v := newVerifier(t, auth.Config{Secret: secret})
	clear(secret)
	if _, err := v.Verify(sign(t, k.secret, claims(nil))); err != nil {
		t.Fatalf("Verify after the caller reused its slice: %v", err)
	}
}

func TestSignErrors(t *testing.T) {
	k := keys(t)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]any{
		"short secret":       []byte("short"),
		"secret as a string": string(k.secret),
		"RSA 1024":           k.rsa1024,
		"RSA public key":     &k.rsa.PublicKey,
		"Ed25519":            ed,
		"EC P-384":           p384,
		"nil":                nil,
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := auth.Sign(key, claims(nil)); err == nil {
				t.Fatalf("Sign = %q; want an error", s)
			}
		})
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	k := keys(t)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS8, rsaErr := x509.MarshalPKCS8PrivateKey(k.rsa)
	ecPKCS8, ecErr := x509.MarshalPKCS8PrivateKey(k.ec)
	ecSEC1, sec1Err := x509.MarshalECPrivateKey(k.ec)
	edPKCS8, edErr := x509.MarshalPKCS8PrivateKey(ed)
	// openssl ecparam -genkey writes the curve's parameters first.
	ecParams := mustPEM(t, "EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}, nil)

	rs := newVerifier(t, auth.Config{PublicKeyPEM: k.rsaPEM})
	es := newVerifier(t, auth.Config{PublicKeyPEM: k.ecPEM})
	tests := []struct {
		name string
		pem  []byte
		v    *auth.Verifier // nil: ParsePrivateKeyPEM must fail
	}{
		{"PKCS#8 RSA", mustPEM(t, "PRIVATE KEY", rsaPKCS8, rsaErr), rs},
		{"PKCS#1 RSA", mustPEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.rsa), nil), rs},
		{"PKCS#8 EC", mustPEM(t, "PRIVATE KEY", ecPKCS8, ecErr), es},
		{"SEC1 EC", mustPEM(t, "EC PRIVATE KEY", ecSEC1, sec1Err), es},
		{"SEC1 EC after EC PARAMETERS", append(ecParams, mustPEM(t, "EC PRIVATE KEY", ecSEC1, sec1Err)...), es},
		{"PKCS#8 Ed25519", mustPEM(t, "PRIVATE KEY", edPKCS8, edErr), nil},
		{"PKCS#1 RSA 1024", mustPEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.rsa1024), nil), nil},
		{"public key", k.rsaPEM, nil},
		{"encrypted", mustPEM(t, "ENCRYPTED PRIVATE KEY", []byte("x"), nil), nil},
		{"bad DER", mustPEM(t, "PRIVATE KEY", []byte("garbage"), nil), nil},
		{"not PEM", []byte("not a pem"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := auth.ParsePrivateKeyPEM(tc.pem)
			if tc.v == nil {
				if err == nil {
					t.Fatalf("ParsePrivateKeyPEM = %T; want an error", key)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM: %v", err)
			}
			if _, err := tc.v.Verify(sign(t, key, claims(nil))); err != nil {
				t.Fatalf("Verify a token signed with the parsed key: %v", err)
			}
		})
	}
}

// TestErrorsDoNotLeak checks that no error text holds a 6-byte piece of the
// token or a claim value: errors are logged and sent to clients.
func TestErrorsDoNotLeak(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, auth.Config{Secret: k.secret, PublicKeyPEM: k.rsaPEM, Audience: "sse", Issuer: "https://issuer.example"})
	secrets := []string{"subject-secret-value", "audience-secret-value", "issuer-secret-value", "pattern secret value", "sse-secret-string", "alg-secret-value"}
	ok := func(c *auth.Claims) {
		c.Subject = "subject-secret-value"
		c.Audience = jwt.ClaimStrings{"sse"}
		c.Issuer = "https://issuer.example"
	}
	with := func(mod func(*auth.Claims)) auth.Claims {
		return claims(func(c *auth.Claims) { ok(c); mod(c) })
	}
	tokens := map[string]string{
		"wrong secret":     sign(t, []byte("another secret of thirty-two bytes!"), with(func(*auth.Claims) {})),
		"other RSA key":    sign(t, k.rsaOther, with(func(*auth.Claims) {})),
		"expired":          sign(t, k.secret, with(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) })),
		"not yet valid":    sign(t, k.secret, with(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })),
		"wrong aud":        sign(t, k.secret, with(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"audience-secret-value"} })),
		"wrong iss":        sign(t, k.secret, with(func(c *auth.Claims) { c.Issuer = "issuer-secret-value" })),
		"bad pattern":      sign(t, k.secret, with(func(c *auth.Claims) { c.SSE.Subscribe = []string{"pattern secret value"} })),
		"sse a string":     hsMap(t, k.secret, jwt.MapClaims{"aud": "sse", "iss": "https://issuer.example", "sse": "sse-secret-string"}),
		"sse a number":     hsMap(t, k.secret, jwt.MapClaims{"aud": "sse", "iss": "https://issuer.example", "sse": map[string]any{"subscribe": 123456789}}),
		"alg unknown":      raw(`{"alg":"alg-secret-value"}`, `{"sse":{}}`, "c2lnbmF0dXJl"),
		"alg refused":      signWith(t, jwt.SigningMethodHS384, k.secret, with(func(*auth.Claims) {})),
		"alg none":         raw(`{"alg":"none"}`, `{"sub":"subject-secret-value","sse":{}}`, ""),
		"exp a string":     hsMap(t, k.secret, jwt.MapClaims{"exp": "sse-secret-string"}),
		"payload bad JSON": raw(`{"alg":"HS256"}`, `{"sub":"subject-secret-value"`, "c2lnbmF0dXJl"),
		"bad base64":       "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl!!!xyzxyz",
		"too long":         strings.Repeat("abcdefgh", 2000),
	}
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(tok)
			if err == nil {
				t.Fatal("Verify accepted the token")
			}
			if len(matched(err)) != 1 {
				t.Errorf("error %v matches %d sentinels; want 1", err, len(matched(err)))
			}
			msg := err.Error()
			for i := 0; i+6 <= len(tok); i++ {
				if piece := tok[i : i+6]; strings.Contains(msg, piece) {
					t.Fatalf("error %q holds %q of the token", msg, piece)
				}
			}
			for _, s := range secrets {
				if strings.Contains(msg, s) {
					t.Fatalf("error %q holds claim value %q", msg, s)
				}
			}
		})
	}
}

func TestVerifyConcurrent(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, auth.Config{Secret: k.secret, PublicKeyPEM: k.ecPEM})
	tokens := []string{sign(t, k.secret, claims(nil)), sign(t, k.ec, claims(nil))}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for i := range 50 {
				g, err := v.Verify(tokens[i%len(tokens)])
				if err != nil {
					errs <- err
					return
				}
				if !g.CanSubscribe("orders/1") {
					errs <- errors.New("grant lost orders/*")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// errorTexts is every text a Verify error can have. A new one must be added
// here, after checking that it is a constant: FuzzVerify refuses any other.
var errorTexts = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range sentinels {
		m[s.Error()] = true
	}
	for _, d := range []string{
		"auth: malformed token: crit header not supported",
		"auth: token audience not accepted: aud missing",
		"auth: token issuer not accepted: iss missing",
		"auth: invalid sse claim: sse claim missing",
		"auth: invalid sse claim: sse claim is not an object of string lists",
		"auth: invalid sse claim: subscribe: more than 256 patterns",
		"auth: invalid sse claim: subscribe: invalid pattern",
		"auth: invalid sse claim: publish: more than 256 patterns",
		"auth: invalid sse claim: publish: invalid pattern",
	} {
		m[d] = true
	}
	return m
}()

func FuzzVerify(f *testing.F) {
	k := keys(f)
	v := newVerifier(f, auth.Config{Secret: k.secret, PublicKeyPEM: k.rsaPEM, Audience: "sse"})
	aud := func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"sse"} }
	f.Add(sign(f, k.secret, claims(aud)))
	f.Add(sign(f, k.rsa, claims(aud)))
	f.Add(sign(f, k.secret, claims(func(c *auth.Claims) {
		aud(c)
		c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
	})))
	f.Add(raw(`{"alg":"none","typ":"JWT"}`, `{"aud":"sse","sse":{"subscribe":["*"]}}`, ""))
	f.Add(raw(`{"alg":"HS256","typ":"JWT"}`, `{"aud":"sse","sse":{"subscribe":["a*b"]}}`, "c2ln"))
	f.Add("")
	f.Add("a.b.c")
	good := sign(f, k.secret, claims(aud))
	f.Add(good[:len(good)-4] + "\n" + good[len(good)-4:]) // decodes to the same signature
	f.Fuzz(func(t *testing.T, s string) {
		g, err := v.Verify(s)
		if err == nil {
			if g == nil {
				t.Fatal("Verify returned neither a grant nor an error")
			}
			// One token, one spelling: three base64url segments and nothing
			// else (Go's base64 decoder would skip CR and LF).
			if strings.Count(s, ".") != 2 || strings.Trim(s, ".-_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
				t.Fatalf("accepted %q, which is not a compact JWS", s)
			}
			return
		}
		if g != nil {
			t.Fatalf("Verify returned a grant and %v", err)
		}
		if len(matched(err)) == 0 {
			t.Fatalf("error %v matches no sentinel", err)
		}
		msg := err.Error()
		if !errorTexts[msg] {
			t.Fatalf("unexpected error text %q", msg)
		}
		// The text is one of a fixed set, so it can hold the input only if
		// the input is a piece of that set's text by chance.
		if len(s) >= 6 && strings.Contains(msg, s) && !inErrorTexts(s) {
			t.Fatalf("error %q holds the input", msg)
		}
	})
}

func inErrorTexts(s string) bool {
	for text := range errorTexts {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

func BenchmarkVerify(b *testing.B) {
	k := keys(b)
	c := claims(func(c *auth.Claims) {
		c.SSE = &auth.Access{Subscribe: []string{"orders/*", "news", "prices/eu/*"}, Publish: []string{"chat/alice"}}
	})
	for _, bc := range []struct {
		name string
		cfg  auth.Config
		key  any
	}{
		{"HS256", auth.Config{Secret: k.secret}, k.secret},
		{"RS256", auth.Config{PublicKeyPEM: k.rsaPEM}, k.rsa},
		{"ES256", auth.Config{PublicKeyPEM: k.ecPEM}, k.ec},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := newVerifier(b, bc.cfg)
			tok := sign(b, bc.key, c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCanSubscribe(b *testing.B) {
	k := keys(b)
	v := newVerifier(b, auth.Config{Secret: k.secret})
	g, err := v.Verify(sign(b, k.secret, claims(func(c *auth.Claims) {
		c.SSE = &auth.Access{Subscribe: append(patternList(16), "news", "orders", "prices")}
	})))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if g.CanSubscribe("weather/eu") {
			b.Fatal("unexpected match")
		}
	}
}

func TestStaticToken(t *testing.T) {
	s := auth.NewStaticToken("s3cret")
	for _, c := range []struct {
		tok  string
		want bool
	}{{"s3cret", true}, {"s3cre", false}, {"s3crett", false}, {"", false}, {"S3CRET", false}} {
		if got := s.Matches(c.tok); got != c.want {
			t.Errorf("Matches(%q) = %v, want %v", c.tok, got, c.want)
		}
	}
	if auth.NewStaticToken("").Matches("") || (auth.StaticToken{}).Matches("") {
		t.Error("an unset token matches")
	}
}
