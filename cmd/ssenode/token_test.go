package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node/auth"
)

func TestMintTokenVerifies(t *testing.T) {
	const secret = "a-secret-of-at-least-thirty-two-bytes!"
	var out bytes.Buffer
	err := mintToken([]string{"-subscribe", "orders/*, news", "-publish", "orders/1", "-ttl", "1h", "-sub", "alice", "-aud", "web"},
		env(map[string]string{"JWT_SECRET": secret}), &out, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(auth.Config{Secret: []byte(secret), Audience: "web"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := v.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if g.Subject != "alice" || !g.CanSubscribe("orders/9") || !g.CanSubscribe("news") || g.CanSubscribe("users/1") ||
		!g.CanPublish("orders/1") || g.CanPublish("orders/2") {
		t.Errorf("grant %+v does not match the flags", g)
	}
	if d := time.Until(g.Expires); d < 59*time.Minute || d > time.Hour {
		t.Errorf("expires in %v, want 1h", d)
	}
}

func TestMintTokenErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no key", []string{"-subscribe", "a"}, nil, "JWT_SECRET"},
		{"short secret", []string{"-subscribe", "a"}, map[string]string{"JWT_SECRET": "short"}, "32"},
		{"missing key file", []string{"-private-key-file", "/nonexistent/key.pem"}, nil, "no such file"},
		{"positional", []string{"extra"}, nil, "unexpected arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mintToken(c.args, env(c.env), new(bytes.Buffer), new(bytes.Buffer))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("mintToken = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// An open node says so loudly; a node with a key does not, and never logs
// the key.
func TestAuthModeLogged(t *testing.T) {
	const secret = "log-test-secret-0123456789abcdefghijkl"
	open, _, _ := startRun(t, nil, map[string]string{"HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0"})
	if !strings.Contains(open.String(), "AUTHORIZATION IS OFF") {
		t.Errorf("open node does not warn:\n%s", open)
	}
	closed, _, _ := startRun(t, nil, map[string]string{"HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "JWT_SECRET": secret})
	if strings.Contains(closed.String(), "AUTHORIZATION IS OFF") || !strings.Contains(closed.String(), `"auth":"jwt HS256"`) {
		t.Errorf("auth node logs:\n%s", closed)
	}
	if strings.Contains(closed.String(), secret[:16]) {
		t.Errorf("the secret is in the logs")
	}
}
