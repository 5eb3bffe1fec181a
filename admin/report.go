package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// getNode answers GET /admin/v1/node: this node's report.
func (s *Server) getNode(c echo.Context) error {
	return c.JSON(http.StatusOK, s.node.Report(s.now()))
}

// nodesResponse is the answer of GET /admin/v1/nodes.
type nodesResponse struct {
	// Nodes are the reports of every live node, sorted by node id: this
	// node's as of now, the others' as they last published them.
	Nodes []json.RawMessage `json:"nodes"`
	// Cluster are the totals over Nodes.
	Cluster clusterView `json:"cluster"`
}

// getNodes answers GET /admin/v1/nodes: every live node's report and the
// cluster's totals. This node's own figures are taken now, not from the
// registry, so a node always sees itself, even before its first publish.
func (s *Server) getNodes(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RegistryTimeout)
	defer cancel()
	entries, err := s.reg.Nodes(ctx)
	if err != nil {
		return s.registryError(err)
	}
	self, err := s.selfEntry(s.now())
	if err != nil {
		return err
	}
	all := make([]Entry, 0, len(entries)+1)
	all = append(all, self)
	for _, e := range entries {
		if e.NodeID != s.nodeID {
			all = append(all, e)
		}
	}
	sortEntries(all)
	resp := nodesResponse{Nodes: make([]json.RawMessage, len(all)), Cluster: s.cluster(all)}
	for i, e := range all {
		resp.Nodes[i] = e.Report
	}
	return c.JSON(http.StatusOK, resp)
}

// selfEntry is this node's entry at now, without topics.
func (s *Server) selfEntry(now time.Time) (Entry, error) {
	rep, err := json.Marshal(s.node.Report(now))
	if err != nil {
		return Entry{}, err
	}
	md, err := json.Marshal(s.node.MergeData(now))
	if err != nil {
		return Entry{}, err
	}
	return Entry{NodeID: s.nodeID, Report: rep, Merge: md}, nil
}

// registryError turns a registry failure into the answer: 503 when it is
// unreachable (or too slow), else our fault.
func (s *Server) registryError(err error) error {
	if errors.Is(err, ErrRegistryUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("admin registry unreachable", "err", err)
		return errorf(http.StatusServiceUnavailable, "registry_unavailable",
			"the cluster registry (Redis) is unreachable; this node's own report is at /admin/v1/node")
	}
	return err
}
