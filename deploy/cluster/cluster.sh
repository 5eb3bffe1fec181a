#!/usr/bin/env bash
# A local ssecluster on loopback: redis-server, K ssenode processes and an
# HAProxy in front of them, each on a free 127.0.0.1 port, running in the
# background until stopped.
#
#   cluster.sh start [-n K] [--memory] [--no-lb] [--aof] [-d DIR]
#   cluster.sh status       -d DIR
#   cluster.sh kill-node I  -d DIR     SIGKILL node I (1-based)
#   cluster.sh restart-node I -d DIR   SIGTERM node I (if it runs: a graceful
#                                      drain over DRAIN_WINDOW), wait for its
#                                      exit, start it again with the same ports
#                                      and id, wait for /readyz (and for the LB
#                                      to see it UP)
#   cluster.sh freeze-node I -d DIR    SIGSTOP node I: it holds its sockets
#                                      and answers nothing (a hung process)
#   cluster.sh thaw-node I  -d DIR     SIGCONT node I
#   cluster.sh stop-redis   -d DIR     SIGTERM Redis (with --aof it writes the
#                                      append-only file first), wait for its exit
#   cluster.sh start-redis  -d DIR     start Redis again on its port, with the
#                                      same persistence, and wait for PING
#   cluster.sh restart-redis -d DIR    stop-redis, then start-redis: without
#                                      --aof Redis comes back empty
#   cluster.sh freeze-redis -d DIR     SIGSTOP Redis: unreachable (connects
#                                      and commands hang) but nothing is lost
#   cluster.sh thaw-redis   -d DIR     SIGCONT Redis
#   cluster.sh restart-lb   -d DIR     SIGTERM HAProxy (a hard stop: every
#                                      connection through it is closed), start
#                                      it again on its ports, wait until it
#                                      sees every running node UP
#   cluster.sh stop         -d DIR     stop everything start launched, newest
#                                      first; nodes get SIGINT (stop at once,
#                                      no drain: HAProxy is gone already);
#                                      frozen processes are thawed to stop
#
# Every subcommand acts only on the processes this cluster started, keeps
# their ports, and fails when the process it needs is not running.
#
# start options:
#   -n K       nodes (default 3), NODE_ID node1..nodeK
#   --memory   standalone in-memory broker: one node, no Redis
#   --no-lb    no HAProxy; LB_URL is empty and TARGET_URL is node1
#   --aof      Redis with an append-only file (everysec) in DIR; default: no
#              persistence at all (--save "" --appendonly no)
#   -d DIR     where state and logs go (default: a new /tmp/ssecluster.XXXXXX,
#              printed); -d may also come from $CLUSTER_DIR
#
# Every process is started with setsid/nohup, so start returns while they run;
# each one logs to DIR/<name>.log. start writes DIR/cluster.env, which scripts
# can `source`:
#
#   CLUSTER_DIR CLUSTER_MODE (redis|memory) NODES
#   TARGET_URL             where clients go: LB_URL, or node1 without LB
#   LB_URL LB_STATS_URL HAPROXY_PID            (empty with --no-lb)
#   REDIS_URL REDIS_PORT REDIS_PID REDIS_AOF   (empty with --memory)
#   NODE_IDS NODE_URLS NODE_ADMIN_URLS NODE_PORTS NODE_ADMIN_PORTS NODE_PIDS
#                          space-separated, in node order (node1 first)
#   SSENODE_BIN
#
# NODE_PIDS keeps a killed node's old pid until restart-node replaces it; stop
# and status check that a pid still names the process start launched (pid and
# start time), so a reused pid is never signalled.
#
# Binaries: $BIN (the ssenode binary, or a directory holding it), else
# `go build ./cmd/ssenode` into DIR/bin. Node settings other than REDIS_URL,
# NODE_ID, HTTP_ADDR and ADMIN_ADDR come from the environment of `start`
# (LOG_LEVEL, PARTITIONS, DRAIN_WINDOW, ...: every variable named after one of
# `ssenode -h`'s flags); they are saved in DIR/node.env so restart-node starts
# the node the same way.
#
# Needs: redis-server and redis-cli (not with --memory), haproxy (not with
# --no-lb), curl, ss. On Debian, as root: apt-get install -y redis-server haproxy
# (.ci/test.sh installs them when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TEMPLATE="$ROOT/deploy/haproxy/haproxy.cfg.tmpl"
RENDER="$ROOT/deploy/haproxy/render.sh"

