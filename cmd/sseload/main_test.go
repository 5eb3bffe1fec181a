package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"strings"
	"testing"

	"github.com/ssecluster/ssecluster/loadtest"
)

func TestParseEnvFallback(t *testing.T) {
	env := map[string]string{"SSELOAD_SUBS": "7", "SSELOAD_RATE": "2.5", "SSELOAD_URL": "http://env:1"}
	o, err := parse([]string{"-url", "http://flag:2", "-source-ips", "3"}, func(k string) string { return env[k] }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Subs != 7 || o.cfg.Rate != 2.5 || o.cfg.URL != "http://flag:2" || len(o.cfg.SourceAddrs) != 3 {
		t.Errorf("subs %d rate %g url %s source addrs %v: want 7, 2.5, the flag's url, 3", o.cfg.Subs, o.cfg.Rate, o.cfg.URL, o.cfg.SourceAddrs)
	}
}

func TestBadInput(t *testing.T) {
	noenv := func(string) string { return "" }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
		{"bad env", []string{}, "environment SSELOAD_SUBS"},
		{"unbounded", []string{"-duration", "0"}, "set a count or a duration"},
		{"bad url", []string{"-url", "ftp://x"}, "must be http://host:port"},
		{"too many source ips", []string{"-source-ips", "300"}, "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := noenv
			if tc.name == "bad env" {
				getenv = func(k string) string {
					if k == "SSELOAD_SUBS" {
						return "many"
					}
					return ""
				}
			}
			err := run(context.Background(), tc.args, getenv, nil, new(bytes.Buffer), new(bytes.Buffer))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
	if err := run(context.Background(), []string{"-h"}, noenv, nil, new(bytes.Buffer), new(bytes.Buffer)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// TestUnreachableTarget: a target that refuses every stream gives an error
// that says so, and nothing is published. The listener stays open and
// resets each connection (SO_LINGER 0), so no other test can take the port
// meanwhile, as it could if the port were simply closed.
func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*net.TCPConn).SetLinger(0)
			_ = c.Close()
		}
	}()
	var out bytes.Buffer
	err = run(context.Background(), []string{"-url", "http://" + ln.Addr().String(), "-subs", "3", "-rate", "100", "-duration", "1m", "-progress", "0"},
		func(string) string { return "" }, nil, &out, new(bytes.Buffer))
	if !errors.Is(err, loadtest.ErrNoStreams) {
		t.Errorf("error %v, want ErrNoStreams", err)
	}
	if !strings.Contains(out.String(), "established 0") || strings.Contains(out.String(), "publish    scheduled") && !strings.Contains(out.String(), "requests 0") {
		t.Errorf("report shows streams or publishing:\n%s", out.String())
	}
}
