// Package admin is a node's admin API: a separate HTTP listener
// (ADMIN_ADDR, default :9090), never exposed through the public load
// balancer, that reports on the node and the cluster and lets an operator
// drain nodes and kick streams. The OpenAPI 3 document (openapi.json,
// served at /admin/v1/openapi.json) is the contract; the README has
// examples.
//
//	GET    /admin/v1/node                 this node's report (node.Report)
//	GET    /admin/v1/nodes                every live node's report + cluster totals
//	POST   /admin/v1/drain                drain this node                      202
//	POST   /admin/v1/nodes/{id}/drain     drain any live node (through Redis)  202
//	GET    /admin/v1/topics               topics, local and cluster subscribers, paged
//	GET    /admin/v1/topics/{topic}       one topic (node.TopicDetail)
//	GET    /admin/v1/connections          this node's streams, paged
//	DELETE /admin/v1/connections/{id}     close one stream (reason kicked)
//	GET    /admin/v1/openapi.json         the OpenAPI document
//	GET    /metrics                       Prometheus (a registry per Server)
//	GET    /debug/pprof/...               net/http/pprof
//	GET    /admin/                        the dashboard (dashboard.go), the only route without the token
//
// Every other request needs "Authorization: Bearer <token>" (compared in
// constant time); without a configured token the listener binds 127.0.0.1
// only. Errors are {"error":{"code","message"}}, as on the public API.
//
// # Cluster view
//
// Every node publishes its report, its mergeable figures (latency
// histograms, survival bins: node.MergeData) and its most subscribed topics
// to a Registry every Config.Interval, with an expiry of Config.TTL, and
// takes the commands other nodes queued for it every Config.CommandPoll.
// Any node answers for the cluster from the registry; a node that stops
// publishing drops out within TTL, one that stops cleanly at once.
// RedisRegistry (keys under the hash tag {<prefix>:admin}, see its doc)
// serves a cluster, LocalRegistry a standalone node. The registry is an
// admin concern, so this package has its own go-redis client: the one
// place above package pubsub that talks to Redis.
//
// Cluster figures are exact: counters are summed, and push latency and
// survival are computed from the nodes' merged histograms and bins, never
// averaged.
//
// It does not measure anything itself: the node does (node/report.go),
// and this package reads it through the Node interface.
//
// # Goroutines
//
//	goroutine            owner          stops on                      waited by
//	HTTP serve loop      Server.Serve   Serve's ctx (Shutdown, 5 s)   Server.Serve
//	request handlers     net/http       the request                   http.Server.Shutdown
//	registry loop        Server.Serve   Serve's ctx                   Server.Serve
//
// Nothing else starts goroutines; New starts nothing.
package admin
