package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssecluster/ssecluster/node/auth"
)

// mintToken is "ssenode token": it prints a JWT for the node's
// authorization (README: Authorization), signed with JWT_SECRET (HS256) or
// the private key of -private-key-file (RS256 or ES256). It is for
// operators and examples; applications mint their own tokens with any JWT
// library.
func mintToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssenode token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	subscribe := fs.String("subscribe", "", "comma-separated topic patterns the token may subscribe to (exact, prefix*, or *)")
	publish := fs.String("publish", "", "comma-separated topic patterns the token may publish to")
	ttl := fs.Duration("ttl", time.Hour, "lifetime (exp = now + ttl); 0: no expiry")
	subject := fs.String("sub", "", "subject (sub claim)")
	audience := fs.String("aud", "", "audience (aud claim)")
	issuer := fs.String("iss", "", "issuer (iss claim)")
	keyFile := fs.String("private-key-file", "", "PEM private key (RSA: RS256, ECDSA P-256: ES256); default: HS256 with JWT_SECRET from the environment")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ssenode token [flags]\nPrints a JWT for ssenode's authorization. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected arguments: %q", fs.Args())
	}
	var key any
	if *keyFile != "" {
		pem, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		if key, err = auth.ParsePrivateKeyPEM(pem); err != nil {
			return fmt.Errorf("token: %w", err)
		}
	} else {
		secret := getenv("JWT_SECRET")
		if secret == "" {
			return errors.New("token: set JWT_SECRET in the environment (the node's HS256 secret) or pass -private-key-file")
		}
		key = []byte(secret)
	}
	now := time.Now()
	c := auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: *subject, Issuer: *issuer, IssuedAt: jwt.NewNumericDate(now)},
		SSE:              &auth.Access{Subscribe: splitList(*subscribe), Publish: splitList(*publish)},
	}
	if *audience != "" {
		c.Audience = jwt.ClaimStrings{*audience}
	}
	if *ttl > 0 {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(*ttl))
	}
	tok, err := auth.Sign(key, c)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
