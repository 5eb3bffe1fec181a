#!/usr/bin/env bash
# What authorization costs a node at connect time: one standalone node
# takes STREAMS new streams at RAMP per second, three times: open (no
# JWT), HS256 (JWT_SECRET) and ES256 (JWT_PUBLIC_KEY_FILE), every stream
# with the same token in its Authorization header. sseload reports the
# connect times (time to the response head); the node's CPU seconds over
# the whole run (connects included) are read from /proc. The difference
# between the runs is the token checks (parse, signature, patterns) and
# nothing else.
#
#   deploy/bench/auth-cost.sh            (OUT=DIR to keep the reports)
#
# Environment knobs (defaults): STREAMS=6000 RAMP=1500 HOLD=3s.
# Needs go, openssl and jq.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/ssecluster-auth.XXXXXX)}
STREAMS=${STREAMS:-6000}
RAMP=${RAMP:-1500}
HOLD=${HOLD:-3s}
mkdir -p "$OUT/bin"
(cd "$ROOT" && go build -o "$OUT/bin/ssenode" ./cmd/ssenode && go build -o "$OUT/bin/sseload" ./cmd/sseload)

secret=$(head -c 32 /dev/urandom | base64)
openssl ecparam -name prime256v1 -genkey -noout -out "$OUT/es256.pem" 2>/dev/null
openssl ec -in "$OUT/es256.pem" -pubout -out "$OUT/es256.pub.pem" 2>/dev/null

NODE=""
cleanup() { [[ -z "$NODE" ]] || kill "$NODE" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# cpu_ticks PID: utime + stime of a process, in clock ticks (1/100 s).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run NAME TOKEN ENV...: one capacity run against a fresh node started with ENV.
run() {
	local name=$1 token=$2
	shift 2
	env "$@" HTTP_ADDR=127.0.0.1:18480 ADMIN_ADDR=127.0.0.1:19480 LOG_LEVEL=warn ADMIT_RATE=-1 \
		"$OUT/bin/ssenode" 2>"$OUT/$name-node.log" &
	NODE=$!
	for _ in $(seq 50); do curl -sf http://127.0.0.1:18480/readyz >/dev/null && break; sleep 0.1; done
	local cpu0 cpu1
	cpu0=$(cpu_ticks "$NODE")
	SSELOAD_SUBSCRIBE_TOKEN=$token "$OUT/bin/sseload" capacity --target http://127.0.0.1:18480 \
		--conns "$STREAMS" --ramp "$RAMP" --duration "$HOLD" --topics 100 \
		--json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1
	cpu1=$(cpu_ticks "$NODE")
	kill "$NODE"
	wait "$NODE" 2>/dev/null || true
	NODE=""
	jq -r --arg n "$name" '[$n, .connect.ok, .connect.failed,
		(.connect.time_to_headers.p50_us/1000|tostring), (.connect.time_to_headers.p99_us/1000|tostring),
		((($cpu|tonumber)/100)|tostring)] | @tsv' --arg cpu "$((cpu1 - cpu0))" "$OUT/$name.json"
}

printf 'run\tok\tfailed\thead_p50_ms\thead_p99_ms\tnode_cpu_s\n'
run open ""
run hs256 "$(JWT_SECRET=$secret "$OUT/bin/ssenode" token -subscribe '*' -ttl 1h)" JWT_SECRET="$secret"
run es256 "$("$OUT/bin/ssenode" token -subscribe '*' -ttl 1h -private-key-file "$OUT/es256.pem")" JWT_PUBLIC_KEY_FILE="$OUT/es256.pub.pem"
echo "reports: $OUT" >&2
