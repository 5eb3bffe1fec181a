#!/usr/bin/env bash
# A local ssecluster on loopback: Redis (one redis-server, a Sentinel group
# or a Redis Cluster), K ssenode processes and an HAProxy in front of them,
# each on a free 127.0.0.1 port, running in the background until stopped.
#
#   cluster.sh start [-n K] [--memory | --sentinel | --redis-cluster] [--no-lb]
#                    [--no-nodes] [--aof] [--redis-url URL] [-d DIR]
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
#   cluster.sh redis-master [SLOT] -d DIR
#                                      print the port of the current master:
#                                      the one Redis; with --sentinel the one
#                                      a sentinel names; with --redis-cluster
#                                      the one serving SLOT (default 0)
#   cluster.sh kill-redis-master [SLOT] -d DIR
#                                      (--sentinel, --redis-cluster) SIGKILL
#                                      that master, thaw the replicas
#                                      pause-replicas stopped, wait until a
#                                      replica is promoted and serves, print
#                                      the new master's port. Sentinel: every
#                                      running sentinel names it, it answers
#                                      ROLE master and the other running data
#                                      servers replicate from it. Cluster: it
#                                      serves SLOT, as every running server
#                                      sees it, and cluster_state is ok on all
#   cluster.sh pause-replicas -d DIR   (--sentinel) SIGSTOP the replicas of
#                                      the current master and cut their links
#                                      to it (CLIENT KILL TYPE replica), so
#                                      what is written from then on is on the
#                                      master only: kill-redis-master then
#                                      loses it. Keep it under ~10 s: a replica
#                                      out of touch for longer than 10 times
#                                      down-after-milliseconds is never promoted
#   cluster.sh resume-replicas -d DIR  (--sentinel) SIGCONT them, wait until
#                                      they replicate again (they catch up)
#   cluster.sh restart-redis-server PORT -d DIR
#                                      (--sentinel, --redis-cluster) start the
#                                      killed data server of PORT again with
#                                      its arguments; Sentinel: as a replica
#                                      of the current master, wait until it
#                                      replicates; Cluster: it rejoins from its
#                                      nodes.conf (a replica if it lost its
#                                      slots), wait until every server has it
#                                      connected and cluster_state ok. Without
#                                      --aof a master that comes back before
#                                      its failover comes back empty
#   cluster.sh reshard N    -d DIR     (--redis-cluster) move N slots from the
#                                      master serving slot 0 to the master of
#                                      the lowest port among the others
#                                      (redis-cli --cluster reshard), wait for
#                                      redis-cli --cluster check, print the
#                                      port of the master serving slot 0 now
#   cluster.sh restart-lb   -d DIR     SIGTERM HAProxy (a hard stop: every
#                                      connection through it is closed), start
#                                      it again on its ports, wait until it
#                                      sees every running node UP
#   cluster.sh stop         -d DIR     stop everything start launched: HAProxy,
#                                      the nodes (newest first), the sentinels,
#                                      Redis; nodes get SIGINT (stop at once,
#                                      no drain: HAProxy is gone already);
#                                      frozen processes are thawed to stop
#
# Every subcommand acts only on the processes this cluster started, keeps
# their ports, fails when the process it needs is not running and waits for
# what it does with a deadline. Ports printed by redis-master and the
# commands after it are those of cluster.env's REDIS_PORTS.
#
# start options:
#   -n K       nodes (default 3), NODE_ID node1..nodeK
#   --memory   standalone in-memory broker: one node, no Redis
#   --sentinel a Sentinel group instead of one redis-server: a master and two
#              replicas (redis-1..redis-3, redis-1 the first master) and three
#              sentinels (sentinel-1..3; quorum 2, down-after-milliseconds
#              1000, failover-timeout 5000, master name ssecluster), each in
#              DIR/<name>/; the nodes get REDIS_SENTINEL_URL
#   --redis-cluster
#              a Redis Cluster instead: redis-1..redis-6 (cluster-enabled,
#              cluster-node-timeout 1000), three masters with one replica each
#              (redis-cli --cluster create --cluster-replicas 1), each in
#              DIR/redis-I/ with its nodes.conf; the nodes get
#              REDIS_CLUSTER_URL (every server as a seed)
#   --no-lb    no HAProxy; LB_URL is empty and TARGET_URL is node1
#   --no-nodes Redis only (whichever topology): no node, no HAProxy, nothing
#              built; NODES=0 and TARGET_URL is empty. For tests of the broker
#              against a Sentinel group or a cluster
#   --aof      Redis with an append-only file (everysec) in DIR (each data
#              server's); default: no persistence at all (--save ""
#              --appendonly no)
#   --redis-url URL
#              no Redis of its own: the nodes get REDIS_URL=URL, a Redis the
#              caller runs (and stops), e.g. behind a proxy that delays or
#              cuts its traffic. Not with --memory, --sentinel,
#              --redis-cluster or --aof; the subcommands of the single Redis
#              (stop-redis, freeze-redis, ...) refuse, REDIS_PORT is empty
#   -d DIR     where state and logs go (default: a new /tmp/ssecluster.XXXXXX,
#              printed); -d may also come from $CLUSTER_DIR
#
# Every process is started with setsid/nohup, so start returns while they run;
# each one logs to DIR/<name>.log. start writes DIR/cluster.env, which scripts
# can `source`:
#
#   CLUSTER_DIR CLUSTER_MODE (redis|memory) NODES
#   CLUSTER_REDIS          single|sentinel|cluster (empty with --memory)
#   TARGET_URL             where clients go: LB_URL, or node1 without LB
#                          (empty with --no-nodes)
#   LB_URL LB_STATS_URL HAPROXY_PID            (empty with --no-lb)
#   REDIS_URL REDIS_PORT REDIS_PID REDIS_AOF   the single Redis (REDIS_URL,
#                          REDIS_PORT and REDIS_PID are empty with --memory,
#                          --sentinel and --redis-cluster; REDIS_AOF is 0 or 1;
#                          with --redis-url, REDIS_URL is URL and the others empty)
#   REDIS_PORTS REDIS_PIDS the data servers of --sentinel and --redis-cluster,
#                          redis-1 first (REDIS_PIDS keeps a killed server's
#                          old pid until restart-redis-server replaces it)
#   REDIS_SENTINEL_URL SENTINEL_PORTS SENTINEL_PIDS REDIS_MASTER_NAME
#                          (--sentinel) what the nodes get; the sentinels
#   REDIS_CLUSTER_URL      (--redis-cluster) what the nodes get
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
# REDIS_SENTINEL_URL, REDIS_CLUSTER_URL, NODE_ID, HTTP_ADDR and ADMIN_ADDR come
# from the environment of `start` (LOG_LEVEL, PARTITIONS, DRAIN_WINDOW,
# PUBLISH_WAIT_REPLICAS, ...: every variable named after one of `ssenode -h`'s
# flags); they are saved in DIR/node.env so restart-node starts the node the
# same way.
#
# Needs: redis-server and redis-cli (not with --memory; --sentinel runs the
# sentinels as redis-server --sentinel), haproxy (not with --no-lb), curl, ss.
# On Debian, as root: apt-get install -y redis-server haproxy (.ci/test.sh
# installs them when missing).
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
# Per data server of --sentinel and --redis-cluster (redis-1..), and per
# sentinel (sentinel-1..): 1-based. RS_BUS: the cluster bus ports.
RS_PORT=() RS_BUS=() RS_PID=() RS_START=()
SN_PORT=() SN_PID=() SN_START=()
MASTER_NAME=ssecluster
REDIS_SENTINEL_URL="" REDIS_CLUSTER_URL=""

