#!/usr/bin/env bash
# The benchmark harness: one command builds ssenode and sseload, runs the
# standard sseload scenarios against two setups, and writes the figures into
# BENCHMARKS.md (the section between <!-- bench:begin --> and
# <!-- bench:end -->; the rest of the file is left alone).
#
#   deploy/bench/bench.sh [scenario ...]      default: capacity fanout topics storm
#
# Setups (deploy/cluster/cluster.sh, a fresh one per scenario):
#   standalone  one node, in-memory broker, no LB; sseload talks to the node
#   cluster     redis-server + 3 nodes + HAProxy; sseload talks to HAProxy
#
# Scenarios (sseload's presets; sizes for this 2-core VM):
#   capacity  idle streams: 10,000 on the standalone node; 9,000 through the
#             LB (one HAProxy holds at most ~9,990 streams under the 20,000-fd
#             limit, see deploy/haproxy/haproxy.cfg.tmpl); RSS per stream
#   fanout    5,000 streams on one topic, 10 events/s for 60 s
#   topics    5,000 streams on a topic each, 3,000 events/s for 30 s
#   storm     3,000 reconnecting streams on 10 topics, 100 events/s for 40 s;
#             at 1/3: cluster: SIGKILL node1 (cluster.sh kill-node 1);
#             standalone: cluster.sh restart-node 1 (SIGTERM, start again; the
#             in-memory broker loses its history, so resets are expected)
#
# Besides sseload's own report (JSON, HTML and text per run), the script
# samples from /proc the nodes', Redis's and HAProxy's CPU time (utime+stime,
# from "every stream is up", sseload's ready file, to the end of the run) and
# resident memory (before the streams, and SETTLE s after every stream is up,
# which covers a heartbeat sweep), and Redis's own INFO cpu. The load
# generator runs on the same cores as everything else; nothing is pinned.
#
# Environment:
#   OUT=DIR         reports, logs and cluster state (default: a new temp dir)
#   BENCH_MD=FILE   where the section goes (default: BENCHMARKS.md of this
#                   repository; empty: write it only to OUT/bench.md)
#   SETUPS          default "standalone cluster"
#   CAPACITY_CONNS CAPACITY_LB_CONNS CAPACITY_HOLD FANOUT_DURATION
#   TOPICS_DURATION STORM_DURATION SETTLE      override the sizes above
#   DRAIN_WINDOW    the nodes' SIGTERM drain window (default 2s)
#   BENCH_ONLY_WRITE=1 with OUT=DIR of an earlier run: only rewrite the section
#
# Needs: go, jq, bc, curl, ss; redis-server, redis-cli and haproxy for the
# cluster (apt-get install -y redis-server haproxy). About 9 minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER="$ROOT/deploy/cluster/cluster.sh"
OUT=${OUT:-$(mktemp -d /tmp/ssecluster-bench.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BIN="$OUT/bin"
BENCH_MD=${BENCH_MD-$ROOT/BENCHMARKS.md}
read -ra SETUPS <<<"${SETUPS:-standalone cluster}"
CAPACITY_CONNS=${CAPACITY_CONNS:-10000}
CAPACITY_LB_CONNS=${CAPACITY_LB_CONNS:-9000}
CAPACITY_HOLD=${CAPACITY_HOLD:-25s}
FANOUT_DURATION=${FANOUT_DURATION:-60s}
TOPICS_DURATION=${TOPICS_DURATION:-30s}
STORM_DURATION=${STORM_DURATION:-40s}
SETTLE=${SETTLE:-10}
# A node's SIGTERM drain (restart-node in the standalone storm) closes its
# streams over this window before it exits; the default 30 s would outlast
# the run. Teardown (cluster.sh stop) does not drain.
DRAIN_WINDOW=${DRAIN_WINDOW:-2s}
CLK=$(getconf CLK_TCK)
ALL_SCENARIOS=(capacity fanout topics storm)

log() { echo "bench: $*" >&2; }
die() {
	log "$*"
	exit 1
}

for tool in go jq bc curl ss; do
	command -v "$tool" >/dev/null || die "$tool is required"
done
for s in "${SETUPS[@]}"; do
	[[ "$s" == standalone || "$s" == cluster ]] || die "unknown setup $s"
	if [[ "$s" == cluster ]]; then
		for tool in redis-server redis-cli haproxy; do
			command -v "$tool" >/dev/null || die "$tool is required (apt-get install -y redis-server haproxy)"
		done
	fi
done

# ---- what is running, and stopping it --------------------------------------

CUR_DIR="" LOAD_PID=""
cleanup() {
	if [[ -n "$LOAD_PID" ]] && kill -0 "$LOAD_PID" 2>/dev/null; then
		kill "$LOAD_PID" 2>/dev/null || true
		wait "$LOAD_PID" 2>/dev/null || true
	fi
	LOAD_PID=""
	if [[ -n "$CUR_DIR" ]]; then
		"$CLUSTER" stop -d "$CUR_DIR" || true
	fi
	CUR_DIR=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- samples ----------------------------------------------------------------

# cpu_s PID: utime+stime in CPU-seconds; empty when the process is gone.
cpu_s() {
	awk -v clk="$CLK" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / clk }' "/proc/$1/stat" 2>/dev/null || true
}
# rss_kib PID: VmRSS; empty when the process is gone.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
# redis_cpu: Redis's own CPU-seconds (INFO cpu, microsecond resolution).
redis_cpu() {
	redis-cli -p "$REDIS_PORT" info cpu 2>/dev/null | tr -d '\r' |
		awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.3f\n", s }'
}
# lb_streams: streams per node in HAProxy's stats (current sessions of the
# streams backend), "node1 3000 node2 3000 ...".
lb_streams() {
	curl -fsS --max-time 2 "$LB_STATS_URL/stats;csv" |
		awk -F, '$1 == "streams" && $2 != "BACKEND" { printf "%s %s ", $2, $5 }'
}
# json_nums VALUES...: a JSON array of numbers, null for an empty value.
json_nums() {
	local v out=""
	for v in "$@"; do out+="${v:-null},"; done
	echo "[${out%,}]"
}

# shell_join ARGS...: a command line to paste into a shell: bare words as
# they are, words holding $ in double quotes (the placeholders expand),
# anything else in single quotes; paths of this repository made relative.
shell_join() {
	local a out=""
	for a in "$@"; do
		a=${a//"$ROOT/"/}
		if [[ "$a" =~ ^[A-Za-z0-9_./:,=+-]+$ ]]; then
			out+="$a "
		elif [[ "$a" == *'$'* && "$a" != *[\\\"\`]* ]]; then
			out+="\"$a\" "
		else
			local q="'\\''"
			out+="'${a//\'/$q}' "
		fi
	done
	echo "${out% }"
}

# ---- runs -------------------------------------------------------------------

build() {
	log "building ssenode and sseload into $BIN"
	mkdir -p "$BIN"
	(cd "$ROOT" && go build -o "$BIN/ssenode" ./cmd/ssenode && go build -o "$BIN/sseload" ./cmd/sseload)
}

# sseload_args SCENARIO SETUP TARGET PIDS DIR: sseload's command line (after
# the binary) for a scenario; called with placeholders for the record.
sseload_args() {
	local scenario=$1 setup=$2 target=$3 pids=$4 dir=$5
	local args=("$scenario" --target "$target")
	case "$scenario" in
	capacity)
		local n=$CAPACITY_CONNS
		[[ "$setup" == cluster ]] && n=$CAPACITY_LB_CONNS
		args+=(--conns "$n" --duration "$CAPACITY_HOLD" --ramp 2000)
		;;
	fanout) args+=(--conns 5000 --rate 10 --duration "$FANOUT_DURATION" --warmup 5s --ramp 2000) ;;
	topics) args+=(--conns 5000 --rate 3000 --duration "$TOPICS_DURATION" --warmup 5s --ramp 2000) ;;
	storm)
		local fault="restart-node"
		[[ "$setup" == cluster ]] && fault="kill-node"
		args+=(--conns 3000 --rate 100 --topics 10 --duration "$STORM_DURATION" --ramp 2000
			--storm-cmd "$CLUSTER $fault 1 -d $dir")
		;;
	*) die "unknown scenario $scenario" ;;
	esac
	# 16 publish requests in flight, not sseload's 4: through a busy HAProxy
	# a POST takes 5-20 ms here (p50), and 4 at a time fall behind 3,000/s
	# (topics) and even 100/s while HAProxy relays a storm's deliveries.
	[[ "$scenario" == capacity ]] || args+=(--publish-conns 16)
	args+=(--node-pid "$pids")
	printf '%s\n' "${args[@]}"
}

# run SETUP SCENARIO: a fresh setup, one sseload run, samples, stop.
run() {
	local setup=$1 scenario=$2 name="$1-$2"
	local dir="$OUT/$name"
	mkdir -p "$dir"
	local t0=$SECONDS
	local opts=(-n 3)
	[[ "$setup" == standalone ]] && opts=(--memory --no-lb)
	CUR_DIR="$dir/cluster"
	LOG_LEVEL=warn DRAIN_WINDOW=$DRAIN_WINDOW BIN="$BIN" "$CLUSTER" start "${opts[@]}" -d "$CUR_DIR" >"$dir/cluster-start.txt" 2>&1 ||
		{ cat "$dir/cluster-start.txt" >&2; return 1; }
	# shellcheck source=/dev/null
	source "$CUR_DIR/cluster.env"
	local pids=() p
	read -ra pids <<<"$NODE_PIDS"
	sleep 2 # let the processes settle before the baseline
	local rss0=() lbrss0=""
	for p in "${pids[@]}"; do rss0+=("$(rss_kib "$p")"); done
	[[ -z "$HAPROXY_PID" ]] || lbrss0=$(rss_kib "$HAPROXY_PID")

	local args=()
	mapfile -t args < <(sseload_args "$scenario" "$setup" "$TARGET_URL" "${NODE_PIDS// /,}" "$CUR_DIR")
	local shown=()
	# shellcheck disable=SC2016 # placeholders, expanded by whoever reruns it
	mapfile -t shown < <(sseload_args "$scenario" "$setup" '$TARGET_URL' '$NODE_PIDS' '$DIR')
	local ready="$dir/ready"
	rm -f "$ready"
	log "$name: sseload ${args[*]}"
	"$BIN/sseload" "${args[@]}" --json "$dir/report.json" --html "$dir/report.html" \
		--ready-file "$ready" --progress 10s >"$dir/report.txt" 2>"$dir/progress.txt" &
	LOAD_PID=$!
	local i
	for ((i = 0; i < 1200; i++)); do
		[[ -s "$ready" ]] && break
		kill -0 "$LOAD_PID" 2>/dev/null || break
		sleep 0.1
	done
	[[ -s "$ready" ]] || log "$name: streams not up after 120 s"

	# CPU from "every stream is up" to the end: warmup, publishing, drain
	# (capacity: the hold).
	local cpu0=() cpu1=() rss1=() lbcpu0="" lbcpu1="" lbrss1="" rcpu0="" rcpu1="" lbstreams=""
	for p in "${pids[@]}"; do cpu0+=("$(cpu_s "$p")"); done
	[[ -z "$HAPROXY_PID" ]] || lbcpu0=$(cpu_s "$HAPROXY_PID")
	[[ -z "$REDIS_PID" ]] || rcpu0=$(redis_cpu)
	if [[ "$scenario" == capacity ]]; then
		sleep "$SETTLE"
		for p in "${pids[@]}"; do rss1+=("$(rss_kib "$p")"); done
		if [[ -n "$HAPROXY_PID" ]]; then
			lbrss1=$(rss_kib "$HAPROXY_PID")
			lbstreams=$(lb_streams || true)
		fi
	fi
	local rc=0
	wait "$LOAD_PID" || rc=$?
	LOAD_PID=""
	[[ "$rc" == 0 ]] || log "$name: sseload exited with $rc (see $dir/progress.txt)"
	for p in "${pids[@]}"; do cpu1+=("$(cpu_s "$p")"); done
	[[ -z "$HAPROXY_PID" ]] || lbcpu1=$(cpu_s "$HAPROXY_PID")
	[[ -z "$REDIS_PID" ]] || rcpu1=$(redis_cpu)

	# Per-node stream counts: HAProxy's current sessions per server, or all
	# streams on the one node.
	local streams=() up
	up=$(head -n1 "$ready" 2>/dev/null || echo 0)
	if [[ -n "$lbstreams" ]]; then
		local a=()
		read -ra a <<<"$lbstreams"
		for ((i = 1; i < ${#a[@]}; i += 2)); do streams+=("${a[i]}"); done
	else
		streams=("$up")
	fi
	jq -n --arg setup "$setup" --arg scenario "$scenario" --argjson rc "$rc" \
		--argjson wall $((SECONDS - t0)) --argjson up "${up:-0}" \
		--arg cmd "$(shell_join sseload "${shown[@]}")" \
		--argjson rss0 "$(json_nums "${rss0[@]}")" --argjson rss1 "$(json_nums "${rss1[@]}")" \
		--argjson streams "$(json_nums "${streams[@]}")" \
		--argjson cpu0 "$(json_nums "${cpu0[@]}")" --argjson cpu1 "$(json_nums "${cpu1[@]}")" \
		--argjson lbrss0 "${lbrss0:-null}" --argjson lbrss1 "${lbrss1:-null}" \
		--argjson lbcpu0 "${lbcpu0:-null}" --argjson lbcpu1 "${lbcpu1:-null}" \
		--argjson rcpu0 "${rcpu0:-null}" --argjson rcpu1 "${rcpu1:-null}" '
		def d(a; b): if a == null or b == null then null else b - a end;
		{setup: $setup, scenario: $scenario, sseload_rc: $rc, wall_s: $wall, cmd: $cmd,
		 streams_up: $up, node_streams: $streams,
		 node_rss_before_kib: $rss0, node_rss_with_kib: $rss1,
		 node_cpu_s: ([range(0; $cpu0 | length) | d($cpu0[.]; $cpu1[.])]),
		 lb_rss_before_kib: $lbrss0, lb_rss_with_kib: $lbrss1, lb_cpu_s: d($lbcpu0; $lbcpu1),
		 redis_cpu_s: d($rcpu0; $rcpu1)}' >"$dir/bench.json"
	grep -hv '"level":"INFO"' "$CUR_DIR"/node*.log 2>/dev/null | head -n 3 >&2 || true
	"$CLUSTER" stop -d "$CUR_DIR" >>"$dir/cluster-start.txt" 2>&1 || log "$name: stop failed"
	CUR_DIR=""
	sed -n '1,40p' "$dir/report.txt" >&2
	log "$name took $((SECONDS - t0)) s"
}

# ---- the BENCHMARKS.md section -------------------------------------------------

# Formatting and figures for the tables, over {r: sseload's report, b: bench.json}.
# shellcheck disable=SC2016 # jq code
JQ_DEFS='
def num: if . == null then "–" else tostring end;
def grp: if . == null then "–" else (round | tostring | until(test("^[0-9]{1,3}(,|$)"); sub("(?<a>[0-9])(?<b>[0-9]{3})(?<c>,|$)"; "\(.a),\(.b)\(.c)"))) end;
def f(n): if . == null then "–" else (. * pow(10; n) | round / pow(10; n) | tostring) end;
def ms: if . == null or . == 0 then "–" else (. / 1000 | if . >= 100 then f(0) elif . >= 10 then f(1) elif . >= 1 then f(2) else f(3) end) end;
def hist: if . == null or .count == 0 then "–" else "\(.p50_us | ms) / \(.p90_us | ms) / \(.p99_us | ms) / \(.p999_us | ms) / \(.max_us | ms)" end;
def kv: if . == null or . == {} then "none" else to_entries | map("\(.key) \(.value)") | join(", ") end;
def sum: map(select(. != null)) | add;
def permil(x): if x == null or .r.delivery.delivered == 0 then null else x / .r.delivery.delivered * 1e6 end;
def nodecpu: .b.node_cpu_s | sum;
def rssper: if (.b.node_rss_with_kib | length) == 0 or .b.streams_up == 0 then null
	else ((.b.node_rss_with_kib | sum) - (.b.node_rss_before_kib | sum)) / .b.streams_up end;
def pernode: [range(0; .b.node_rss_with_kib | length) as $i
	| if .b.node_streams[$i] > 0 and .b.node_rss_with_kib[$i] != null
	  then ((.b.node_rss_with_kib[$i] - .b.node_rss_before_kib[$i]) / .b.node_streams[$i] | f(2)) else "–" end] | join(" / ");
'

# row LABEL JQ-EXPR: one table row, one column per setup that ran.
row() {
	local label=$1 expr=$2 s
	local line="| $label |"
	for s in "${SETUPS[@]}"; do
		local d="$OUT/$s-$SCEN"
		if [[ -s "$d/report.json" && -s "$d/bench.json" ]]; then
			line+=" $(jq -rn --slurpfile r "$d/report.json" --slurpfile b "$d/bench.json" \
				"$JQ_DEFS {r: \$r[0], b: \$b[0]} | ($expr)" 2>/dev/null || echo '?') |"
		else
			line+=" (no run) |"
		fi
	done
	echo "$line"
}

table() {
	SCEN=$1
	local s head="| figure |" rule="|---|"
	for s in "${SETUPS[@]}"; do
		head+=" $s |"
		rule+="---|"
	done
	echo "$head"
	echo "$rule"
}

common_rows() {
	row "sseload exit status / wall time" '"\(.b.sseload_rc) / \(.b.wall_s) s"'
	row "sseload's own CPU" '"\(.r.self.cpu_seconds | f(1)) CPU-s, peak RSS \(.r.self.max_rss_kib / 1024 | f(0)) MiB"'
}

delivery_rows() {
	row "events published (confirmed) / failed" '"\(.r.publish.published | grp) / \(.r.publish.failed | grp)"'
	row "deliveries expected / delivered" '"\(.r.delivery.expected | grp) / \(.r.delivery.delivered | grp)"'
	row "loss / duplicates / out of order / gaps" '.r.delivery | "\(.loss | grp) / \(.duplicates | grp) / \(.out_of_order | grp) / \(.gaps | grp)"'
	row "streams alive at end / established" '"\(.r.streams.alive_at_end | grp) / \(.r.connect.established | grp)"'
	row "end-to-end latency p50 / p90 / p99 / p99.9 / max (ms)" '.r.latency | hist'
	row "publish request p50 / p99 (ms)" '"\(.r.publish.request.p50_us | ms) / \(.r.publish.request.p99_us | ms)"'
	row "publish rate reached (events/s) / worst lag behind schedule (ms)" '"\(.r.publish.rate_per_sec | f(0)) / \(.r.publish.max_lag_ms | f(0))"'
}

cpu_rows() {
	row "node CPU-s per million deliveries (all nodes)" 'permil(nodecpu) | f(2)'
	row "Redis CPU-s per million deliveries" 'permil(.b.redis_cpu_s) | f(2)'
	row "HAProxy CPU-s per million deliveries" 'permil(.b.lb_cpu_s) | f(2)'
	row "**nodes + Redis + HAProxy CPU-s per million deliveries**" '"**\(permil([nodecpu, .b.redis_cpu_s, .b.lb_cpu_s] | sum) | f(2))**"'
	row "Redis CPU-µs per published event" 'if .b.redis_cpu_s == null then null else .b.redis_cpu_s / .r.publish.published * 1e6 end | f(1)'
	row "sseload CPU-s per million received" 'permil(.r.self.cpu_seconds) | f(2)'
}

write_section() {
	local md="$OUT/bench.md" commit dirty=""
	commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
	[[ -z "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]] || dirty=" plus uncommitted changes"
	local scen_list="${SCENARIOS[*]}"
	{
		echo "<!-- bench:begin -->"
		echo "## Latest harness run"
		echo
		echo "Generated by \`deploy/bench/bench.sh $scen_list\`; do not edit this section by"
		echo "hand, the next run replaces it. The sections after it are the hand-written"
		echo "record of issue 2's runs 1–3, made with the previous version of this script"
		echo "(one node per scenario, sseload's old flags); their commands no longer apply."
		echo
		echo "| | |"
		echo "|---|---|"
		echo "| date | $(cat "$OUT/started" 2>/dev/null || date -u '+%Y-%m-%d %H:%M UTC') |"
		echo "| commit | \`$commit\`$dirty |"
		echo "| CPU | $(nproc) × $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) |"
		echo "| memory | $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |"
		echo "| kernel | $(uname -sr) |"
		echo "| Go | $(go version | awk '{ print $3, $4 }') |"
		if command -v redis-server >/dev/null; then
			echo "| Redis | $(redis-server --version | awk '{ print $3 }' | tr -d 'v=') (no persistence) |"
		fi
		if command -v haproxy >/dev/null; then
			echo "| HAProxy | $(haproxy -v | awk 'NR == 1 { print $3 }') (deploy/haproxy/haproxy.cfg.tmpl) |"
		fi
		echo "| fd limit | $(ulimit -Hn) per process |"
		echo "| load average (1 min) at start / end | $(cat "$OUT/load-start" 2>/dev/null || echo –) / $(cut -d' ' -f1 /proc/loadavg) (other work on the machine shows here) |"
		echo
		echo "Setups, a fresh one per scenario (\`deploy/cluster/cluster.sh\`, all on loopback,"
		echo "\`LOG_LEVEL=warn DRAIN_WINDOW=$DRAIN_WINDOW\`, other node settings default):"
		echo
		echo "- **standalone**: \`cluster.sh start --memory --no-lb\`, one node on the in-memory"
		echo "  broker; sseload connects to the node."
		echo "- **cluster**: \`cluster.sh start -n 3\`, redis-server + 3 nodes + HAProxy; sseload"
		echo "  connects to HAProxy (\`leastconn\`)."
		echo
		echo "Commands (\`\$TARGET_URL\`, \`\$NODE_PIDS\` as commas and \`\$DIR\` come from the setup's"
		echo "\`cluster.env\`; each run also gets \`--json\`, \`--html\`, \`--ready-file\`, \`--progress 10s\`):"
		echo
		echo '```sh'
		local s sc
		for sc in "${SCENARIOS[@]}"; do
			for s in "${SETUPS[@]}"; do
				[[ -s "$OUT/$s-$sc/bench.json" ]] || continue
				echo "# $s"
				jq -r .cmd "$OUT/$s-$sc/bench.json"
			done
		done
		echo '```'
		echo
		echo "CPU figures are utime+stime from \`/proc\` (Redis: \`INFO cpu\`), from the moment"
		echo "every stream is up to the end of the run, so they include warmup and drain."
		echo "The load generator shares the 2 cores with everything measured."
		for sc in "${SCENARIOS[@]}"; do
			echo
			case "$sc" in
			capacity)
				echo "### capacity: idle streams"
				echo
				echo "Standalone: $(grp_n "$CAPACITY_CONNS") streams. Cluster: $(grp_n "$CAPACITY_LB_CONNS") through one HAProxy, which"
				echo "holds at most ~9,990 streams (2 fds each under the 20,000-fd limit). RSS"
				echo "\"with streams\" is sampled ${SETTLE} s after every stream is up; per stream ="
				echo "growth of the summed RSS / streams. The target's figures are RSS only (kernel"
				echo "socket memory is not in it)."
				echo
				table capacity
				row "streams asked / established / failed connects" '"\(.r.subs | grp) / \(.r.connect.established | grp) / \(.r.connect.failed | grp)"'
				row "streams alive at end" '.r.streams.alive_at_end | grp'
				row "connect to headers p50 / p90 / p99 / p99.9 / max (ms)" '.r.connect.time_to_headers | hist'
				row "streams per node" '.b.node_streams | map(grp) | join(" / ")'
				row "node RSS before → with streams (sum)" '"\(.b.node_rss_before_kib | sum / 1024 | f(1)) → \(.b.node_rss_with_kib | sum / 1024 | f(1)) MiB"'
				row "**node RSS per stream**" '"**\(rssper | f(2)) KiB**"'
				row "node RSS per stream, each node (KiB)" 'pernode'
				row "node RSS per stream, sseload --node-pid (end of hold)" '.r.nodes.rss_per_stream_kib | f(2)'
				row "HAProxy RSS before → with streams" 'if .b.lb_rss_before_kib == null then null else "\(.b.lb_rss_before_kib / 1024 | f(1)) → \(.b.lb_rss_with_kib / 1024 | f(1)) MiB" end | num'
				row "HAProxy RSS per stream (KiB)" 'if .b.lb_rss_with_kib == null then null else (.b.lb_rss_with_kib - .b.lb_rss_before_kib) / .b.streams_up end | f(2)'
				common_rows
				;;
			fanout)
				echo "### fanout: 5,000 streams on one topic, 10 events/s, $FANOUT_DURATION"
				echo
				table fanout
				delivery_rows
				cpu_rows
				common_rows
				;;
			topics)
				echo "### topics: 5,000 streams on a topic each, 3,000 events/s, $TOPICS_DURATION"
				echo
				echo "A delivery is one event to one stream, so per million deliveries is per"
				echo "million published events here (one POST each)."
				echo
				table topics
				delivery_rows
				cpu_rows
				common_rows
				;;
			storm)
				echo "### storm: 3,000 reconnecting streams, 10 topics, 100 events/s, $STORM_DURATION"
				echo
				echo "At a third of the run: cluster: \`cluster.sh kill-node 1\` (SIGKILL; node1's"
				echo "streams reconnect through HAProxy to node2 and node3 and resume from"
				echo "Redis). Standalone: \`cluster.sh restart-node 1\` (SIGTERM: the node closes its"
				echo "streams with a retry hint over DRAIN_WINDOW, exits, and starts again on the"
				echo "same port): the in-memory"
				echo "broker starts empty with a new epoch, so resumes get \`reset\` events and the"
				echo "events published while it was down are lost by design, not by a bug."
				echo "Latency counts from the publish, so an event a stream gets on resuming"
				echo "includes the time it was away (the retry hint plus the reconnect)."
				echo
				table storm
				# shellcheck disable=SC2016 # jq code
				row "fault / at" '.r.storm | if . == null then null else "`\(.action | sub("/[^ ]*/deploy/"; "deploy/") | sub(" -d [^ \"]*"; " -d $DIR"))` at \(.at_s | f(1)) s\(if .error then " (error: \(.error))" else "" end)" end | num'
				row "streams dropped, by sseload's reason" '.r.streams.drops | kv'
				row "reconnects / resumed streams" '"\(.r.connect.reconnects | grp) / \(.r.reconnects.resumed | grp)"'
				row "first drop after the fault / whole wave (s)" '.r.storm | if . == null then null else "\(.first_drop_s | f(2)) / \(.wave_s | f(2))" end | num'
				row "drop to resumed p50 / p90 / p99 / p99.9 / max (ms)" '.r.reconnects.time_to_resume | hist'
				row "resume outcomes" '.r.reconnects.outcomes | kv'
				row "reset events" '.r.streams.resets | grp'
				row "failed connects / non-200 answers" '"\(.r.connect.failed | grp) / \(.r.connect.http_status | kv)"'
				delivery_rows
				common_rows
				;;
			esac
		done
		echo "<!-- bench:end -->"
	} >"$md"
	log "section in $md"
	if [[ -n "$BENCH_MD" ]]; then
		merge_section "$md" "$BENCH_MD"
		log "wrote the generated section of $BENCH_MD"
	fi
}

grp_n() { jq -rn --argjson n "$1" "$JQ_DEFS \$n | grp"; }

# merge_section SECTION FILE: replaces the marked section of FILE, or puts it
# before FILE's first "## " heading when there is none yet.
merge_section() {
	local section=$1 file=$2 tmp
	tmp=$(mktemp "$file.XXXXXX")
	if grep -q '^<!-- bench:begin -->$' "$file" 2>/dev/null; then
		grep -q '^<!-- bench:end -->$' "$file" || die "$file has bench:begin but no bench:end"
		awk -v sec="$section" '
			/^<!-- bench:begin -->$/ { while ((getline l < sec) > 0) print l; skip = 1; next }
			/^<!-- bench:end -->$/ { skip = 0; next }
			!skip' "$file" >"$tmp"
	elif [[ -f "$file" ]]; then
		awk -v sec="$section" '
			!done && /^## / { while ((getline l < sec) > 0) print l; print ""; done = 1 }
			{ print }
			END { if (!done) { print ""; while ((getline l < sec) > 0) print l } }' "$file" >"$tmp"
	else
		cp "$section" "$tmp"
	fi
	mv "$tmp" "$file"
}

# ---- main -------------------------------------------------------------------

SCENARIOS=("$@")
[[ ${#SCENARIOS[@]} -gt 0 ]] || SCENARIOS=("${ALL_SCENARIOS[@]}")
for sc in "${SCENARIOS[@]}"; do
	[[ " ${ALL_SCENARIOS[*]} " == *" $sc "* ]] || die "unknown scenario $sc (${ALL_SCENARIOS[*]})"
done
if [[ "${BENCH_ONLY_WRITE:-}" == 1 ]]; then # rewrite the section from an earlier OUT
	write_section
	exit 0
fi
log "results in $OUT"
date -u '+%Y-%m-%d %H:%M UTC' >"$OUT/started"
cut -d' ' -f1 /proc/loadavg >"$OUT/load-start"
build
for sc in "${SCENARIOS[@]}"; do
	for s in "${SETUPS[@]}"; do
		run "$s" "$sc" || log "$s-$sc failed"
	done
done
write_section
