package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// AdminStats is what an ssecluster target's admin API reported about
// itself (GET /admin/v1/nodes) at the start and at the end of the run, to
// print the nodes' own push-latency and survival figures beside the load
// generator's. A side that could not be read has its error instead.
type AdminStats struct {
	URL        string         `json:"url"`
	Start      *AdminSnapshot `json:"start,omitempty"`
	End        *AdminSnapshot `json:"end,omitempty"`
	StartError string         `json:"start_error,omitempty"`
	EndError   string         `json:"end_error,omitempty"`
}

// AdminSnapshot is the part of GET /admin/v1/nodes the load generator
// reads: each node's and the cluster's connections, push latency and
// survival. Fields the target does not report stay empty.
type AdminSnapshot struct {
	Nodes   []AdminNode `json:"nodes"`
	Cluster AdminNode   `json:"cluster"`
}

// AdminNode is one node's (or the cluster's) figures.
type AdminNode struct {
	NodeID      string `json:"node_id,omitempty"`
	Draining    bool   `json:"draining,omitempty"`
	Connections struct {
		Current int64 `json:"current"`
		Opened  int64 `json:"opened"`
	} `json:"connections"`
	PushLatency struct {
		Last1m     *AdminLatency `json:"last_1m,omitempty"`
		SinceStart *AdminLatency `json:"since_start,omitempty"`
	} `json:"push_latency"`
	Survival struct {
		Opened       int64              `json:"opened"`
		Failed       int64              `json:"failed"`
		FailureRatio float64            `json:"failure_ratio"`
		S            map[string]float64 `json:"s,omitempty"` // S(t) at "10s", "1m", ...
	} `json:"survival"`
}

// AdminLatency is a latency summary in microseconds.
type AdminLatency struct {
	Count  int64 `json:"count"`
	P50Us  int64 `json:"p50_us"`
	P90Us  int64 `json:"p90_us"`
	P99Us  int64 `json:"p99_us"`
	P999Us int64 `json:"p999_us"`
	MaxUs  int64 `json:"max_us"`
}

// adminTimeout bounds one admin request.
const adminTimeout = 5 * time.Second

// AdminSettle is the wait before the end snapshot: longer than the
// registry's report interval (2 s by default).
const AdminSettle = 3 * time.Second

// fetchAdmin reads GET <base>/admin/v1/nodes.
func fetchAdmin(ctx context.Context, base, token string) (*AdminSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/admin/v1/nodes", nil)
	if err != nil {
		return nil, fmt.Errorf("admin request: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("admin answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /admin/v1/nodes: HTTP %d", resp.StatusCode)
	}
	var snap AdminSnapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		return nil, fmt.Errorf("GET /admin/v1/nodes: %w", err)
	}
	return &snap, nil
}

// adminProbe takes the start and end snapshots of a run.
type adminProbe struct {
	token string
	st    AdminStats
}

func newAdminProbe(ctx context.Context, base, token string) *adminProbe {
	if base == "" {
		return nil
	}
	a := &adminProbe{token: token, st: AdminStats{URL: base}}
	var err error
	if a.st.Start, err = fetchAdmin(ctx, base, token); err != nil {
		a.st.StartError = err.Error()
	}
	return a
}

func (a *adminProbe) end(ctx context.Context) *AdminStats {
	if a == nil {
		return nil
	}
	// Nodes publish their reports to the cluster registry every few
	// seconds: wait for the last deliveries to reach every node's entry.
	sleepUntil(context.WithoutCancel(ctx), time.Now().Add(AdminSettle))
	var err error
	// The run's context may be over (interrupted); the end snapshot is
	// still worth its few seconds.
	if a.st.End, err = fetchAdmin(context.WithoutCancel(ctx), a.st.URL, a.token); err != nil {
		a.st.EndError = err.Error()
	}
	return &a.st
}

// writeText adds the admin API lines of a report: the nodes' own figures
// at the end of the run.
func (a *AdminStats) writeText(f func(string, ...any)) {
	if a.End == nil {
		why := a.EndError
		if why == "" {
			why = "no answer"
		}
		f("admin      not measured: %s\n", why)
		return
	}
	row := func(name string, n *AdminNode) {
		f("           %-10s conns %d  push latency", name, n.Connections.Current)
		if l := n.PushLatency.SinceStart; l != nil && l.Count > 0 {
			f(" p50 %.3fms p90 %.3fms p99 %.3fms p99.9 %.3fms max %.3fms (n=%d)",
				float64(l.P50Us)/1e3, float64(l.P90Us)/1e3, float64(l.P99Us)/1e3, float64(l.P999Us)/1e3, float64(l.MaxUs)/1e3, l.Count)
		} else {
			f(" not reported")
		}
		f("  failed/opened %d/%d", n.Survival.Failed, n.Survival.Opened)
		if s, ok := n.Survival.S["1m"]; ok {
			f("  S(1m) %.4f", s)
		}
		f("\n")
	}
	f("admin      the target's own figures (GET /admin/v1/nodes at the end):\n")
	for i := range a.End.Nodes {
		row(a.End.Nodes[i].NodeID, &a.End.Nodes[i])
	}
	row("cluster", &a.End.Cluster)
}
