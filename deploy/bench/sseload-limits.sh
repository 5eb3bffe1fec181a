#!/usr/bin/env bash
# How much one sseload worker process can receive before the load generator,
# not the target, is the bottleneck. One standalone node (in-memory broker,
# the cheapest target there is) and one sseload process share the machine;
# sseload holds CONNS streams on one topic and the publisher steps through
# RATES events/s (deliveries/s = rate x CONNS), DURATION each, a fresh node
# per step. Per step it prints what was asked and what arrived, the latency,
# and where the CPU went: sseload's CPU per million received events and its
# share of the machine's cores (from its own report), the node's CPU (from
# --node-pid). The step where delivered/s stops following expected/s, or the
# latency runs away, is the limit; the CPU split says whose.
#
#   deploy/bench/sseload-limits.sh            (OUT=DIR to keep the reports)
#
# Environment knobs (defaults): CONNS=1000 RATES="50 100 200 400 800"
# DURATION=15s BATCH=1 (events per POST: beyond ~2,000 single-event POSTs/s
# the node's publish path, not sseload, is the limit; raise BATCH to go on). Needs go and jq. Loopback only; every step is bounded by
# DURATION (plus ramp and drain).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/ssecluster-limits.XXXXXX)}
CONNS=${CONNS:-1000}
RATES=${RATES:-50 100 200 400 800}
DURATION=${DURATION:-15s}
BATCH=${BATCH:-1}
mkdir -p "$OUT/bin"
(cd "$ROOT" && go build -o "$OUT/bin/ssenode" ./cmd/ssenode && go build -o "$OUT/bin/sseload" ./cmd/sseload)

NODE=""
cleanup() { [[ -z "$NODE" ]] || kill "$NODE" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

printf 'rate\texpected_per_s\tdelivered_per_s\tloss\tp50_ms\tp99_ms\tsseload_cpu_s_per_million\tsseload_share_of_cores\tnode_cpu_s_per_million\n'
for rate in $RATES; do
	HTTP_ADDR=127.0.0.1:18580 ADMIN_ADDR=127.0.0.1:19580 LOG_LEVEL=warn \
		"$OUT/bin/ssenode" 2>"$OUT/node-$rate.log" &
	NODE=$!
	for _ in $(seq 50); do curl -sf http://127.0.0.1:18580/readyz >/dev/null && break; sleep 0.1; done
	"$OUT/bin/sseload" fanout --target http://127.0.0.1:18580 --conns "$CONNS" --rate "$rate" \
		--duration "$DURATION" --batch "$BATCH" --warmup 2s --ramp 2000 --publish-conns 8 --node-pid "$NODE" \
		--json "$OUT/fanout-$rate.json" >"$OUT/fanout-$rate.txt" 2>&1 || true
	kill "$NODE"
	wait "$NODE" 2>/dev/null || true
	NODE=""
	jq -r --arg rate "$rate" --argjson conns "$CONNS" '
		def r(x): (x * 100 | round) / 100;
		[$rate,
		 (.publish.rate_per_sec * $conns | round),
		 (.delivery.per_sec | round),
		 .delivery.loss,
		 r(.latency.p50_us / 1000), r(.latency.p99_us / 1000),
		 r(.self.cpu_seconds / .delivery.delivered * 1e6),
		 r(.self.cpu_seconds / .elapsed_s / .self.machine_cores),
		 r(.nodes.cpu_s_per_million_delivered // 0)] | @tsv' "$OUT/fanout-$rate.json"
done
echo "reports: $OUT" >&2
