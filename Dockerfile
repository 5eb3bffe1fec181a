# The ssenode image: one static binary on distroless, running as non-root.
#
#   docker build -t ssecluster/ssenode .
#   docker run --rm -p 8080:8080 ssecluster/ssenode     # standalone, in-memory broker
#
# Configuration is the environment of README's table (REDIS_URL,
# ADMIN_TOKEN, DRAIN_WINDOW, TRUSTED_PROXIES, ...). docker-compose.yml runs
# the cluster: Redis, N nodes and HAProxy.
#
# Stopping: SIGTERM (docker stop, docker compose stop) drains: /readyz turns
# 503 at once, so the load balancer sends no new streams, and the node's
# streams are closed spread over DRAIN_WINDOW (default 30s), each with a
# retry hint, before it exits. Docker sends SIGKILL after the stop grace
# period (10s unless told otherwise), which would cut the drain short: give
# it more than DRAIN_WINDOW, `docker stop -t 45` or compose's
# `stop_grace_period: 45s`. A second SIGTERM stops at once.

# Builder: the same command as `CGO_ENABLED=0 go build ./cmd/ssenode`, made
# reproducible (-trimpath) and smaller (-s -w: no symbol table or DWARF),
# with the version the node reports stamped in (the .git folder is not sent
# to the builder, so Go cannot read the revision itself):
#   docker compose build --build-arg VERSION="$(git describe --always --dirty)"
# Without it the node reports "(devel)". The deploy package's tests check
# this line and run the same build.
FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ssenode ./cmd/ssenode

# Runtime: no shell, no package manager, CA certificates and tzdata
# included, user nonroot (65532). Nothing here but the binary.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ssenode /usr/local/bin/ssenode
USER 65532:65532
ENV HTTP_ADDR=:8080 ADMIN_ADDR=:9090
# 8080: streams, publish, /healthz, /readyz (behind the load balancer).
# 9090: admin API and /metrics (never through the load balancer; with no
#       ADMIN_TOKEN it binds 127.0.0.1 only, unreachable from outside).
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
# The image has no curl: the binary probes its own /healthz (200 while the
# process serves). Readiness (/readyz) is the load balancer's check, not
# Docker's: a draining node is healthy but not ready.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/ssenode", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/ssenode"]
