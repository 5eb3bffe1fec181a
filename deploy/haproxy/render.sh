#!/bin/sh
# Renders haproxy.cfg.tmpl: replaces @BIND@ and @STATS_BIND@ (outside
# comments) and the line "# @SERVERS@" with the server lines read from
# standard input. POSIX sh and awk only, so it also runs in the haproxy image.
#
#   render.sh BIND STATS_BIND [TEMPLATE] < servers > haproxy.cfg
#
#   printf 'server node1 127.0.0.1:20001 check\n' |
#       deploy/haproxy/render.sh 127.0.0.1:20000 127.0.0.1:20002 > haproxy.cfg
#   echo 'server-template node 1-10 node:8080 check resolvers docker init-addr none' |
#       deploy/haproxy/render.sh :8080 :8404 > haproxy.cfg
set -eu

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	echo "usage: render.sh BIND STATS_BIND [TEMPLATE] < servers" >&2
	exit 2
fi
tmpl=${3:-$(dirname "$0")/haproxy.cfg.tmpl}

# The server lines go through a temp file, not awk -v, which would treat
# backslashes in them as escapes.
servers=$(mktemp)
trap 'rm -f "$servers"' EXIT
cat >"$servers"
if ! grep -q '[^[:space:]]' "$servers"; then
	echo "render.sh: no server lines on standard input" >&2
	exit 2
fi

awk -v bind="$1" -v stats="$2" -v servers="$servers" '
	/^[[:space:]]*# @SERVERS@[[:space:]]*$/ {
		while ((getline line < servers) > 0) print "    " line
		close(servers)
		found = 1
		next
	}
	/^[[:space:]]*#/ { print; next } # comments keep the placeholders names
	{
		gsub(/@STATS_BIND@/, stats)
		gsub(/@BIND@/, bind)
		print
	}
	END { if (!found) { print "render.sh: no \"# @SERVERS@\" line in the template" > "/dev/stderr"; exit 1 } }
' "$tmpl"
