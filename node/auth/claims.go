package auth

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Claims is a token's payload: the registered claims (sub, exp, nbf, aud,
// iss, ...) and the "sse" claim. It is exported so tools and tests can mint
// tokens with Sign.
type Claims struct {
	jwt.RegisteredClaims
	// SSE is the "sse" claim; Verify refuses a token without it.
	SSE *Access `json:"sse,omitempty"`
}

// Access lists the topic patterns a token may subscribe to and publish on.
// A pattern is an exact topic, a prefix ending in "*", or "*" alone; at most
// 256 per list.
type Access struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
}

// Sign mints a token carrying c. key is a []byte of at least MinSecretBytes
// (HS256), an *rsa.PrivateKey of at least 2048 bits (RS256) or an
// *ecdsa.PrivateKey on P-256 (ES256). Sign does not check c: Verify does.
func Sign(key any, c Claims) (string, error) {
	m, err := signingMethod(key)
	if err != nil {
		return "", err
	}
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: sign %s: %w", m.Alg(), err)
	}
	return s, nil
}

// signingMethod returns the one algorithm a private key signs with, or why
// the key is not accepted.
func signingMethod(key any) (jwt.SigningMethod, error) {
	switch k := key.(type) {
	case []byte:
		if len(k) < MinSecretBytes {
			return nil, fmt.Errorf("auth: secret has %d bytes, need at least %d", len(k), MinSecretBytes)
		}
		return jwt.SigningMethodHS256, nil
	case *rsa.PrivateKey:
		if err := checkRSABits(&k.PublicKey); err != nil {
			return nil, err
		}
		return jwt.SigningMethodRS256, nil
	case *ecdsa.PrivateKey:
		if err := checkCurve(&k.PublicKey); err != nil {
			return nil, err
		}
		return jwt.SigningMethodES256, nil
	default:
		return nil, fmt.Errorf("auth: key type %T is not supported (want []byte, *rsa.PrivateKey or *ecdsa.PrivateKey)", key)
	}
}
