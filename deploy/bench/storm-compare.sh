#!/usr/bin/env bash
# The reconnect-storm benchmark of the client policies: a 3-node cluster
# behind HAProxy holds STREAMS streams; one node is killed with SIGKILL a
# third of the way into a publishing run; sseload's storm scenario reports
# how long until every stream is back and whether each resume was exact,
# and the peak connect rate the survivors took (100 ms timeline). It runs
# twice, with the same admission limit on every node:
#
#   jittered  the default policy: retry hints drawn from [0, base*2^attempt]
#   fixed     RETRY_NO_JITTER=1 with base = cap: every client the same hint
#
#   deploy/bench/storm-compare.sh            (OUT=DIR to keep the reports)
#
# Environment knobs (defaults): STREAMS=6000 RATE=50 DURATION=30s
# ADMIT_RATE=500 ADMIT_BURST=250 (per node) BASE=1s CAP=60s FIXED=1s.
# Needs go, redis-server, haproxy, curl, jq (see deploy/cluster/cluster.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/ssecluster-storm.XXXXXX)}
STREAMS=${STREAMS:-6000}
RATE=${RATE:-50}
DURATION=${DURATION:-30s}
export ADMIT_RATE=${ADMIT_RATE:-500} ADMIT_BURST=${ADMIT_BURST:-250} LOG_LEVEL=warn DRAIN_WINDOW=2s
mkdir -p "$OUT/bin"
(cd "$ROOT" && go build -o "$OUT/bin/ssenode" ./cmd/ssenode && go build -o "$OUT/bin/sseload" ./cmd/sseload)

DIR=""
cleanup() { [[ -z "$DIR" ]] || "$ROOT/deploy/cluster/cluster.sh" stop -d "$DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

# run NAME ENV...: one storm on a fresh cluster started with ENV.
run() {
	local name=$1
	shift
	DIR="$OUT/$name-cluster"
	env "$@" BIN="$OUT/bin/ssenode" "$ROOT/deploy/cluster/cluster.sh" start -n 3 -d "$DIR" >"$OUT/$name-cluster.log" 2>&1
	# shellcheck disable=SC1091
	. "$DIR/cluster.env"
	"$OUT/bin/sseload" storm --target "$LB_URL" --conns "$STREAMS" --topics 10 --rate "$RATE" \
		--duration "$DURATION" --warmup 3s --ramp 1000 --publish-conns 8 \
		--storm-cmd "$ROOT/deploy/cluster/cluster.sh kill-node 1 -d $DIR" \
		--json "$OUT/$name.json" --html "$OUT/$name.html" --progress 0 >"$OUT/$name.txt" 2>"$OUT/$name.err" || true
	"$ROOT/deploy/cluster/cluster.sh" stop -d "$DIR" >/dev/null 2>&1 || true
	DIR=""
	jq -r --arg n "$name" '[$n,
		(.storm.wave_s|tostring), (.reconnects.resumed|tostring),
		(.reconnects.outcomes|tostring), (.connect.peak_attempts_per_sec|floor|tostring),
		(.connect.attempts|tostring), ((.streams.drops.shed // 0)|tostring), (.connect.failed|tostring),
		((.reconnects.time_to_resume.p50_us/1000)|tostring), ((.reconnects.time_to_resume.p99_us/1000)|tostring),
		(.delivery.loss|tostring), (.delivery.duplicates|tostring), "\(.streams.alive_at_end)/\(.connect.established)"] | join(" | ")' \
		"$OUT/$name.json" | tee -a "$OUT/summary.txt"
}

echo "policy | wave s | resumed | outcomes | peak attempts/s | attempts | shed | failed | resume p50 ms | resume p99 ms | loss | dups | alive" | tee "$OUT/summary.txt"
run jittered RETRY_BASE="${BASE:-1s}" RETRY_CAP="${CAP:-60s}"
run fixed RETRY_NO_JITTER=1 RETRY_BASE="${FIXED:-1s}" RETRY_CAP="${FIXED:-1s}"
echo "reports in $OUT" >&2