write_env() {
	local i ids="" urls="" admins="" ports="" aports="" pids="" starts=""
	for ((i = 1; i <= NODES; i++)); do
		ids+="node$i " urls+="http://127.0.0.1:${NODE_PORT[i]} " admins+="http://127.0.0.1:${NODE_ADMIN[i]} "
		ports+="${NODE_PORT[i]} " aports+="${NODE_ADMIN[i]} "
		pids+="${NODE_PID[i]:-} " starts+="${NODE_START[i]:-} "
	done
	local target=""
	((NODES == 0)) || target=${LB_URL:-http://127.0.0.1:${NODE_PORT[1]}}
	local rports="" rbus="" rpids="" rstarts="" sports="" spids="" sstarts=""
	for ((i = 1; i <= ${#RS_PORT[@]}; i++)); do
		rports+="${RS_PORT[i]} " rbus+="${RS_BUS[i]:+${RS_BUS[i]} }"
		rpids+="${RS_PID[i]:-} " rstarts+="${RS_START[i]:-} "
	done
	for ((i = 1; i <= ${#SN_PORT[@]}; i++)); do
		sports+="${SN_PORT[i]} " spids+="${SN_PID[i]:-} " sstarts+="${SN_START[i]:-} "
	done
	local master_name=""
	[[ "$TOPO" != sentinel ]] || master_name=$MASTER_NAME
	# NAME="value" when the value needs no escaping (always, in practice:
	# the URLs' ? & = are plain inside double quotes), so other tools can
	# read the file too.
	local plain='^[A-Za-z0-9 :/._,@+?&=-]*$'
	kv() {
		if [[ "$2" =~ $plain ]]; then
			printf '%s="%s"\n' "$1" "$2"
		else
			printf '%s=%q\n' "$1" "$2"
		fi
	}
	{
		echo "# written by deploy/cluster/cluster.sh; source it"
		kv CLUSTER_DIR "$DIR"
		kv CLUSTER_MODE "$MODE"
		kv CLUSTER_REDIS "$TOPO"
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
		kv REDIS_SENTINEL_URL "$REDIS_SENTINEL_URL"
		kv REDIS_CLUSTER_URL "$REDIS_CLUSTER_URL"
		kv REDIS_MASTER_NAME "$master_name"
		kv REDIS_PORTS "${rports% }"
		kv REDIS_BUS_PORTS "${rbus% }"
		kv REDIS_PIDS "${rpids% }"
		kv REDIS_STARTS "${rstarts% }"
		kv SENTINEL_PORTS "${sports% }"
		kv SENTINEL_PIDS "${spids% }"
		kv SENTINEL_STARTS "${sstarts% }"
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
	# CLUSTER_REDIS is missing from the files of older versions: single.
	MODE=$CLUSTER_MODE AOF=${REDIS_AOF:-0}
	TOPO=${CLUSTER_REDIS-single}
	[[ "$MODE" == redis ]] || TOPO=""
	local p a pid st b i=1
	read -ra p <<<"$NODE_PORTS"
	read -ra a <<<"$NODE_ADMIN_PORTS"
	read -ra pid <<<"$NODE_PIDS"
	read -ra st <<<"$NODE_STARTS"
	for ((i = 1; i <= NODES; i++)); do
		NODE_PORT[i]=${p[i - 1]} NODE_ADMIN[i]=${a[i - 1]}
		NODE_PID[i]=${pid[i - 1]:-} NODE_START[i]=${st[i - 1]:-}
	done
	read -ra p <<<"${REDIS_PORTS:-}"
	read -ra b <<<"${REDIS_BUS_PORTS:-}"
	read -ra pid <<<"${REDIS_PIDS:-}"
	read -ra st <<<"${REDIS_STARTS:-}"
	for ((i = 1; i <= ${#p[@]}; i++)); do
		RS_PORT[i]=${p[i - 1]} RS_BUS[i]=${b[i - 1]:-}
		RS_PID[i]=${pid[i - 1]:-} RS_START[i]=${st[i - 1]:-}
	done
	read -ra p <<<"${SENTINEL_PORTS:-}"
	read -ra pid <<<"${SENTINEL_PIDS:-}"
	read -ra st <<<"${SENTINEL_STARTS:-}"
	for ((i = 1; i <= ${#p[@]}; i++)); do
		SN_PORT[i]=${p[i - 1]} SN_PID[i]=${pid[i - 1]:-} SN_START[i]=${st[i - 1]:-}
	done
	REDIS_SENTINEL_URL=${REDIS_SENTINEL_URL:-} REDIS_CLUSTER_URL=${REDIS_CLUSTER_URL:-}
}

# ---- components -----------------------------------------------------------

# start_redis: starts Redis on REDIS_PORT (a free port when empty) and
# waits for PING.
start_redis() {
	need_redis_tools
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

# ---- Sentinel group and Redis Cluster -------------------------------------

# How long kill-redis-master waits for the failover, in seconds. A Sentinel
# failover takes ~2-3 s (down-after-milliseconds 1000, then the vote); one
# that found no fit replica (just thawed after pause-replicas) is tried
# again after twice failover-timeout (10 s). A cluster's takes ~2 s
# (cluster-node-timeout 1000).
FAILOVER_TIMEOUT=${FAILOVER_TIMEOUT:-30}

need_redis_tools() {
	command -v redis-server >/dev/null || die "redis-server is missing (apt-get install -y redis-server)"
	command -v redis-cli >/dev/null || die "redis-cli is missing (apt-get install -y redis-server)"
}

# rcli PORT ARGS...: one redis-cli command to 127.0.0.1:PORT, bounded (a
# frozen server never answers), its errors dropped, CRs stripped.
rcli() {
	local port=$1 out
	shift
	out=$(timeout 2 redis-cli -p "$port" "$@" 2>/dev/null) || return 1
	tr -d '\r' <<<"$out"
}

# info_field PORT SECTION FIELD prints FIELD of INFO SECTION.
info_field() {
	rcli "$1" info "$2" | sed -n "s/^$3://p"
}

# role PORT prints the first line of ROLE: master, slave or sentinel.
role() {
	rcli "$1" role | head -n 1
}

# rs_index PORT prints the index of this cluster's data server on PORT.
rs_index() {
	local i
	for ((i = 1; i <= ${#RS_PORT[@]}; i++)); do
		if [[ "${RS_PORT[i]}" == "$1" ]]; then
			echo "$i"
			return 0
		fi
	done
	return 1
}

# rs_running I: data server I runs and is not frozen.
rs_running() {
	alive "${RS_PID[$1]:-}" "${RS_START[$1]:-}" && ! frozen "${RS_PID[$1]}"
}

# sn_running I: sentinel I runs and is not frozen.
sn_running() {
	alive "${SN_PID[$1]:-}" "${SN_START[$1]:-}" && ! frozen "${SN_PID[$1]}"
}

# redis_server_args I sets RARGS to the arguments data server I starts with,
# at start and at restart-redis-server alike (a Sentinel replica gets
# --replicaof on top).
redis_server_args() {
	local i=$1
	# A replica's full sync starts at once (by default a master waits 5 s
	# for more replicas to share its diskless transfer).
	RARGS=(--port "${RS_PORT[i]}" --bind 127.0.0.1 --dir "$DIR/redis-$i" --daemonize no --save ""
		--repl-diskless-sync-delay 0)
	if [[ "$AOF" == 1 ]]; then
		RARGS+=(--appendonly yes --appendfsync everysec)
	else
		RARGS+=(--appendonly no)
	fi
	if [[ "$TOPO" == cluster ]]; then
		# The bus port is a free one of its own: the default, port+10000,
		# may be in the ephemeral range or taken.
		RARGS+=(--cluster-enabled yes --cluster-config-file nodes.conf
			--cluster-node-timeout 1000 --cluster-port "${RS_BUS[i]}")
	fi
}

# start_data_server I [MASTER_PORT]: starts data server I (a replica of
# MASTER_PORT when given) in DIR/redis-I and waits for PING.
start_data_server() {
	local i=$1 of=${2:-}
	mkdir -p "$DIR/redis-$i"
	redis_server_args "$i"
	[[ -z "$of" ]] || RARGS+=(--replicaof 127.0.0.1 "$of")
	launch "redis-$i" redis-server "${RARGS[@]}"
	RS_PID[i]=$LAUNCHED_PID RS_START[i]=$LAUNCHED_START
	write_env
	wait_until 15 "redis-$i" "${RS_PID[i]}" "${RS_START[i]}" rcli "${RS_PORT[i]}" ping
}

# start_sentinel I: starts sentinel I and waits for PING. Its configuration
# is written the first time only: a sentinel rewrites its file with what it
# learns (the current master, the replicas, the other sentinels, the
# epochs), and needs it writable.
start_sentinel() {
	local i=$1
	local d="$DIR/sentinel-$i"
	mkdir -p "$d"
	if [[ ! -f "$d/sentinel.conf" ]]; then
		printf '%s\n' "port ${SN_PORT[i]}" "bind 127.0.0.1" "daemonize no" "dir $d" \
			"sentinel monitor $MASTER_NAME 127.0.0.1 ${RS_PORT[1]} 2" \
			"sentinel down-after-milliseconds $MASTER_NAME 1000" \
			"sentinel failover-timeout $MASTER_NAME 5000" \
			"sentinel parallel-syncs $MASTER_NAME 1" >"$d/sentinel.conf"
	fi
	launch "sentinel-$i" redis-server "$d/sentinel.conf" --sentinel
	SN_PID[i]=$LAUNCHED_PID SN_START[i]=$LAUNCHED_START
	write_env
	wait_until 15 "sentinel-$i" "${SN_PID[i]}" "${SN_START[i]}" rcli "${SN_PORT[i]}" ping
}

# sentinel_field PORT FIELD prints FIELD of SENTINEL MASTER (flags,
# num-slaves, num-other-sentinels, ...).
sentinel_field() {
	rcli "$1" sentinel master "$MASTER_NAME" | awk -v f="$2" 'prev == f { print; exit } { prev = $0 }'
}

# sentinel_names PORT prints the port of the master sentinel PORT names.
sentinel_names() {
	rcli "$1" sentinel get-master-addr-by-name "$MASTER_NAME" | sed -n 2p
}

# sentinels_settled: every sentinel sees the others and both replicas.
sentinels_settled() {
	local i p
	for ((i = 1; i <= ${#SN_PORT[@]}; i++)); do
		p=${SN_PORT[i]}
		[[ "$(sentinel_field "$p" num-other-sentinels)" == $((${#SN_PORT[@]} - 1)) ]] || return 1
		[[ "$(sentinel_field "$p" num-slaves)" == $((${#RS_PORT[@]} - 1)) ]] || return 1
		[[ "$(rcli "$p" sentinel ckquorum "$MASTER_NAME")" == OK* ]] || return 1
	done
}

# replicas_linked MASTER: every other running data server replicates from
# MASTER, its link up.
replicas_linked() {
	local m=$1 i p
	for ((i = 1; i <= ${#RS_PORT[@]}; i++)); do
		p=${RS_PORT[i]}
		if [[ "$p" == "$m" ]] || ! rs_running "$i"; then continue; fi
		[[ "$(info_field "$p" replication master_port)" == "$m" ]] || return 1
		[[ "$(info_field "$p" replication master_link_status)" == up ]] || return 1
	done
}

# failed_over OLD: every running sentinel names one master, not OLD, which
# answers ROLE master, and the other running data servers replicate from
# it; sets NEW_MASTER.
failed_over() {
	local old=$1 i p m=""
	for ((i = 1; i <= ${#SN_PORT[@]}; i++)); do
		sn_running "$i" || continue
		p=$(sentinel_names "${SN_PORT[i]}")
		[[ -n "$p" && "$p" != "$old" ]] || return 1
		[[ -z "$m" || "$m" == "$p" ]] || return 1
		m=$p
	done
	[[ -n "$m" && "$(role "$m")" == master ]] || return 1
	replicas_linked "$m" || return 1
	NEW_MASTER=$m
}

# start_sentinel_group: redis-1 (master), redis-2 and redis-3 (its
# replicas), then three sentinels; waits until the replicas are in sync and
# every sentinel knows the whole group.
start_sentinel_group() {
	need_redis_tools
	local i
	for ((i = 1; i <= 3; i++)); do
		free_port
		RS_PORT[i]=$PORT
	done
	for ((i = 1; i <= 3; i++)); do
		free_port
		SN_PORT[i]=$PORT
	done
	start_data_server 1
	start_data_server 2 "${RS_PORT[1]}"
	start_data_server 3 "${RS_PORT[1]}"
	wait_until 30 replication "" "" replicas_linked "${RS_PORT[1]}"
	for ((i = 1; i <= 3; i++)); do
		start_sentinel "$i"
	done
	REDIS_SENTINEL_URL="redis://127.0.0.1:${SN_PORT[1]}?addr=127.0.0.1:${SN_PORT[2]}&addr=127.0.0.1:${SN_PORT[3]}&master_name=$MASTER_NAME"
	write_env
	wait_until 30 sentinels "" "" sentinels_settled
}

# cluster_nodes prints CLUSTER NODES as the first running data server that
# answers sees it.
cluster_nodes() {
	local i out
	for ((i = 1; i <= ${#RS_PORT[@]}; i++)); do
		rs_running "$i" || continue
		if out=$(rcli "${RS_PORT[i]}" cluster nodes) && [[ -n "$out" ]]; then
			echo "$out"
			return 0
		fi
	done
	return 1
}

# slot_master_of SLOT prints the port of the master that serves SLOT in the
# CLUSTER NODES lines on stdin (one not flagged fail; "fail?", a suspicion,
# still serves). Fields: id ip:port@bus[,host] flags master ping pong epoch
# link slots...; "[slot->-id]" marks a migration.
slot_master_of() {
	awk -v s="$1" '
		BEGIN { s += 0 }
		$3 ~ /master/ && $3 !~ /(^|,)fail(,|$)/ {
			for (i = 9; i <= NF; i++) {
				if ($i ~ /^\[/) continue
				n = split($i, r, "-")
				lo = r[1] + 0
				hi = (n > 1 ? r[2] : r[1]) + 0
				if (s >= lo && s <= hi) {
					split($2, a, "[:@,]")
					print a[2]
					exit
				}
			}
		}'
}

# cluster_settled [SLOT OLD]: cluster_state is ok on every running data
# server and each sees every running one connected and not failing; with
# SLOT, each also sees SLOT served by one master, not OLD, which answers
# ROLE master: sets NEW_MASTER.
cluster_settled() {
	local slot=${1:-} old=${2:-} i p q nodes s m="" running=()
	for ((i = 1; i <= ${#RS_PORT[@]}; i++)); do
		rs_running "$i" && running+=("${RS_PORT[i]}")
	done
	((${#running[@]} > 0)) || return 1
	for p in "${running[@]}"; do
		[[ "$(rcli "$p" cluster info | sed -n 's/^cluster_state://p')" == ok ]] || return 1
		nodes=$(rcli "$p" cluster nodes) || return 1
		for q in "${running[@]}"; do
			awk -v q="$q" '
				{ split($2, a, "[:@,]") }
				a[2] == q { found = 1; if ($3 ~ /fail/ || $8 != "connected") bad = 1 }
				END { exit (bad || !found) }' <<<"$nodes" || return 1
		done
		if [[ -n "$slot" ]]; then
			s=$(slot_master_of "$slot" <<<"$nodes")
			[[ -n "$s" && "$s" != "$old" ]] || return 1
			[[ -z "$m" || "$m" == "$s" ]] || return 1
			m=$s
		fi
	done
	if [[ -n "$slot" ]]; then
		[[ "$(role "$m")" == master ]] || return 1
		NEW_MASTER=$m
	fi
}

# cluster_checked PORT: redis-cli --cluster check passes (every slot
# covered, no slot open, all servers agree).
cluster_checked() {
	timeout 10 redis-cli --cluster check "127.0.0.1:$1" >/dev/null 2>&1
}

# start_redis_cluster: redis-1..redis-6, made a cluster of three masters
# with a replica each; waits until it is settled and checked.
start_redis_cluster() {
	need_redis_tools
	local i addrs=() url
	for ((i = 1; i <= 6; i++)); do
		free_port
		RS_PORT[i]=$PORT
		free_port
		RS_BUS[i]=$PORT
	done
	for ((i = 1; i <= 6; i++)); do
		start_data_server "$i"
		addrs+=("127.0.0.1:${RS_PORT[i]}")
	done
	log "creating the Redis Cluster (log: $DIR/redis-cluster.log)"
	if ! timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
		>>"$DIR/redis-cluster.log" 2>&1; then
		tail -n 20 "$DIR/redis-cluster.log" >&2
		die "redis-cli --cluster create failed"
	fi
	url="redis://${addrs[0]}?"
	for ((i = 1; i < 6; i++)); do
		url+="addr=${addrs[i]}&"
	done
	REDIS_CLUSTER_URL=${url%&}
	write_env
	wait_until 30 redis-cluster "" "" cluster_settled
	wait_until 30 redis-cluster "" "" cluster_checked "${RS_PORT[1]}"
}

# master_port [SLOT] sets MASTER_PORT to the current master's port: the
# single Redis; the master the first running sentinel that answers names;
# the master serving SLOT (default 0), as the first running data server
# that answers sees it. Fails when none is known.
master_port() {
	local nodes
	MASTER_PORT=""
	case "$TOPO" in
	single) MASTER_PORT=$REDIS_PORT ;;
	sentinel)
		local i
		for ((i = 1; i <= ${#SN_PORT[@]}; i++)); do
			sn_running "$i" || continue
			MASTER_PORT=$(sentinel_names "${SN_PORT[i]}") || true
			[[ -z "$MASTER_PORT" ]] || break
		done
		;;
	cluster)
		if nodes=$(cluster_nodes); then
			MASTER_PORT=$(slot_master_of "${1:-0}" <<<"$nodes")
		fi
		;;
	esac
	[[ -n "$MASTER_PORT" ]]
}

# thaw_paused: SIGCONT every frozen data server (pause-replicas').
thaw_paused() {
	local i
	for ((i = 1; i <= ${#RS_PORT[@]}; i++)); do
		if alive "${RS_PID[i]:-}" "${RS_START[i]:-}" && frozen "${RS_PID[i]}"; then
			signal_wait "redis-$i" "${RS_PID[i]}" "${RS_START[i]}" CONT
			log "redis-$i (port ${RS_PORT[i]}) thawed"
		fi
	done
}

# start_node I: starts node I on its ports with the saved settings, waits
# for /readyz.
start_node() {
	local i=$1 env=()
	env+=(NODE_ID="node$i" HTTP_ADDR="127.0.0.1:${NODE_PORT[i]}" ADMIN_ADDR="127.0.0.1:${NODE_ADMIN[i]}")
	# Exactly the topology's variable, whatever the caller's environment
	# says (none: standalone).
	local unset=(-u REDIS_URL -u REDIS_SENTINEL_URL -u REDIS_CLUSTER_URL)
	case "$TOPO" in
	single) env+=(REDIS_URL="$REDIS_URL") ;;
	sentinel) env+=(REDIS_SENTINEL_URL="$REDIS_SENTINEL_URL") ;;
	cluster) env+=(REDIS_CLUSTER_URL="$REDIS_CLUSTER_URL") ;;
	esac
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
		[[ "$TOPO" == single ]] || die "--memory runs no Redis: not with --sentinel or --redis-cluster"
		[[ "$NO_NODES" == 0 ]] || die "--memory --no-nodes would start nothing"
		[[ "$NODES" == 1 || "$NODES_SET" == 0 ]] || die "--memory runs one node (standalone)"
		NODES=1 TOPO=""
	fi
	if [[ -n "$EXT_REDIS_URL" ]]; then
		[[ "$MODE" == redis && "$TOPO" == single && "$AOF" == 0 ]] ||
			die "--redis-url: the nodes use that Redis; not with --memory, --sentinel, --redis-cluster or --aof"
	fi
	if [[ "$NO_NODES" == 1 ]]; then
		[[ "$NODES_SET" == 0 ]] || die "--no-nodes starts no node: not with -n"
		NODES=0 LB=0
	fi
	command -v curl >/dev/null || die "curl is missing"
	rm -f "$DIR/cluster.env"
	LB_URL="" LB_PORT="" LB_STATS_URL="" HAPROXY_PID="" HAPROXY_START=""
	REDIS_URL="" REDIS_PORT="" REDIS_PID="" REDIS_START=""
	SSENODE_BIN=""
	if ((NODES > 0)); then
		build
		save_node_env
	fi
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
	case "$TOPO" in
	single)
		if [[ -n "$EXT_REDIS_URL" ]]; then
			REDIS_URL=$EXT_REDIS_URL
			write_env
		else
			start_redis
		fi
		;;
	sentinel) start_sentinel_group ;;
	cluster) start_redis_cluster ;;
	esac
	for ((i = 1; i <= NODES; i++)); do
		start_node "$i"
	done
	if [[ "$LB" == 1 ]]; then
		start_haproxy
	fi
	trap - EXIT
	write_env
	local what=$MODE
	[[ "$TOPO" != sentinel && "$TOPO" != cluster ]] || what+=" $TOPO"
	log "started in $DIR ($NODES node(s), ${what}${LB_URL:+, haproxy})"
	cmd_status || true
	echo "source $DIR/cluster.env"
}

start_failed() {
	log "start failed; stopping what was started (logs in $DIR)"
	cmd_stop || true
}

# save_node_env writes DIR/node.env: the node settings of this environment,
# i.e. the variables named after ssenode's flags (-drain-window: DRAIN_WINDOW),
# except those cluster.sh sets: the topology's and three per node.
save_node_env() {
	local flag v
	: >"$DIR/node.env"
	while read -r flag; do
		v=$(tr 'a-z-' 'A-Z_' <<<"$flag")
		case "$v" in
		REDIS_URL | REDIS_SENTINEL_URL | REDIS_CLUSTER_URL | NODE_ID | HTTP_ADDR | ADMIN_ADDR) continue ;;
		esac
		if [[ -n "${!v+x}" ]]; then
			printf '%s=%s\n' "$v" "${!v}" >>"$DIR/node.env"
		fi
	done < <("$SSENODE_BIN" -h 2>&1 | sed -n 's/^  -\([a-z0-9-]*\).*/\1/p')
}

# procs prints "START NAME PID" for every process start launched.
procs() {
	local i
	[[ -z "$REDIS_PID" ]] || echo "$REDIS_START redis $REDIS_PID"
	for ((i = 1; i <= ${#RS_PORT[@]}; i++)); do
		[[ -z "${RS_PID[i]:-}" ]] || echo "${RS_START[i]} redis-$i ${RS_PID[i]}"
	done
	for ((i = 1; i <= ${#SN_PORT[@]}; i++)); do
		[[ -z "${SN_PID[i]:-}" ]] || echo "${SN_START[i]} sentinel-$i ${SN_PID[i]}"
	done
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
	# HAProxy, then the nodes (newest first: a node restarted last goes
	# first), then the sentinels (no failover while the data servers stop),
	# Redis last, so no node logs a lost Redis while it stops.
	while read -r _ st name pid; do
		# A node stops at once on SIGINT (every stream gets a retry hint and
		# is closed); SIGTERM would drain it over DRAIN_WINDOW first.
		sig=TERM timeout=15
		[[ "$name" == node* ]] && sig=INT
		stop_proc "$name" "$pid" "$st" "$sig" "$timeout" || failed=1
	done < <(procs | awk '{ print ($2 == "haproxy" ? 0 : $2 ~ /^node/ ? 1 : $2 ~ /^sentinel/ ? 2 : 3), $0 }' |
		sort -k1,1n -k2,2rn)
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

# need_redis: the commands of the single Redis.
need_redis() {
	load_env
	[[ "$MODE" == redis ]] || die "a --memory cluster has no Redis"
	[[ "$TOPO" == single ]] ||
		die "$CMD acts on the single Redis; this cluster's is --$([[ "$TOPO" == sentinel ]] && echo sentinel || echo redis-cluster): see kill-redis-master, restart-redis-server"
	[[ -n "$REDIS_PORT" ]] || die "$CMD: this cluster runs no Redis of its own (--redis-url $REDIS_URL)"
}

# need_topology TOPO...: the cluster's Redis is one of these.
need_topology() {
	load_env
	local t
	for t in "$@"; do
		[[ "$TOPO" != "$t" ]] || return 0
	done
	local want=""
	for t in "$@"; do
		case "$t" in
		single) want+=", one Redis (the default)" ;;
		sentinel) want+=", --sentinel" ;;
		cluster) want+=", --redis-cluster" ;;
		esac
	done
	die "$CMD needs a cluster started with ${want#, } (this one: ${TOPO:---memory})"
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

# slot_arg: ARG, the slot of a --redis-cluster command (default 0); no
# argument for the other topologies.
slot_arg() {
	if [[ "$TOPO" != cluster ]]; then
		[[ -z "$ARG" ]] || die "$CMD SLOT: a slot is for --redis-cluster"
		SLOT=0
		return
	fi
	SLOT=${ARG:-0}
	if ! [[ "$SLOT" =~ ^[0-9]+$ ]] || ((10#$SLOT > 16383)); then
		die "no slot $SLOT (0..16383)"
	fi
	SLOT=$((10#$SLOT))
}

cmd_redis_master() {
	need_topology single sentinel cluster
	slot_arg
	# A moment without an answer (a sentinel or server busy, a suspicion
	# being cleared) is not an answer yet.
	wait_until 10 redis-master "" "" master_port "$SLOT" || die "no master known"
	echo "$MASTER_PORT"
}

cmd_kill_redis_master() {
	need_topology sentinel cluster
	slot_arg
	master_port "$SLOT" || die "no master known"
	local old=$MASTER_PORT i
	i=$(rs_index "$old") || die "the master's port $old is not one of this cluster's ($REDIS_PORTS)"
	alive "${RS_PID[i]}" "${RS_START[i]}" || die "redis-$i (port $old) is not running"
	stop_proc "redis-$i" "${RS_PID[i]}" "${RS_START[i]}" KILL 5
	log "redis-$i (port $old, pid ${RS_PID[i]}) killed"
	# After the kill, not before: thawed while the master ran, the replicas
	# would catch up on what was written while they were paused.
	thaw_paused
	NEW_MASTER=""
	if [[ "$TOPO" == sentinel ]]; then
		wait_until "$FAILOVER_TIMEOUT" failover "" "" failed_over "$old" ||
			die "no replica took over from port $old within ${FAILOVER_TIMEOUT}s"
	else
		wait_until "$FAILOVER_TIMEOUT" failover "" "" cluster_settled "$SLOT" "$old" ||
			die "no replica took slot $SLOT over from port $old within ${FAILOVER_TIMEOUT}s"
	fi
	log "redis-$(rs_index "$NEW_MASTER") (port $NEW_MASTER) is the master now"
	echo "$NEW_MASTER"
}

# no_replica_links PORT: the server on PORT has no replica connected.
no_replica_links() {
	[[ "$(info_field "$1" replication connected_slaves)" == 0 ]]
}

cmd_pause_replicas() {
	need_topology sentinel
	master_port || die "no sentinel names a master"
	local m=$MASTER_PORT i paused=""
	i=$(rs_index "$m") || die "the master's port $m is not one of this cluster's ($REDIS_PORTS)"
	rs_running "$i" || die "the master (redis-$i, port $m) is not running"
	for ((i = 1; i <= ${#RS_PORT[@]}; i++)); do
		if [[ "${RS_PORT[i]}" == "$m" ]] || ! rs_running "$i"; then continue; fi
		signal_wait "redis-$i" "${RS_PID[i]}" "${RS_START[i]}" STOP
		paused+=" redis-$i (port ${RS_PORT[i]})"
	done
	[[ -n "$paused" ]] || die "the master (port $m) has no running replica"
	# A stopped replica's socket still takes in what the master sends (the
	# kernel buffers it and the replica applies it once thawed): cut the
	# links, so that nothing written from now on reaches a replica.
	rcli "$m" client kill type replica >/dev/null || die "CLIENT KILL TYPE replica on port $m failed"
	wait_until 5 replica-links "" "" no_replica_links "$m" || die "port $m still has replicas connected"
	log "paused${paused}; the master (port $m) has no replica connected"
}

cmd_resume_replicas() {
	need_topology sentinel
	local i n=0
	for ((i = 1; i <= ${#RS_PORT[@]}; i++)); do
		if alive "${RS_PID[i]:-}" "${RS_START[i]:-}" && frozen "${RS_PID[i]}"; then
			signal_wait "redis-$i" "${RS_PID[i]}" "${RS_START[i]}" CONT
			n=$((n + 1))
		fi
	done
	if ((n == 0)); then
		log "no data server was paused"
		return
	fi
	master_port || die "no sentinel names a master"
	wait_until 15 replication "" "" replicas_linked "$MASTER_PORT" ||
		die "the resumed replicas do not replicate from port $MASTER_PORT"
	log "resumed $n replica(s); they replicate from port $MASTER_PORT"
}

cmd_restart_redis_server() {
	need_topology sentinel cluster
	[[ "$ARG" =~ ^[0-9]+$ ]] || usage
	local i
	i=$(rs_index "$ARG") || die "no data server on port $ARG (REDIS_PORTS: $REDIS_PORTS)"
	! alive "${RS_PID[i]}" "${RS_START[i]}" || die "redis-$i (port $ARG) runs already (pid ${RS_PID[i]})"
	if [[ "$TOPO" == sentinel ]]; then
		master_port || die "no sentinel names a master"
		if [[ "$MASTER_PORT" == "$ARG" ]]; then
			# Not failed over (yet): it is the master again, with what its
			# persistence kept (nothing without --aof).
			log "redis-$i (port $ARG) is still the sentinels' master: started as the master"
			start_data_server "$i"
		else
			start_data_server "$i" "$MASTER_PORT"
			wait_until 30 replication "" "" replicas_linked "$MASTER_PORT" ||
				die "redis-$i does not replicate from port $MASTER_PORT"
		fi
	else
		start_data_server "$i"
		wait_until 30 redis-cluster "" "" cluster_settled || die "redis-$i did not rejoin the cluster"
	fi
	log "redis-$i restarted on port $ARG (pid ${RS_PID[i]})"
}

cmd_reshard() {
	need_topology cluster
	if ! [[ "$ARG" =~ ^[1-9][0-9]*$ ]] || ((ARG > 16383)); then
		die "reshard wants a number of slots (1..16383)"
	fi
	local nodes src
	nodes=$(cluster_nodes) || die "no data server answers"
	src=$(slot_master_of 0 <<<"$nodes")
	[[ -n "$src" ]] || die "no master serves slot 0"
	local srcid dstid="" dst=""
	srcid=$(awk -v p="$src" '{ split($2, a, "[:@,]") } a[2] == p { print $1; exit }' <<<"$nodes")
	# The target: the master with the lowest port among the others.
	read -r dst dstid < <(awk -v p="$src" '
		$3 ~ /master/ && $3 !~ /fail/ { split($2, a, "[:@,]"); if (a[2] != p) print a[2], $1 }' <<<"$nodes" |
		sort -n | head -n 1) || true
	[[ -n "$dst" && -n "$dstid" && -n "$srcid" ]] || die "no other master to move slots to"
	log "moving $ARG slot(s) from port $src to port $dst (log: $DIR/redis-cluster.log)"
	if ! timeout 120 redis-cli --cluster reshard "127.0.0.1:$src" --cluster-from "$srcid" --cluster-to "$dstid" \
		--cluster-slots "$ARG" --cluster-yes >>"$DIR/redis-cluster.log" 2>&1; then
		tail -n 20 "$DIR/redis-cluster.log" >&2
		die "redis-cli --cluster reshard failed"
	fi
	wait_until 30 redis-cluster "" "" cluster_checked "$src" || die "redis-cli --cluster check fails after the reshard"
	wait_until 30 redis-cluster "" "" cluster_settled || die "the cluster did not settle after the reshard"
	master_port 0 || die "no master serves slot 0"
	echo "$MASTER_PORT"
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
	local st name pid state ok=0 url probe r w=8
	# The names of the Sentinel group's and the cluster's processes are
	# longer (sentinel-1); the single Redis's table stays as it was.
	((${#RS_PORT[@]} == 0)) || w=10
	printf "%-${w}s %-8s %-9s %s\n" NAME PID STATE ADDRESS
	while read -r st name pid; do
		url="" probe=(false)
		case "$name" in
		redis)
			url=$REDIS_URL
			probe=(rcli "$REDIS_PORT" ping)
			;;
		redis-*)
			r=${RS_PORT[${name#redis-}]}
			url="redis://127.0.0.1:$r"
			probe=(rcli "$r" ping)
			;;
		sentinel-*)
			r=${SN_PORT[${name#sentinel-}]}
			url="redis://127.0.0.1:$r (sentinel)"
			probe=(rcli "$r" ping)
			;;
		node*)
			url="http://127.0.0.1:${NODE_PORT[${name#node}]}"
			probe=(curl -fsS --max-time 1 -o /dev/null "$url/readyz")
			;;
		haproxy)
			url="$LB_URL (stats $LB_STATS_URL/stats)"
			probe=(curl -fsS --max-time 1 -o /dev/null "$LB_STATS_URL/healthz")
			;;
		esac
		# A frozen process is not asked: it would not answer.
		if ! alive "$pid" "$st"; then
			state=down
		elif frozen "$pid"; then
			state=frozen
		elif "${probe[@]}" >/dev/null 2>&1; then
			state=ready
		else
			state=running
		fi
		if [[ "$state" == ready && "$name" == redis-* ]]; then
			case "$(role "$r")" in
			master) url+=" master" ;;
			slave) url+=" replica" ;;
			esac
		fi
		[[ "$state" == ready ]] || ok=1
		printf "%-${w}s %-8s %-9s %s\n" "$name" "$pid" "$state" "$url"
	done < <(procs)
	case "$TOPO" in
	sentinel)
		if master_port; then
			echo "  sentinels: master $MASTER_NAME on port $MASTER_PORT"
		else
			echo "  sentinels: no master known"
		fi
		;;
	cluster)
		if master_port 0; then
			echo "  cluster: cluster_state $(rcli "$MASTER_PORT" cluster info | sed -n 's/^cluster_state://p'), slot 0 on port $MASTER_PORT"
		else
			echo "  cluster: no master serves slot 0"
		fi
		;;
	esac
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
DIR=${CLUSTER_DIR:-} NODES=3 NODES_SET=0 MODE=redis TOPO=single LB=1 AOF=0 NO_NODES=0 ARG="" EXT_REDIS_URL=""
topology() {
	[[ "$TOPO" == single || "$TOPO" == "$1" ]] || die "--sentinel and --redis-cluster: one Redis topology at a time"
	TOPO=$1
}
while [[ $# -gt 0 ]]; do
	case "$1" in
	-n) [[ $# -ge 2 ]] || usage; NODES=$2 NODES_SET=1; shift 2 ;;
	-d) [[ $# -ge 2 ]] || usage; DIR=$2; shift 2 ;;
	--memory) MODE=memory; shift ;;
	--sentinel) topology sentinel; shift ;;
	--redis-cluster) topology cluster; shift ;;
	--no-nodes) NO_NODES=1; shift ;;
	--no-lb) LB=0; shift ;;
	--aof) AOF=1; shift ;;
	--redis-url) [[ $# -ge 2 && -n "$2" ]] || usage; EXT_REDIS_URL=$2; shift 2 ;;
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
redis-master) cmd_redis_master ;;
kill-redis-master) cmd_kill_redis_master ;;
pause-replicas) [[ -z "$ARG" ]] || usage; cmd_pause_replicas ;;
resume-replicas) [[ -z "$ARG" ]] || usage; cmd_resume_replicas ;;
restart-redis-server) [[ -n "$ARG" ]] || usage; cmd_restart_redis_server ;;
reshard) [[ -n "$ARG" ]] || usage; cmd_reshard ;;
restart-lb) [[ -z "$ARG" ]] || usage; cmd_restart_lb ;;
*) usage ;;
esac
