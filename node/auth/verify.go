package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks tokens against one Config. It is safe for concurrent use.
type Verifier struct {
	parser   *jwt.Parser
	keyfunc  jwt.Keyfunc // v.keyFor, bound once so Verify does not allocate it
	algs     []string    // algorithms of the configured keys
	secret   []byte      // HS256 key, nil when unset
	public   any         // *rsa.PublicKey or *ecdsa.PublicKey, nil when unset
	pubAlg   string      // RS256 or ES256, the one algorithm of public
	audience string
	issuer   string
	leeway   time.Duration
	maxBytes int
}

// New checks c and builds its Verifier. c must be Enabled.
func New(c Config) (*Verifier, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	v := &Verifier{
		audience: c.Audience,
		issuer:   c.Issuer,
		leeway:   c.Leeway,
		maxBytes: c.MaxTokenBytes,
	}
	if len(c.Secret) > 0 {
		v.secret = bytes.Clone(c.Secret) // the caller may reuse its slice
		v.algs = append(v.algs, algHS256)
	}
	if len(c.PublicKeyPEM) > 0 {
		key, alg, err := parsePublicKeyPEM(c.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		v.public, v.pubAlg = key, alg
		v.algs = append(v.algs, alg)
	}
	opts := []jwt.ParserOption{
		// The parser refuses any other alg before calling keyFor: "none"
		// and HS256-with-the-public-key never reach a signature check.
		jwt.WithValidMethods(v.algs),
		jwt.WithLeeway(c.Leeway),
		jwt.WithTimeFunc(c.Now),
		// Canonical base64url only (zero padding bits), as every encoder
		// writes it: one token has one spelling.
		jwt.WithStrictDecoding(),
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	v.keyfunc = v.keyFor
	return v, nil
}

// Leeway is the clock skew tolerated on exp and nbf (0 when none).
func (v *Verifier) Leeway() time.Duration { return v.leeway }

// tokenClaims is what Verify decodes. The "sse" claim stays raw until the
// signature is verified, and a malformed one is ErrClaims, not ErrMalformed.
type tokenClaims struct {
	jwt.RegisteredClaims
	SSE json.RawMessage `json:"sse"`
}

// Verify checks token and returns what it grants. Its errors match one of
// the Err* sentinels with errors.Is and never quote the token.
func (v *Verifier) Verify(token string) (*Grant, error) {
	if len(token) > v.maxBytes {
		return nil, ErrTokenTooLong
	}
	// Only the compact form's alphabet: Go's base64 decoder skips CR and
	// LF, which would give one token several spellings.
	if !compactJWS(token) {
		return nil, ErrMalformed
	}
	var c tokenClaims
	t, err := v.parser.ParseWithClaims(token, &c, v.keyfunc)
	if err != nil {
		return nil, v.classify(t, &c, err)
	}
	return newGrant(&c)
}

// compactJWS reports whether s holds only base64url characters and dots.
func compactJWS(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Errors keyFor returns to the parser, found again by classify.
var (
	errNoKey    = errors.New("auth: no key for alg")
	errCritical = errors.New("auth: crit header")
)

// keyFor picks the key by the token's alg, which the parser has already
// checked against v.algs.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	// RFC 7515 section 4.1.11: a recipient must refuse extensions it does
	// not understand, and this package understands none.
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	switch alg := t.Method.Alg(); {
	case alg == algHS256 && v.secret != nil:
		return v.secret, nil
	case alg == v.pubAlg && v.public != nil:
		return v.public, nil
	}
	return nil, errNoKey
}

// classify maps a jwt/v5 error onto this package's sentinels. jwt's own text
// may quote the token (its alg, a JSON or base64 error), so it is dropped.
func (v *Verifier) classify(t *jwt.Token, c *tokenClaims, err error) error {
	switch {
	case errors.Is(err, errCritical):
		return &verifyError{kind: ErrMalformed, detail: "crit header not supported"}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return &verifyError{kind: ErrMalformed, cause: jwt.ErrTokenMalformed}
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// alg missing, not registered with jwt/v5, or without a key.
		return &verifyError{kind: ErrAlgorithm, cause: jwt.ErrTokenUnverifiable}
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// jwt/v5 reports a refused alg (WithValidMethods) as a bad
		// signature; tell them apart by the alg.
		if t == nil || t.Method == nil || !slices.Contains(v.algs, t.Method.Alg()) {
			return &verifyError{kind: ErrAlgorithm, cause: jwt.ErrTokenSignatureInvalid}
		}
		return &verifyError{kind: ErrSignature, cause: jwt.ErrTokenSignatureInvalid}
	// Claims are checked only once the signature holds. Several may fail
	// at once; the first case wins.
	case errors.Is(err, jwt.ErrTokenExpired):
		return &verifyError{kind: ErrExpired, cause: jwt.ErrTokenExpired}
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return &verifyError{kind: ErrNotYetValid, cause: jwt.ErrTokenNotValidYet}
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return &verifyError{kind: ErrAudience, cause: jwt.ErrTokenInvalidAudience}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return &verifyError{kind: ErrIssuer, cause: jwt.ErrTokenInvalidIssuer}
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// aud or iss is absent while configured; jwt/v5 says which only
		// in its text, so look at the claims.
		if v.audience != "" && !slices.Contains(c.Audience, v.audience) {
			return &verifyError{kind: ErrAudience, detail: "aud missing", cause: jwt.ErrTokenRequiredClaimMissing}
		}
		if v.issuer != "" && c.Issuer != v.issuer {
			return &verifyError{kind: ErrIssuer, detail: "iss missing", cause: jwt.ErrTokenRequiredClaimMissing}
		}
		return &verifyError{kind: ErrClaims, cause: jwt.ErrTokenRequiredClaimMissing}
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return &verifyError{kind: ErrClaims, cause: jwt.ErrTokenInvalidClaims}
	default:
		return ErrMalformed
	}
}

// newGrant compiles the verified claims c.
func newGrant(c *tokenClaims) (*Grant, error) {
	if len(c.SSE) == 0 || string(c.SSE) == "null" {
		return nil, &verifyError{kind: ErrClaims, detail: "sse claim missing"}
	}
	var a Access
	if err := json.Unmarshal(c.SSE, &a); err != nil {
		// err may quote the claim: drop it.
		return nil, &verifyError{kind: ErrClaims, detail: "sse claim is not an object of string lists"}
	}
	g := &Grant{Subject: c.Subject}
	if c.ExpiresAt != nil {
		g.Expires = c.ExpiresAt.Time
	}
	var detail string
	if g.subscribe, detail = compilePatterns(a.Subscribe); detail != "" {
		return nil, &verifyError{kind: ErrClaims, detail: "subscribe: " + detail}
	}
	if g.publish, detail = compilePatterns(a.Publish); detail != "" {
		return nil, &verifyError{kind: ErrClaims, detail: "publish: " + detail}
	}
	return g, nil
}
