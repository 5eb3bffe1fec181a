// Package auth verifies the JSON Web Tokens that authorize subscribing to and
// publishing on topics.
//
// A Verifier is built once from a Config holding an HS256 shared secret, an
// RSA or ECDSA P-256 public key, or both (while moving from one to the
// other). Verify checks a token's signature, its exp and nbf with a leeway
// for clock skew, its aud and iss when they are configured, and compiles its
// "sse" claim into a Grant:
//
//	{"sub": "alice", "exp": 1700000000,
//	 "sse": {"subscribe": ["orders/*", "news"], "publish": ["chat/alice"]}}
//
// A pattern is an exact topic, a prefix ending in "*" ("orders/*" matches
// every topic that starts with "orders/", "orders*" also matches
// "orders-eu": it is a plain byte prefix, not a path segment) or "*" alone
// (every topic). A token without the "sse" claim is refused; a list that is
// absent or empty grants nothing for its action.
//
// # Algorithms
//
// Only the algorithms of configured keys are accepted: HS256 with Secret,
// RS256 or ES256 with PublicKeyPEM (the key's type decides which). The alg
// header picks the key, so "none", an HS256 token signed with the public
// key's bytes (the classic key-confusion attack), or an ES256 token where an
// RSA key is configured are all ErrAlgorithm, before any signature check.
//
// # Errors
//
// Verify's errors match one of the Err* sentinels with errors.Is, and their
// text is fixed by this package: it never holds any part of the token or of
// its claims, so it can be logged and sent to the client as is.
//
// # What it does not do
//
// It does not issue tokens for clients (Sign and ParsePrivateKeyPEM exist for
// tools and tests), fetch keys (no JWKS), keep revocation lists or check a
// certificate's validity: a CERTIFICATE block only carries the public key.
// It does not validate topics: the caller does that before asking a Grant.
//
// # Concurrency
//
// A Verifier and the Grants it returns are immutable and safe for concurrent
// use. The package starts no goroutine and keeps no package-level state.
package auth
