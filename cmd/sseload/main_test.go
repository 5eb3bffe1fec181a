package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/loadtest"
)

func TestParseEnvFallback(t *testing.T) {
	env := map[string]string{"SSELOAD_CONNS": "7", "SSELOAD_RATE": "2.5", "SSELOAD_TARGET": "http://env:1"}
	o, err := parse([]string{"fanout", "--target", "http://flag:2", "-source-ips", "3"}, func(k string) string { return env[k] }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Subs != 7 || o.cfg.Rate != 2.5 || o.cfg.URL != "http://flag:2" || len(o.cfg.SourceAddrs) != 3 {
		t.Errorf("subs %d rate %g url %s source addrs %v: want 7, 2.5, the flag's url, 3", o.cfg.Subs, o.cfg.Rate, o.cfg.URL, o.cfg.SourceAddrs)
	}
}

// TestScenarios: each scenario's preset, refined by flags, and the values
// that depend on several flags.
func TestScenarios(t *testing.T) {
	noenv := func(string) string { return "" }
	tests := []struct {
		args  []string
		check func(c loadtest.Config) bool
	}{
		{[]string{"capacity", "--conns", "100"}, func(c loadtest.Config) bool {
			return c.Idle && c.Subs == 100 && c.Topics == 1 && c.Workers == 1 && c.Scenario == "capacity"
		}},
		{[]string{"fanout", "--rate", "50"}, func(c loadtest.Config) bool {
			return !c.Idle && c.Topics == 1 && c.Rate == 50 && c.Subs == 5000
		}},
		{[]string{"topics", "--conns", "300"}, func(c loadtest.Config) bool { return c.Topics == 300 && c.Subs == 300 }},
		{[]string{"topics", "--conns", "300", "--topics", "30"}, func(c loadtest.Config) bool { return c.Topics == 30 }},
		{[]string{"run", "--topics", "1000", "--topics-per-stream", "8", "--publish-retry", "30s"}, func(c loadtest.Config) bool {
			return c.Topics == 1000 && c.TopicsPerStream == 8 && c.PublishRetry == 30*time.Second
		}},
		{[]string{"storm", "--storm-signal", "KILL", "--storm-pid", "4242", "--duration", "30s"}, func(c loadtest.Config) bool {
			return c.Reconnect && c.Storm.At == 10*time.Second && c.Storm.PID == 4242
		}},
		{[]string{"run", "--conns", "40000", "--target", "http://127.0.0.1:8080"}, func(c loadtest.Config) bool {
			return c.Workers == 3 && len(c.SourceAddrs) == 3 // 18k streams per worker, 20k per source address
		}},
		{[]string{"run", "--conns", "40000", "--target", "http://10.1.2.3:8080"}, func(c loadtest.Config) bool {
			return c.Workers == 3 && len(c.SourceAddrs) == 0 // not loopback: the kernel's choice
		}},
		{[]string{"run", "--node-pid", "12, 34"}, func(c loadtest.Config) bool { return slices.Equal(c.NodePIDs, []int{12, 34}) }},
	}
	for _, tc := range tests {
		o, err := parse(tc.args, noenv, new(bytes.Buffer))
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !tc.check(o.cfg) {
			t.Errorf("%q: config %+v", tc.args, o.cfg)
		}
	}
}

func TestBadInput(t *testing.T) {
	noenv := func(string) string { return "" }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no scenario", nil, "missing scenario"},
		{"flag first", []string{"--conns", "3"}, "the scenario comes first"},
		{"unknown scenario", []string{"nope"}, "unknown scenario"},
		{"unknown flag", []string{"run", "-nope"}, "flag provided but not defined"},
		{"bad env", []string{"run"}, "environment SSELOAD_CONNS"},
		{"unbounded", []string{"run", "-duration", "0"}, "set a count or a duration"},
		{"bad url", []string{"run", "--target", "ftp://x"}, "must be http://host"},
		{"too many source ips", []string{"run", "-source-ips", "300"}, "out of range"},
		{"storm without fault", []string{"storm"}, "needs a fault"},
		{"storm bad signal", []string{"storm", "--storm-signal", "USR9", "--storm-pid", "99"}, "not one of"},
		{"storm late", []string{"storm", "--storm-cmd", "true", "--storm-at", "1m", "--duration", "10s"}, "within the duration"},
		{"bad pid", []string{"run", "--node-pid", "x"}, "not a pid"},
		{"events url without topic", []string{"run", "--events-url", "http://127.0.0.1:1/sse", "--topics", "2"}, "no {topic}"},
		{"generic batch", []string{"run", "--publish-url", "http://127.0.0.1:1/p", "--batch", "5"}, "one event per request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := noenv
			if tc.name == "bad env" {
				getenv = func(k string) string {
					if k == "SSELOAD_CONNS" {
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
	for _, h := range [][]string{{"-h"}, {"fanout", "-h"}} {
		var help bytes.Buffer
		if err := run(context.Background(), h, noenv, nil, new(bytes.Buffer), &help); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: %v, want flag.ErrHelp", h, err)
		}
		if !strings.Contains(help.String(), "Scenarios:") || !strings.Contains(help.String(), "-storm-cmd") {
			t.Errorf("%q: help lacks the scenarios or the flags:\n%s", h, help.String())
		}
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
	err = run(context.Background(), []string{"run", "--target", "http://" + ln.Addr().String(), "--conns", "3", "-rate", "100", "-duration", "1m", "-progress", "0"},
		func(string) string { return "" }, nil, &out, new(bytes.Buffer))
	if !errors.Is(err, loadtest.ErrNoStreams) {
		t.Errorf("error %v, want ErrNoStreams", err)
	}
	if !strings.Contains(out.String(), "established 0") || strings.Contains(out.String(), "publish    scheduled") && !strings.Contains(out.String(), "requests 0") {
		t.Errorf("report shows streams or publishing:\n%s", out.String())
	}
}
