# syntax=docker/dockerfile:1
#
# The single deployable image: the tidings binary with its migrations and the
# embedded web client inside (built in its own Node stage, then staged by
# build.rs from web/dist). Build with:
#
#     docker build -t tidings .
#
# Run (embedded SQLite kept in the /data volume):
#
#     docker run -p 8080:8080 -v tidings-data:/data tidings

# The toolchains match the CI machine's (Node.js 20, Rust 1.95), and CI runs
# this file's build and start commands outside Docker
# (scripts/docker-parity.sh), so what CI tests is what the image runs.

# ---------------------------------------------------------------------------
# The web client: web/ and the proto it is generated from.
FROM node:20-bookworm-slim AS web

WORKDIR /src
COPY proto proto
COPY web/package.json web/package-lock.json web/
RUN cd web && npm ci --no-audit --no-fund
COPY web web
RUN cd web && npm run build

# ---------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder

WORKDIR /src
COPY . .
COPY --from=web /src/web/dist web/dist
# The client is already built above; build.rs only stages web/dist.
ENV TIDINGS_SKIP_WEB_BUILD=1

# The cache mounts only speed up rebuilds. target/ lives in a cache mount, so
# the binary is copied out of it inside the same RUN step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tidings \
    && install -m 0755 target/release/tidings /usr/local/bin/tidings

# ---------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates for any outgoing TLS connection; curl for the
# health check below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 tidings \
    && useradd --uid 10001 --gid tidings --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin tidings \
    && mkdir -p /data \
    && chown tidings:tidings /data

COPY --from=builder /usr/local/bin/tidings /usr/local/bin/tidings

ENV DATA_DIR=/data \
    LISTEN_ADDR=0.0.0.0:8080

# SQLite database and generated JWT secret in embedded mode.
VOLUME ["/data"]
EXPOSE 8080

# Assumes the default port; adjust if LISTEN_ADDR is changed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1

USER tidings
ENTRYPOINT ["/usr/local/bin/tidings"]
