// Package deploy holds no code. Its tests check the deployment files
// against the code they deploy, without a container engine:
//
//   - Dockerfile: builds ./cmd/ssenode statically (the tests run the same
//     build command), runs as non-root, probes /healthz with the binary's
//     -healthcheck mode, stops with SIGTERM.
//   - docker-compose.yml: Redis with an append-only file on a named volume,
//     nodes with no published ports, HAProxy configured from the one
//     template (deploy/haproxy), rendered and checked with `haproxy -c`,
//     the monitoring profile; validated by `docker-compose config` or
//     `docker compose config` when one is installed.
//   - redis/: compose override files for a Sentinel group (master, two
//     replicas, three sentinels) and a Redis Cluster (six servers and a
//     one-shot init), merged with docker-compose.yml and validated the same
//     way; their init and sentinel scripts run against real redis-server
//     processes.
//   - prometheus/, grafana/: promtool checks the configuration and the
//     dashboard's queries, whose metric and label names must be ones a
//     real node's /metrics serves.
//
// Tests that build or run ssenode are skipped with -short; those that need
// haproxy, promtool or a compose CLI are skipped when it is not installed
// (.ci/test.sh installs them).
package deploy
