package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// healthServer answers /healthz with status on a loopback port.
func healthServer(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// The image's HEALTHCHECK, `ssenode -healthcheck`: exit 0 only for a 200
// from /healthz on HTTP_ADDR, with a wildcard host probed through loopback.
func TestHealthcheck(t *testing.T) {
	ok := healthServer(t, http.StatusOK)
	_, okPort, _ := net.SplitHostPort(ok)
	failing := healthServer(t, http.StatusServiceUnavailable)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now

	tests := []struct {
		name     string
		args     []string
		httpAddr string
		want     string // "" for success, else part of the error
	}{
		{"ok", []string{"-healthcheck"}, ok, ""},
		{"wildcard host", []string{"-healthcheck"}, ":" + okPort, ""},
		{"unspecified v4", []string{"-healthcheck"}, "0.0.0.0:" + okPort, ""},
		{"flag addr wins", []string{"-healthcheck", "-http-addr", ok}, closed, ""},
		{"not 200", []string{"-healthcheck"}, failing, "503"},
		{"nothing listening", []string{"-healthcheck"}, closed, "healthcheck"},
		{"bad addr", []string{"-healthcheck"}, "no-port", "http addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, env(map[string]string{"HTTP_ADDR": tt.httpAddr}), &out, nil)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("run = %v, want success", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("run = %v, want an error containing %q", err, tt.want)
			}
			if out.Len() > 0 {
				t.Errorf("the probe logged %q; it only returns its error", out.String())
			}
		})
	}
}

// HEALTHCHECK in the environment does not turn a node into a probe.
func TestHealthcheckNotFromEnv(t *testing.T) {
	o, err := parse(nil, env(map[string]string{"HEALTHCHECK": "true"}), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if o.healthcheck {
		t.Fatal("HEALTHCHECK=true in the environment set the probe mode")
	}
}
