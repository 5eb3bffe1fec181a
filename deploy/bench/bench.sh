#!/usr/bin/env bash
# Benchmarks of issue 2, measured with sseload on this machine.
#
#   deploy/bench/bench.sh [scenario ...]
#
# Scenarios (default: all, in this order):
#   idle-redis    idle streams on one node with Redis: 1,000 then 10,000 (RSS per stream)
#   idle-memory   the same on a standalone node (in-memory broker)
#   fanout        5,000 streams on one topic, 10 events/s for 60 s (CPU per million deliveries, latency)
#   topics        5,000 topics with one stream each, 3,000 events/s for 30 s (latency, Redis CPU per event)
#
# Each scenario starts its own redis-server (free port, no persistence) and
# its own ssenode (built from ./cmd/ssenode, default heartbeat), runs
# sseload, samples CPU (utime+stime of /proc/PID/stat, CPU-seconds) of the
# node and of redis-server and the node's RSS (VmRSS), prints the figures,
# and stops everything it started. Everything listens on 127.0.0.1 only.
#
# Environment:
#   OUT=DIR        where JSON reports, logs and profiles go (default: a new temp dir)
#   PROFILE=1      also take a 20 s CPU profile of the node during fanout and
#                  topics (the node is built with net/http/pprof added through
#                  a build overlay; the repository is not changed)
#   FANOUT_DURATION, TOPICS_DURATION, IDLE_HOLD   override the run lengths
#
# Needs: go, redis-server, redis-cli, curl, jq. The load generator runs on
# the same 2 cores as the node and Redis; nothing is pinned.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/ssecluster-bench.XXXXXX)}
mkdir -p "$OUT"
BIN="$OUT/bin"
mkdir -p "$BIN"
CLK=$(getconf CLK_TCK)
FANOUT_DURATION=${FANOUT_DURATION:-60s}
TOPICS_DURATION=${TOPICS_DURATION:-30s}
IDLE_HOLD=${IDLE_HOLD:-25s}
SETTLE=${SETTLE:-10}  # seconds between "all streams up" and the RSS sample (covers a heartbeat sweep)

for tool in go redis-server redis-cli curl jq; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

PIDS=()
# cleanup stops what this script started, newest first (load, node, then
# Redis, so the node does not log a lost Redis while it stops).
cleanup() {
	local i pid
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
}
trap cleanup EXIT INT TERM

log() { echo "bench: $*" >&2; }

