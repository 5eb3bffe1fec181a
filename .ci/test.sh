#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need
# when it is missing (redis-server, which brings redis-cli, and
# redis-sentinel for pubsubtest's Cluster and Sentinel helpers, haproxy,
# chromium for the admin dashboard's browser test, docker-compose and
# promtool for the deployment files' tests), then runs vet, gofmt, the race
# tests and short fuzz runs. Tests start their own servers on free loopback
# ports; nothing here relies on a service started by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The deployment tests (deploy/): docker-compose validates
# docker-compose.yml without an engine, promtool (Debian's prometheus
# package) the Prometheus configuration and the dashboard's queries.
# Installed without recommends: docker-compose's would bring the Docker
# engine.
lean=()
command -v docker-compose >/dev/null 2>&1 || lean+=(docker-compose)
command -v promtool >/dev/null 2>&1 || lean+=(prometheus)
if [ $((${#missing[@]} + ${#lean[@]})) -gt 0 ]; then
	echo "installing: ${missing[*]} ${lean[*]}"
	if [ "$(id -u)" -eq 0 ]; then
		sudo=()
	elif command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		echo "missing ${missing[*]} ${lean[*]}: run as root or install them (apt-get install -y ${missing[*]} ${lean[*]})" >&2
		exit 1
	fi
	"${sudo[@]}" apt-get update -qq
	if [ ${#missing[@]} -gt 0 ]; then
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
	if [ ${#lean[@]} -gt 0 ]; then
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
	fi
fi

echo "== go vet"
go vet ./...
echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "== go test -race"
go test -race -count=1 -timeout 15m ./...
echo "== fuzz (short)"
# Budgets are execution counts (about 10 s each here), not -fuzztime 10s: a
# duration races Go's fuzz coordinator at the deadline and can fail with a
# bare "context deadline exceeded" and no finding (golang/go#75804, fixed
# in Go 1.27). FUZZ_SCALE multiplies every budget for longer runs.
fuzz() { go test -run '^$' -fuzz "^$1\$" -fuzztime "$(($3 * ${FUZZ_SCALE:-1}))x" "$2"; }
fuzz FuzzEncodeRoundTrip ./node/sse 200000
fuzz FuzzParse ./node/sse 100000
fuzz FuzzDecode ./node/sse 100000
fuzz FuzzCursor ./pubsub 200000
fuzz FuzzCookieDecode ./node/retry 800000
fuzz FuzzChunkDecoder ./loadtest 100000
fuzz FuzzVerify ./node/auth 100000
echo "== all tests passed"
