package flagenv_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/internal/flagenv"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		addr    string
		wait    time.Duration
		secret  string
	}{
		{name: "defaults", addr: ":1", wait: time.Second},
		{name: "env", env: map[string]string{"X_HTTP_ADDR": ":2", "X_WAIT": "3s"}, addr: ":2", wait: 3 * time.Second},
		{name: "flag wins", args: []string{"-http-addr", ":4"}, env: map[string]string{"X_HTTP_ADDR": ":2"}, addr: ":4", wait: time.Second},
		{name: "skipped flag", env: map[string]string{"X_SECRET": "s"}, addr: ":1", wait: time.Second},
		{name: "bad value", env: map[string]string{"X_WAIT": "soon", "X_HTTP_ADDR": ":2"}, wantErr: "environment X_WAIT"},
		{name: "unprefixed ignored", env: map[string]string{"HTTP_ADDR": ":9"}, addr: ":1", wait: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			addr := fs.String("http-addr", ":1", "")
			wait := fs.Duration("wait", time.Second, "")
			secret := fs.String("secret", "", "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := flagenv.Apply(fs, "X_", func(k string) string { return tt.env[k] }, "secret")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Apply = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *addr != tt.addr || *wait != tt.wait || *secret != tt.secret {
				t.Fatalf("got %q %v %q", *addr, *wait, *secret)
			}
		})
	}
}

func TestName(t *testing.T) {
	if got := flagenv.Name("", "max-body-bytes"); got != "MAX_BODY_BYTES" {
		t.Fatal(got)
	}
}