# How long restart-node waits for a node's SIGTERM drain (DRAIN_WINDOW,
# 30 s by default) before SIGKILL.
RESTART_TIMEOUT=${RESTART_TIMEOUT:-120}

die() {
	echo "cluster: $*" >&2
	exit 1
}
log() { echo "cluster: $*" >&2; }

usage() {
	sed -n '/^#   cluster.sh start/,/^#   cluster.sh stop  /p; /^# start options/,/^#$/p' "${BASH_SOURCE[0]}" |
		sed 's/^# \{0,1\}//' >&2
	exit 2
}

# ---- processes ------------------------------------------------------------

# start_time PID prints the process's start time (clock ticks since boot,
# field 22 of /proc/PID/stat), which with the pid names one process for good.
start_time() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) } # fields after the command name, which may hold spaces
	# shellcheck disable=SC2086 # split the fields on purpose
	set -- $stat
	[[ "$1" != Z ]] || return 1 # exited, not yet reaped
	echo "${20}"
}

# frozen PID: the process is stopped by a signal (state T).
frozen() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ "${stat:0:1}" == T ]]
}

# alive PID START: the process start launched still runs (or is frozen).
alive() {
	[[ -n "$1" && -n "$2" ]] || return 1
	[[ "$(start_time "$1" 2>/dev/null)" == "$2" ]]
}

# launch NAME CMD...: runs CMD in its own session, immune to the caller's
# hangups, logging to DIR/NAME.log; sets LAUNCHED_PID and LAUNCHED_START.
# setsid execs without forking here (a background job is never a process
# group leader in a script), so $! is the process itself.
launch() {
	local name=$1
	shift
	setsid nohup "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
	LAUNCHED_PID=$!
	local i
	for i in $(seq 1 50); do
		LAUNCHED_START=$(start_time "$LAUNCHED_PID") && return 0
		sleep 0.02
	done
	die "$name exited at once; see $DIR/$name.log"
}

# stop_proc NAME PID START SIGNAL TIMEOUT_S: signals the process if it is
# still the one we started, waits for it to exit, SIGKILL after the timeout.
stop_proc() {
	local name=$1 pid=$2 st=$3 sig=$4 timeout=$5 i
	alive "$pid" "$st" || return 0
	kill -s "$sig" "$pid" 2>/dev/null || return 0
	# A frozen process (freeze-node, freeze-redis) keeps the signal pending
	# until it runs again.
	kill -s CONT "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + timeout))
	while ((SECONDS < deadline)); do
		alive "$pid" "$st" || return 0
		sleep 0.05
	done
	log "$name (pid $pid) still running after ${timeout}s: SIGKILL"
	kill -s KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$pid" "$st" || return 0
		sleep 0.05
	done
	log "$name (pid $pid) did not exit"
	return 1
}

