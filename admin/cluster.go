package admin

import (
	"encoding/json"

	"github.com/ssecluster/ssecluster/node"
	"github.com/ssecluster/ssecluster/node/latency"
	"github.com/ssecluster/ssecluster/node/survival"
)

// clusterView is the "cluster" object of GET /admin/v1/nodes: totals over
// the listed nodes.
type clusterView struct {
	// Nodes counts the nodes whose figures are in the totals: every node
	// listed, but one whose entry does not decode (logged).
	Nodes       int              `json:"nodes"`
	Connections node.ConnCounts  `json:"connections"` // sums
	PushLatency latency.Windows  `json:"push_latency"`
	Survival    survival.Summary `json:"survival"`
	Deliveries  int64            `json:"deliveries"`
	Published   int64            `json:"published"`
}

// cluster computes the totals of entries: counters are summed, push
// latency and survival are merged from the nodes' histograms and bins
// (bucket by bucket, bin by bin), never averaged. Reports are decoded from
// their JSON, the documented contract: a node of another version that
// lacks a field adds zero, one with a field this version does not know (a
// new close reason) still adds its counts. An entry that does not decode
// is left out of the totals (and logged), not allowed to fail the answer.
func (s *Server) cluster(entries []Entry) clusterView {
	cv := clusterView{Connections: node.ConnCounts{Closed: map[string]int64{}, Refused: map[string]int64{}}}
	snaps := make([]latency.Snapshot, 0, len(entries))
	bins := make([]survival.Bins, 0, len(entries))
	for _, e := range entries {
		var r node.Report
		var md node.MergeData
		err := json.Unmarshal(e.Report, &r)
		if err == nil {
			err = json.Unmarshal(e.Merge, &md)
		}
		var snap latency.Snapshot
		if err == nil {
			snap, err = md.PushLatency.Decode()
		}
		if err != nil {
			s.log.Warn("a node's entry does not decode; left out of the cluster totals", "peer", e.NodeID, "err", err)
			continue
		}
		cv.Nodes++
		c := &cv.Connections
		c.Current += r.Connections.Current
		c.Opened += r.Connections.Opened
		for k, v := range r.Connections.Closed {
			c.Closed[k] += v
		}
		for k, v := range r.Connections.Refused {
			c.Refused[k] += v
		}
		cv.Deliveries += r.Deliveries
		cv.Published += r.Published
		snaps = append(snaps, snap)
		bins = append(bins, md.Survival)
	}
	cv.PushLatency = latency.Merge(snaps...).Windows()
	cv.Survival = survival.Merge(bins...).Summary(nil)
	return cv
}
