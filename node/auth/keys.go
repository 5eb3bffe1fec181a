package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// minRSABits is the smallest RSA modulus accepted (NIST SP 800-131A).
const minRSABits = 2048

// Algorithms this package knows. Each key type accepts exactly one.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
)

// parsePublicKeyPEM reads Config.PublicKeyPEM: exactly one PEM block.
// It returns the key and the one algorithm it verifies.
func parsePublicKeyPEM(data []byte) (any, string, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("auth: PublicKeyPEM holds no PEM block")
	}
	if next, _ := pem.Decode(rest); next != nil {
		// A bundle would leave it unclear which key verifies tokens.
		return nil, "", errors.New("auth: PublicKeyPEM holds more than one PEM block")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, "", fmt.Errorf("auth: PublicKeyPEM holds a %s: give the node the public key only", block.Type)
	default:
		return nil, "", fmt.Errorf("auth: PublicKeyPEM block type %q is not PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("auth: PublicKeyPEM %s: %w", block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if err := checkRSABits(k); err != nil {
			return nil, "", err
		}
		return k, algRS256, nil
	case *ecdsa.PublicKey:
		if err := checkCurve(k); err != nil {
			return nil, "", err
		}
		return k, algES256, nil
	default:
		return nil, "", fmt.Errorf("auth: PublicKeyPEM key type %T is not supported (want RSA or ECDSA P-256)", key)
	}
}

// ParsePrivateKeyPEM reads a private key for minting tokens: a "PRIVATE KEY"
// (PKCS #8), "RSA PRIVATE KEY" (PKCS #1) or "EC PRIVATE KEY" (SEC 1) block; an
// "EC PARAMETERS" block before it (as openssl ecparam writes) is skipped. It
// returns an *rsa.PrivateKey of at least 2048 bits or an *ecdsa.PrivateKey on
// P-256, ready for Sign.
func ParsePrivateKeyPEM(data []byte) (any, error) {
	block, rest := pem.Decode(data)
	for block != nil && block.Type == "EC PARAMETERS" {
		block, rest = pem.Decode(rest)
	}
	if block == nil {
		return nil, errors.New("auth: no private key PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("auth: encrypted private keys are not supported")
	default:
		return nil, fmt.Errorf("auth: PEM block type %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: parse %s: %w", block.Type, err)
	}
	if _, err := signingMethod(key); err != nil {
		return nil, err
	}
	return key, nil
}

func checkRSABits(k *rsa.PublicKey) error {
	if bits := k.N.BitLen(); bits < minRSABits {
		return fmt.Errorf("auth: RSA key has %d bits, need at least %d", bits, minRSABits)
	}
	return nil
}

func checkCurve(k *ecdsa.PublicKey) error {
	if k.Curve != elliptic.P256() {
		return fmt.Errorf("auth: ECDSA key is on curve %s, only P-256 (ES256) is supported", k.Curve.Params().Name)
	}
	return nil
}