# wait_until SECONDS WHAT PID START CMD...: polls CMD every 0.1 s until it
# succeeds; fails early when the process PID exits.
wait_until() {
	local secs=$1 what=$2 pid=$3 st=$4
	shift 4
	local deadline=$((SECONDS + secs))
	while ((SECONDS < deadline)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		if [[ -n "$pid" ]] && ! alive "$pid" "$st"; then
			log "$what exited while starting; last lines of its log:"
			tail -n 5 "$DIR/$what.log" >&2 || true
			return 1
		fi
		sleep 0.1
	done
	log "$what not ready after ${secs}s"
	return 1
}

# ---- ports ----------------------------------------------------------------

TAKEN=" " PORT=""
# free_port sets PORT to a loopback TCP port nothing uses and this run has
# not handed out yet, below the ephemeral range (32768-60999) that client
# sockets take their ports from, so a stream's source port never takes it.
# (Not called as $(free_port): TAKEN must survive.)
free_port() {
	local i
	for i in $(seq 1 200); do
		PORT=$((20000 + RANDOM % 12000))
		[[ "$TAKEN" != *" $PORT "* ]] || continue
		if ! ss -Htan "sport = :$PORT" | grep -q .; then
			TAKEN+="$PORT "
			return
		fi
	done
	die "no free port"
}

# ---- state ----------------------------------------------------------------

# Per node (1-based, index 0 unused).
NODE_PORT=() NODE_ADMIN=() NODE_PID=() NODE_START=()

write_env() {
	local i ids="" urls="" admins="" ports="" aports="" pids="" starts=""
	for ((i = 1; i <= NODES; i++)); do
		ids+="node$i " urls+="http://127.0.0.1:${NODE_PORT[i]} " admins+="http://127.0.0.1:${NODE_ADMIN[i]} "
		ports+="${NODE_PORT[i]} " aports+="${NODE_ADMIN[i]} "
		pids+="${NODE_PID[i]:-} " starts+="${NODE_START[i]:-} "
	done
	local target=${LB_URL:-http://127.0.0.1:${NODE_PORT[1]}}
	# NAME="value" when the value needs no escaping (always, in practice),
	# so other tools can read the file too.
	kv() {
		if [[ "$2" =~ ^[A-Za-z0-9\ :/._,@+-]*$ ]]; then
			printf '%s="%s"\n' "$1" "$2"
		else
			printf '%s=%q\n' "$1" "$2"
		fi
	}
	{
		echo "# written by deploy/cluster/cluster.sh; source it"
		kv CLUSTER_DIR "$DIR"
		kv CLUSTER_MODE "$MODE"
		kv NODES "$NODES"
		kv TARGET_URL "$target"
		kv LB_URL "$LB_URL"
		kv LB_PORT "$LB_PORT"
		kv LB_STATS_URL "$LB_STATS_URL"
		kv HAPROXY_PID "$HAPROXY_PID"
		kv HAPROXY_START "$HAPROXY_START"
		kv REDIS_URL "$REDIS_URL"
		kv REDIS_PORT "$REDIS_PORT"
		kv REDIS_PID "$REDIS_PID"
		kv REDIS_START "$REDIS_START"
		kv REDIS_AOF "$AOF"
		kv NODE_IDS "${ids% }"
		kv NODE_URLS "${urls% }"
		kv NODE_ADMIN_URLS "${admins% }"
		kv NODE_PORTS "${ports% }"
		kv NODE_ADMIN_PORTS "${aports% }"
		kv NODE_PIDS "${pids% }"
		kv NODE_STARTS "${starts% }"
		kv SSENODE_BIN "$SSENODE_BIN"
	} >"$DIR/cluster.env.tmp"
	mv "$DIR/cluster.env.tmp" "$DIR/cluster.env"
}

# shellcheck disable=SC2153 # NODE_PORTS and the others come from cluster.env
load_env() {
	[[ -n "$DIR" ]] || die "-d DIR is required"
	[[ -f "$DIR/cluster.env" ]] || die "no cluster in $DIR (no cluster.env)"
	# shellcheck source=/dev/null
	source "$DIR/cluster.env"
	MODE=$CLUSTER_MODE AOF=${REDIS_AOF:-0}
	local p a pid st i=1
	read -ra p <<<"$NODE_PORTS"
	read -ra a <<<"$NODE_ADMIN_PORTS"
	read -ra pid <<<"$NODE_PIDS"
	read -ra st <<<"$NODE_STARTS"
	for ((i = 1; i <= NODES; i++)); do
		NODE_PORT[i]=${p[i - 1]} NODE_ADMIN[i]=${a[i - 1]}
		NODE_PID[i]=${pid[i - 1]:-} NODE_START[i]=${st[i - 1]:-}
	done
}

# ---- components -----------------------------------------------------------

# start_redis: starts Redis on REDIS_PORT (a free port when empty) and
# waits for PING.
start_redis() {
	command -v redis-server >/dev/null || die "redis-server is missing (apt-get install -y redis-server)"
	command -v redis-cli >/dev/null || die "redis-cli is missing (apt-get install -y redis-server)"
	if [[ -z "$REDIS_PORT" ]]; then
		free_port
		REDIS_PORT=$PORT
	fi
	local persist=(--save "" --appendonly no)
	if [[ "$AOF" == 1 ]]; then
		persist=(--save "" --appendonly yes --appendfsync everysec)
	fi
	launch redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DIR" \
		--daemonize no "${persist[@]}"
	REDIS_PID=$LAUNCHED_PID REDIS_START=$LAUNCHED_START
	REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
	write_env
	wait_until 15 redis "$REDIS_PID" "$REDIS_START" timeout 2 redis-cli -p "$REDIS_PORT" ping
}

# start_node I: starts node I on its ports with the saved settings, waits
# for /readyz.
start_node() {
	local i=$1 env=()
	env+=(NODE_ID="node$i" HTTP_ADDR="127.0.0.1:${NODE_PORT[i]}" ADMIN_ADDR="127.0.0.1:${NODE_ADMIN[i]}")
	local unset=(-u REDIS_URL) # standalone, whatever the caller's environment says
	if [[ "$MODE" == redis ]]; then
		unset=()
		env+=(REDIS_URL="$REDIS_URL")
	fi
	local line
	while IFS= read -r line; do
		[[ -n "$line" ]] && env+=("$line")
	done <"$DIR/node.env"
	launch "node$i" env "${unset[@]}" "${env[@]}" "$SSENODE_BIN"
	NODE_PID[i]=$LAUNCHED_PID NODE_START[i]=$LAUNCHED_START
	write_env
	wait_until 30 "node$i" "${NODE_PID[i]}" "${NODE_START[i]}" \
		curl -fsS --max-time 1 "http://127.0.0.1:${NODE_PORT[i]}/readyz"
}

# lb_up NAME...: HAProxy's stats list each NAME as UP in both backends
# (streams: /v1/events; nodes: everything else).
lb_up() {
	local csv n b
	csv=$(curl -fsS --max-time 1 "$LB_STATS_URL/stats;csv") || return 1
	for n in "$@"; do
		for b in streams nodes; do
			grep -q "^$b,$n,.*,UP," <<<"$csv" || return 1
		done
	done
}

# start_haproxy: renders DIR/haproxy.cfg on free ports (the first time) or
# reuses it and its ports (restart-lb), starts HAProxy and waits until it
# sees every running node UP.
start_haproxy() {
	command -v haproxy >/dev/null || die "haproxy is missing (apt-get install -y haproxy)"
	local stats_port i names=()
	if [[ -z "$LB_PORT" ]]; then
		free_port
		LB_PORT=$PORT
		free_port
		stats_port=$PORT
		LB_URL="http://127.0.0.1:$LB_PORT" LB_STATS_URL="http://127.0.0.1:$stats_port"
		for ((i = 1; i <= NODES; i++)); do
			echo "server node$i 127.0.0.1:${NODE_PORT[i]} check"
		done | "$RENDER" "127.0.0.1:$LB_PORT" "127.0.0.1:$stats_port" "$TEMPLATE" >"$DIR/haproxy.cfg"
		if ! haproxy -c -f "$DIR/haproxy.cfg" >"$DIR/haproxy-check.log" 2>&1; then
			cat "$DIR/haproxy-check.log" >&2
			die "haproxy rejects $DIR/haproxy.cfg"
		fi
	fi
	for ((i = 1; i <= NODES; i++)); do
		if alive "${NODE_PID[i]:-}" "${NODE_START[i]:-}" && ! frozen "${NODE_PID[i]}"; then
			names+=("node$i")
		fi
	done
	launch haproxy haproxy -db -f "$DIR/haproxy.cfg"
	HAPROXY_PID=$LAUNCHED_PID HAPROXY_START=$LAUNCHED_START
	write_env
	wait_until 15 haproxy "$HAPROXY_PID" "$HAPROXY_START" lb_up "${names[@]}"
}

build() {
	if [[ -n "${BIN:-}" ]]; then
		SSENODE_BIN=$BIN
		[[ -d "$SSENODE_BIN" ]] && SSENODE_BIN="$SSENODE_BIN/ssenode"
		[[ -x "$SSENODE_BIN" ]] || die "BIN=$BIN: no ssenode binary there"
		SSENODE_BIN=$(cd "$(dirname "$SSENODE_BIN")" && pwd)/$(basename "$SSENODE_BIN")
		return
	fi
	local go=go
	command -v go >/dev/null || go=/usr/local/go/bin/go
	log "building ssenode into $DIR/bin"
	# -buildvcs=auto: stamp the checkout's revision (the version the admin
	# API reports) even where GOFLAGS turns it off; nothing outside a checkout.
	(cd "$ROOT" && "$go" build -buildvcs=auto -o "$DIR/bin/ssenode" ./cmd/ssenode)
	SSENODE_BIN="$DIR/bin/ssenode"
}

# ---- commands -------------------------------------------------------------

cmd_start() {
	if [[ -z "$DIR" ]]; then
		DIR=$(mktemp -d /tmp/ssecluster.XXXXXX)
	else
		mkdir -p "$DIR"
		DIR=$(cd "$DIR" && pwd)
		if [[ -f "$DIR/cluster.env" ]] && (load_env && any_alive); then
			die "a cluster started in $DIR still runs; stop it first"
		fi
	fi
	[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive number"
	if [[ "$MODE" == memory ]]; then
		[[ "$NODES" == 1 || "$NODES_SET" == 0 ]] || die "--memory runs one node (standalone)"
		NODES=1
	fi
	command -v curl >/dev/null || die "curl is missing"
	rm -f "$DIR/cluster.env"
	LB_URL="" LB_PORT="" LB_STATS_URL="" HAPROXY_PID="" HAPROXY_START=""
	REDIS_URL="" REDIS_PORT="" REDIS_PID="" REDIS_START=""
	build
	save_node_env
	local i
	for ((i = 1; i <= NODES; i++)); do
		free_port
		NODE_PORT[i]=$PORT
		free_port
		NODE_ADMIN[i]=$PORT
	done
	# However start ends before it is done (a failed step, die, a signal),
	# it stops what it started.
	trap 'start_failed' EXIT
	if [[ "$MODE" == redis ]]; then
		start_redis
	fi
	for ((i = 1; i <= NODES; i++)); do
		start_node "$i"
	done
	if [[ "$LB" == 1 ]]; then
		start_haproxy
	fi
	trap - EXIT
	write_env
	log "started in $DIR ($NODES node(s), ${MODE}${LB_URL:+, haproxy})"
	cmd_status || true
	echo "source $DIR/cluster.env"
}

start_failed() {
	log "start failed; stopping what was started (logs in $DIR)"
	cmd_stop || true
}

# save_node_env writes DIR/node.env: the node settings of this environment,
# i.e. the variables named after ssenode's flags (-drain-window: DRAIN_WINDOW),
# except the four cluster.sh sets per node.
save_node_env() {
	local flag v
	: >"$DIR/node.env"
	while read -r flag; do
		v=$(tr 'a-z-' 'A-Z_' <<<"$flag")
		case "$v" in REDIS_URL | NODE_ID | HTTP_ADDR | ADMIN_ADDR) continue ;; esac
		if [[ -n "${!v+x}" ]]; then
			printf '%s=%s\n' "$v" "${!v}" >>"$DIR/node.env"
		fi
	done < <("$SSENODE_BIN" -h 2>&1 | sed -n 's/^  -\([a-z0-9-]*\).*/\1/p')
}

# procs prints "START NAME PID" for every process start launched.
procs() {
	local i
	[[ -z "$REDIS_PID" ]] || echo "$REDIS_START redis $REDIS_PID"
	for ((i = 1; i <= NODES; i++)); do
		[[ -z "${NODE_PID[i]:-}" ]] || echo "${NODE_START[i]} node$i ${NODE_PID[i]}"
	done
	[[ -z "$HAPROXY_PID" ]] || echo "$HAPROXY_START haproxy $HAPROXY_PID"
}

any_alive() {
	local st name pid
	while read -r st name pid; do
		alive "$pid" "$st" && return 0
	done < <(procs)
	return 1
}

cmd_stop() {
	trap - EXIT
	if [[ -f "$DIR/cluster.env" ]]; then
		load_env
	else
		die "no cluster in $DIR (no cluster.env)"
	fi
	local st name pid sig timeout failed=0
	# Newest first: HAProxy, then the nodes (a node restarted last goes
	# first), Redis last, so no node logs a lost Redis while it stops.
	while read -r st name pid; do
		# A node stops at once on SIGINT (every stream gets a retry hint and
		# is closed); SIGTERM would drain it over DRAIN_WINDOW first.
		sig=TERM timeout=15
		[[ "$name" == node* ]] && sig=INT
		stop_proc "$name" "$pid" "$st" "$sig" "$timeout" || failed=1
	done < <(procs | sort -rn)
	[[ "$failed" == 0 ]] || die "some processes did not stop"
	log "stopped ${DIR}"
}

node_index() {
	if ! [[ "$1" =~ ^[1-9][0-9]*$ ]] || (($1 > NODES)); then
		die "no node $1 (nodes 1..$NODES)"
	fi
}

cmd_kill_node() {
	load_env
	node_index "$ARG"
	local i=$ARG
	alive "${NODE_PID[i]}" "${NODE_START[i]}" || die "node$i is not running"
	stop_proc "node$i" "${NODE_PID[i]}" "${NODE_START[i]}" KILL 5
	log "node$i (pid ${NODE_PID[i]}) killed"
}

cmd_restart_node() {
	load_env
	node_index "$ARG"
	local i=$ARG
	stop_proc "node$i" "${NODE_PID[i]}" "${NODE_START[i]}" TERM "$RESTART_TIMEOUT"
	start_node "$i"
	if [[ -n "$HAPROXY_PID" ]] && alive "$HAPROXY_PID" "$HAPROXY_START"; then
		wait_until 15 haproxy "$HAPROXY_PID" "$HAPROXY_START" lb_up "node$i"
	fi
	log "node$i restarted (pid ${NODE_PID[i]})"
}

# signal_wait NAME PID START SIGNAL: sends SIGNAL (STOP or CONT) and waits
# until the process is frozen, or running again.
signal_wait() {
	local name=$1 pid=$2 st=$3 sig=$4 i
	alive "$pid" "$st" || die "$name is not running"
	kill -s "$sig" "$pid"
	for ((i = 0; i < 100; i++)); do
		if [[ "$sig" == STOP ]] && frozen "$pid"; then return 0; fi
		if [[ "$sig" == CONT ]] && ! frozen "$pid"; then return 0; fi
		sleep 0.01
	done
	die "$name (pid $pid) did not take SIG$sig"
}

cmd_freeze_node() {
	load_env
	node_index "$ARG"
	signal_wait "node$ARG" "${NODE_PID[ARG]}" "${NODE_START[ARG]}" STOP
	log "node$ARG (pid ${NODE_PID[ARG]}) frozen"
}

cmd_thaw_node() {
	load_env
	node_index "$ARG"
	signal_wait "node$ARG" "${NODE_PID[ARG]}" "${NODE_START[ARG]}" CONT
	log "node$ARG (pid ${NODE_PID[ARG]}) thawed"
}

need_redis() {
	load_env
	[[ "$MODE" == redis ]] || die "a --memory cluster has no Redis"
}

# Redis stops on SIGTERM the way SHUTDOWN does: with --aof it writes and
# fsyncs the append-only file first, so everything it acknowledged is
# there when it starts again.
cmd_stop_redis() {
	need_redis
	alive "$REDIS_PID" "$REDIS_START" || die "redis is not running"
	stop_proc redis "$REDIS_PID" "$REDIS_START" TERM 30
	log "redis (pid $REDIS_PID) stopped"
}

cmd_start_redis() {
	need_redis
	! alive "$REDIS_PID" "$REDIS_START" || die "redis runs already (pid $REDIS_PID)"
	start_redis
	log "redis started on port $REDIS_PORT (pid $REDIS_PID)"
}

cmd_restart_redis() {
	need_redis
	stop_proc redis "$REDIS_PID" "$REDIS_START" TERM 30
	start_redis
	log "redis restarted on port $REDIS_PORT (pid $REDIS_PID)"
}

cmd_freeze_redis() {
	need_redis
	signal_wait redis "$REDIS_PID" "$REDIS_START" STOP
	log "redis (pid $REDIS_PID) frozen"
}

cmd_thaw_redis() {
	need_redis
	signal_wait redis "$REDIS_PID" "$REDIS_START" CONT
	log "redis (pid $REDIS_PID) thawed"
}

# HAProxy stops at once on SIGTERM (-db: no master process; SIGUSR1 would
# wait for every stream to end, i.e. for ever).
cmd_restart_lb() {
	load_env
	[[ -n "$LB_PORT" ]] || die "this cluster has no load balancer (--no-lb)"
	stop_proc haproxy "$HAPROXY_PID" "$HAPROXY_START" TERM 15
	start_haproxy
	log "haproxy restarted on port $LB_PORT (pid $HAPROXY_PID)"
}

# status prints one line per process; exits 1 when one is down or not ready.
cmd_status() {
	[[ -n "${CLUSTER_MODE:-}" ]] || load_env
	local st name pid state ok=0 url
	printf '%-8s %-8s %-9s %s\n' NAME PID STATE ADDRESS
	while read -r st name pid; do
		state=running url=""
		case "$name" in
		redis)
			url=$REDIS_URL
			timeout 2 redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && state=ready
			;;
		node*)
			url="http://127.0.0.1:${NODE_PORT[${name#node}]}"
			curl -fsS --max-time 1 -o /dev/null "$url/readyz" 2>/dev/null && state=ready
			;;
		haproxy)
			url="$LB_URL (stats $LB_STATS_URL/stats)"
			curl -fsS --max-time 1 -o /dev/null "$LB_STATS_URL/healthz" 2>/dev/null && state=ready
			;;
		esac
		if ! alive "$pid" "$st"; then
			state=down
		elif frozen "$pid"; then
			state=frozen
		fi
		[[ "$state" == ready ]] || ok=1
		printf '%-8s %-8s %-9s %s\n' "$name" "$pid" "$state" "$url"
	done < <(procs)
	if [[ -n "$LB_STATS_URL" ]] && alive "$HAPROXY_PID" "$HAPROXY_START"; then
		curl -fsS --max-time 1 "$LB_STATS_URL/stats;csv" 2>/dev/null |
			awk -F, '$1 == "streams" && $2 != "BACKEND" { printf "  lb: %s %s, %s streams\n", $2, $18, $5 }' || true
	fi
	return "$ok"
}