build() {
	log "building into $BIN"
	(cd "$ROOT" && go build -o "$BIN/ssenode" ./cmd/ssenode && go build -o "$BIN/sseload" ./cmd/sseload)
	if [[ "${PROFILE:-}" == 1 ]]; then
		cat >"$OUT/pprof.go" <<'EOF'
package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("SSENODE_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
EOF
		printf '{"Replace":{"%s/cmd/ssenode/zz_bench_pprof.go":"%s/pprof.go"}}\n' "$ROOT" "$OUT" >"$OUT/overlay.json"
		(cd "$ROOT" && go build -overlay "$OUT/overlay.json" -o "$BIN/ssenode-pprof" ./cmd/ssenode)
	fi
}

# free_port prints a TCP port no socket uses (bounded tries), below the
# ephemeral range (32768-60999 by default) that the streams' ports come from.
free_port() {
	local port i
	for i in $(seq 1 100); do
		port=$((20000 + RANDOM % 12000))
		if ! ss -Htan "sport = :$port" | grep -q .; then
			echo "$port"
			return
		fi
	done
	echo "bench: no free port" >&2
	exit 1
}

cpu_s() { # utime+stime of a process in CPU-seconds (fields after the comm)
	awk -v clk="$CLK" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / clk }' "/proc/$1/stat"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# redis_cpu: Redis's own CPU-seconds (INFO cpu, microsecond resolution).
redis_cpu() {
	redis-cli -p "$REDIS_PORT" info cpu | tr -d '\r' |
		awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f\n", s }'
}
# redis_cmds: "command calls usec" per command (INFO commandstats).
redis_cmds() {
	redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
		awk -F'[:,=]' '/^cmdstat_/ { sub(/^cmdstat_/, "", $1); print $1, $3, $5 }' | sort
}

# wait_for CMD...: retry CMD for up to 15 s.
wait_for() {
	local i
	for i in $(seq 1 150); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "bench: timed out waiting for: $*" >&2
	return 1
}

REDIS_PID="" REDIS_PORT="" NODE_PID="" NODE_URL="" PPROF_ADDR=""

start_redis() {
	REDIS_PORT=$(free_port)
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--daemonize no --logfile "$OUT/redis-$1.log" &
	REDIS_PID=$!
	PIDS+=("$REDIS_PID")
	wait_for redis-cli -p "$REDIS_PORT" ping
}

# start_node NAME redis|memory [pprof]
start_node() {
	local port bin=ssenode
	port=$(free_port)
	local env=(NODE_ID=bench HTTP_ADDR="127.0.0.1:$port" ADMIN_ADDR="127.0.0.1:$(free_port)" LOG_LEVEL=warn)
	if [[ "$2" == redis ]]; then
		env+=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0")
	fi
	if [[ "${3:-}" == pprof ]]; then
		bin=ssenode-pprof
		PPROF_ADDR="127.0.0.1:$(free_port)"
		env+=(SSENODE_PPROF_ADDR="$PPROF_ADDR")
	fi
	env "${env[@]}" "$BIN/$bin" 2>"$OUT/node-$1.log" &
	NODE_PID=$!
	PIDS+=("$NODE_PID")
	NODE_URL="http://127.0.0.1:$port"
	wait_for curl -fsS "$NODE_URL/readyz"
}

# idle NAME redis|memory STREAMS: RSS per idle stream.
idle() {
	local name=$1 mode=$2 n=$3
	[[ "$mode" == redis ]] && start_redis "$name"
	start_node "$name" "$mode"
	sleep 2
	local base
	base=$(rss_kib "$NODE_PID")
	rm -f "$OUT/$name.ready"
	"$BIN/sseload" -url "$NODE_URL" -subs "$n" -idle -duration "$IDLE_HOLD" -ramp 2000 \
		-source-ips 2 -progress 0 -ready-file "$OUT/$name.ready" -json "$OUT/$name.json" >"$OUT/$name.txt" &
	local load=$!
	PIDS+=("$load")
	wait_ready "$name" || return 1
	sleep "$SETTLE"
	local with up
	with=$(rss_kib "$NODE_PID")
	up=$(cat "$OUT/$name.ready")
	wait "$load"
	local alive
	alive=$(jq .streams.alive_at_end "$OUT/$name.json")
	printf '%-18s mode=%-6s streams=%s alive_at_end=%s rss_base=%s KiB rss_with=%s KiB per_stream=%.2f KiB\n' \
		"$name" "$mode" "$up" "$alive" "$base" "$with" "$(echo "($with - $base) / $up" | bc -l)" | tee -a "$OUT/summary.txt"
	echo "$name $up $base $with" >>"$OUT/idle.dat"
	cleanup
}

# wait_ready NAME: wait up to 60 s for sseload's ready file (every stream
# made its first attempt).
wait_ready() {
	local i
	for i in $(seq 1 600); do
		[[ -s "$OUT/$1.ready" ]] && return 0
		sleep 0.1
	done
	log "$1: streams not up in 60 s"
	return 1
}

# load NAME SSELOAD-ARGS...: a publishing scenario on a Redis-backed node.
load() {
	local name=$1
	shift
	start_redis "$name"
	local prof=""
	[[ "${PROFILE:-}" == 1 ]] && prof=pprof
	start_node "$name" redis $prof
	rm -f "$OUT/$name.ready"
	"$BIN/sseload" -url "$NODE_URL" "$@" -progress 10s -ready-file "$OUT/$name.ready" \
		-json "$OUT/$name.json" >"$OUT/$name.txt" 2>"$OUT/$name.progress" &
	local load=$!
	PIDS+=("$load")
	wait_ready "$name" || return 1
	# CPU from "all streams up" to the end: warmup, publishing, drain.
	local n0 r0 rss0 ri0 ri1 t0
	t0=$(date +%s.%N)
	n0=$(cpu_s "$NODE_PID")
	r0=$(cpu_s "$REDIS_PID")
	ri0=$(redis_cpu)
	rss0=$(rss_kib "$NODE_PID")
	redis_cmds >"$OUT/$name.cmds0"
	local profpid=""
	if [[ -n "$prof" ]]; then
		(sleep 10 && curl -fsS --max-time 40 -o "$OUT/$name.pprof" "http://$PPROF_ADDR/debug/pprof/profile?seconds=20") &
		profpid=$!
		PIDS+=("$profpid")
	fi
	# Redis's idle cost (blocking reads, pings) over 4 s of the 5 s warmup.
	sleep 4
	ri1=$(redis_cpu)
	wait "$load" || log "$name: sseload exited with $?"
	[[ -z "$profpid" ]] || wait "$profpid" || log "$name: no profile"
	local n1 r1 rss1 ri2 t1
	t1=$(date +%s.%N)
	n1=$(cpu_s "$NODE_PID")
	r1=$(cpu_s "$REDIS_PID")
	ri2=$(redis_cpu)
	rss1=$(rss_kib "$NODE_PID")
	redis_cmds >"$OUT/$name.cmds1"
	cat "$OUT/$name.txt"
	local j="$OUT/$name.json"
	local delivered published
	delivered=$(jq .delivery.delivered "$j")
	published=$(jq .publish.published "$j")
	{
		printf '%s: node %.2f CPU-s, redis %.2f CPU-s, delivered %s, published %s, node RSS %s -> %s KiB\n' \
			"$name" "$(echo "$n1 - $n0" | bc -l)" "$(echo "$r1 - $r0" | bc -l)" "$delivered" "$published" "$rss0" "$rss1"
		printf '%s: node+redis CPU-s per million deliveries %.2f (node %.2f, redis %.2f); redis CPU-us per published event %.1f\n' \
			"$name" \
			"$(echo "($n1 - $n0 + $r1 - $r0) / $delivered * 1000000" | bc -l)" \
			"$(echo "($n1 - $n0) / $delivered * 1000000" | bc -l)" \
			"$(echo "($r1 - $r0) / $delivered * 1000000" | bc -l)" \
			"$(echo "($r1 - $r0) / $published * 1000000" | bc -l)"
		local span
		span=$(echo "$t1 - $t0" | bc -l)
		printf '%s: redis (INFO cpu) %.3f CPU-s in the run, idle rate %.4f CPU-s/s; per published event %.1f CPU-us, minus idle rate %.1f CPU-us\n' \
			"$name" "$(echo "$ri2 - $ri0" | bc -l)" "$(echo "($ri1 - $ri0) / 4" | bc -l)" \
			"$(echo "($ri2 - $ri0) / $published * 1000000" | bc -l)" \
			"$(echo "(($ri2 - $ri0) - ($ri1 - $ri0) / 4 * $span) / $published * 1000000" | bc -l)"
		echo "$name: redis commands in the run (calls, usec, calls per published event):"
		join -a2 -e 0 -o 0,1.2,1.3,2.2,2.3 "$OUT/$name.cmds0" "$OUT/$name.cmds1" |
			awk -v p="$published" '{ c = $4 - $2; u = $5 - $3; if (c > 0) printf "    %-12s %8d calls %9d usec %8.3f calls/event\n", $1, c, u, c / p }'
		jq -r --arg n "$name" '"\($n): latency p50 \(.latency.p50_us) us, p90 \(.latency.p90_us) us, p99 \(.latency.p99_us) us, p99.9 \(.latency.p999_us) us, max \(.latency.max_us) us; expected \(.delivery.expected), loss \(.delivery.loss), dups \(.delivery.duplicates), out-of-order \(.delivery.out_of_order), gaps \(.delivery.gaps); alive \(.streams.alive_at_end)/\(.connect.established); sseload \(.self.cpu_seconds) CPU-s"' "$j"
	} | tee -a "$OUT/summary.txt"
	if [[ -n "$prof" && -s "$OUT/$name.pprof" ]]; then
		go tool pprof -top -nodecount 30 "$BIN/ssenode-pprof" "$OUT/$name.pprof" >"$OUT/$name.pprof.top" 2>/dev/null || true
		log "$name: CPU profile top in $OUT/$name.pprof.top"
	fi
	grep -v '"level":"INFO"' "$OUT/node-$name.log" | head -5 || true
	cleanup
}

command -v bc >/dev/null || { echo "bench: bc is required" >&2; exit 1; }
build
scenarios=("$@")
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(idle-redis idle-memory fanout topics)
log "results in $OUT"
for s in "${scenarios[@]}"; do
	start=$(date +%s)
	case "$s" in
	idle-redis)
		idle idle-redis-1k redis 1000
		idle idle-redis-10k redis 10000
		;;
	idle-memory)
		idle idle-memory-1k memory 1000
		idle idle-memory-10k memory 10000
		;;
	fanout)
		load fanout -subs 5000 -topics 1 -rate 10 -duration "$FANOUT_DURATION" -warmup 5s -ramp 2000
		;;
	topics)
		load topics -subs 5000 -topics 5000 -rate 3000 -duration "$TOPICS_DURATION" -warmup 5s -ramp 2000
		;;
	*)
		echo "bench: unknown scenario $s" >&2
		exit 2
		;;
	esac
	log "$s took $(($(date +%s) - start)) s"
done
log "summary in $OUT/summary.txt"
