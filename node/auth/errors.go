package auth

import "errors"

// Errors of Verify and FromRequest. Callers map them to HTTP answers with
// errors.Is; their text never holds any part of a token.
var (
	// ErrMissingToken is for callers whose request carries no token.
	ErrMissingToken = errors.New("auth: missing token")
	// ErrAmbiguousToken: a request offers more than one token at one place.
	ErrAmbiguousToken = errors.New("auth: more than one token in request")
	// ErrTokenTooLong: the token is longer than Config.MaxTokenBytes.
	ErrTokenTooLong = errors.New("auth: token too long")
	// ErrMalformed: not a JWT (segments, base64url, JSON, crit header).
	ErrMalformed = errors.New("auth: malformed token")
	// ErrSignature: the signature does not match the configured key.
	ErrSignature = errors.New("auth: invalid token signature")
	// ErrAlgorithm: the alg header is missing, unknown, "none", or has no
	// configured key.
	ErrAlgorithm = errors.New("auth: token algorithm not accepted")
	// ErrExpired: exp is past, beyond the leeway.
	ErrExpired = errors.New("auth: token expired")
	// ErrNotYetValid: nbf is ahead, beyond the leeway.
	ErrNotYetValid = errors.New("auth: token not valid yet")
	// ErrAudience: Config.Audience is set and aud does not contain it.
	ErrAudience = errors.New("auth: token audience not accepted")
	// ErrIssuer: Config.Issuer is set and iss is not equal to it.
	ErrIssuer = errors.New("auth: token issuer not accepted")
	// ErrClaims: the "sse" claim is missing or malformed, or holds an
	// invalid pattern.
	ErrClaims = errors.New("auth: invalid sse claim")
)

// verifyError is a Verify error with more to say than its sentinel. Its text
// is built only from constants of this package, never from the token.
type verifyError struct {
	kind   error  // one of the Err* sentinels above
	detail string // a constant of this package, or ""
	cause  error  // a jwt/v5 sentinel (constant text), or nil
}

func (e *verifyError) Error() string {
	if e.detail == "" {
		return e.kind.Error()
	}
	return e.kind.Error() + ": " + e.detail
}

// Unwrap gives errors.Is both the sentinel and jwt/v5's sentinel. It never
// exposes jwt's wrapped errors, whose text may quote the token.
func (e *verifyError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}
