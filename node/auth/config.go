package auth

import (
	"errors"
	"fmt"
	"time"
)

const (
	// MinSecretBytes is the shortest HS256 secret New accepts: 256 bits, the
	// size of the HMAC-SHA256 output (RFC 7518 section 3.2).
	MinSecretBytes = 32
	// DefaultLeeway is the clock skew tolerated on exp and nbf when
	// Config.Leeway is zero.
	DefaultLeeway = 10 * time.Second
	// DefaultMaxTokenBytes is the longest token accepted when
	// Config.MaxTokenBytes is zero.
	DefaultMaxTokenBytes = 8192
)

// Config turns authorization on when Secret or PublicKeyPEM is set. Both may
// be set while moving from one to the other: HS256 tokens are then verified
// with the secret, RS256 or ES256 ones with the key.
type Config struct {
	// Secret is the HS256 shared secret (env JWT_SECRET), at least
	// MinSecretBytes long. Empty: HS256 is not accepted.
	Secret []byte
	// PublicKeyPEM is one PEM block: an RSA (at least 2048 bits) or ECDSA
	// P-256 public key as "PUBLIC KEY" (PKIX), "RSA PUBLIC KEY" (PKCS #1) or
	// the key of a "CERTIFICATE" (whose dates and chain are not checked).
	// An RSA key accepts RS256 only, an ECDSA key ES256 only. Empty: neither
	// is accepted.
	PublicKeyPEM []byte
	// Leeway is the clock skew tolerated on exp and nbf. Zero means
	// DefaultLeeway (10 s); negative means none.
	Leeway time.Duration
	// Audience, when set, must be one of the token's aud values. Empty: aud
	// is not checked.
	Audience string
	// Issuer, when set, must equal the token's iss. Empty: iss is not
	// checked.
	Issuer string
	// MaxTokenBytes bounds a token's length; longer ones are refused before
	// any parsing. Zero means DefaultMaxTokenBytes (8192); negative is an
	// error.
	MaxTokenBytes int
	// Now is the clock for exp and nbf. Nil means time.Now.
	Now func() time.Time
}

// Enabled reports whether c asks for authorization.
func (c Config) Enabled() bool {
	return len(c.Secret) > 0 || len(c.PublicKeyPEM) > 0
}

// withDefaults returns c with every zero field that has a default set to it.
func (c Config) withDefaults() Config {
	switch {
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	case c.Leeway < 0:
		c.Leeway = 0
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// validate checks the limits that do not need a key to be parsed.
func (c Config) validate() error {
	if !c.Enabled() {
		return errors.New("auth: neither Secret nor PublicKeyPEM is set")
	}
	if len(c.Secret) > 0 && len(c.Secret) < MinSecretBytes {
		return fmt.Errorf("auth: Secret has %d bytes, need at least %d", len(c.Secret), MinSecretBytes)
	}
	if c.MaxTokenBytes < 0 {
		return fmt.Errorf("auth: MaxTokenBytes is %d, must not be negative", c.MaxTokenBytes)
	}
	return nil
}
