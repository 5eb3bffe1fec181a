// Package clustertest starts local ssecluster clusters for tests: it runs
// deploy/cluster/cluster.sh, which starts real redis-server, ssenode and
// HAProxy processes on free loopback ports, and stops them when the test
// ends. Redis is one redis-server, or with the start options --sentinel and
// --redis-cluster a Sentinel group or a Redis Cluster, whose failovers
// cluster.sh drives (kill-redis-master, pause-replicas, ...; Cluster.Output
// returns the ports these commands print). It is used by the tests of
// cmd/sseload and deploy/faults; nothing else imports it.
//
// What cluster.sh needs must be installed: redis-server, redis-cli and
// haproxy (apt-get install -y redis-server haproxy; .ci/test.sh does it),
// bash, curl, ss. Tests that call Start skip nothing: a missing tool fails
// them, as a missing redis-server fails the broker tests.
//
// A Cluster starts no goroutines: every process belongs to cluster.sh,
// which Cleanup (cluster.sh stop) ends, thawing frozen ones first.
package clustertest