# ---- command line ---------------------------------------------------------

[[ $# -gt 0 ]] || usage
CMD=$1
shift
DIR=${CLUSTER_DIR:-} NODES=3 NODES_SET=0 MODE=redis LB=1 AOF=0 ARG=""
while [[ $# -gt 0 ]]; do
	case "$1" in
	-n) [[ $# -ge 2 ]] || usage; NODES=$2 NODES_SET=1; shift 2 ;;
	-d) [[ $# -ge 2 ]] || usage; DIR=$2; shift 2 ;;
	--memory) MODE=memory; shift ;;
	--no-lb) LB=0; shift ;;
	--aof) AOF=1; shift ;;
	-h | --help) usage ;;
	-*) die "unknown option $1" ;;
	*) [[ -z "$ARG" ]] || usage; ARG=$1; shift ;;
	esac
done
if [[ -n "$DIR" && "$CMD" != start ]]; then
	DIR=$(cd "$DIR" && pwd) || die "no directory $DIR"
fi

case "$CMD" in
start) [[ -z "$ARG" ]] || usage; cmd_start ;;
stop) [[ -n "$DIR" ]] || die "-d DIR is required"; cmd_stop ;;
status) cmd_status ;;
kill-node) [[ -n "$ARG" ]] || usage; cmd_kill_node ;;
restart-node) [[ -n "$ARG" ]] || usage; cmd_restart_node ;;
freeze-node) [[ -n "$ARG" ]] || usage; cmd_freeze_node ;;
thaw-node) [[ -n "$ARG" ]] || usage; cmd_thaw_node ;;
stop-redis) [[ -z "$ARG" ]] || usage; cmd_stop_redis ;;
start-redis) [[ -z "$ARG" ]] || usage; cmd_start_redis ;;
restart-redis) [[ -z "$ARG" ]] || usage; cmd_restart_redis ;;
freeze-redis) [[ -z "$ARG" ]] || usage; cmd_freeze_redis ;;
thaw-redis) [[ -z "$ARG" ]] || usage; cmd_thaw_redis ;;
restart-lb) [[ -z "$ARG" ]] || usage; cmd_restart_lb ;;
*) usage ;;
esac
