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

# The Node stage is on Node.js 24 (the maintained LTS); the Rust stages on
# the toolchain rust-toolchain.toml pins (1.95.0). CI runs this file's build
# and start commands outside Docker (scripts/docker-parity.sh: the web stage
# on this same Node release, the Rust stages on the pinned toolchain), so
# what CI tests is what the image runs.

# ---------------------------------------------------------------------------
# The web client: web/ and the proto it is generated from.
FROM node:24.18.0-bookworm-slim AS web

WORKDIR /src
COPY proto proto
COPY web/package.json web/package-lock.json web/
RUN cd web && npm ci --no-audit --no-fund
COPY web web
RUN cd web && npm run build

# ---------------------------------------------------------------------------
# The Rust toolchain and cargo-chef, which splits the build into a layer of
# dependencies (rebuilt only when Cargo.toml / Cargo.lock change) and the
# workspace's own crates.
FROM rust:1.95.0-bookworm AS chef

WORKDIR /src
# rust-toolchain.toml names this image's toolchain with rustfmt and clippy:
# add them now, so no later step downloads them.
COPY rust-toolchain.toml .
RUN rustup component add rustfmt clippy \
    && cargo install cargo-chef --locked --version 0.1.78

# ---------------------------------------------------------------------------
# The recipe: every manifest and the lock file, nothing else of the source.
FROM chef AS planner

COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---------------------------------------------------------------------------
FROM chef AS builder

# The dependencies alone, from the recipe: this layer is reused until a
# manifest or Cargo.lock changes.
COPY --from=planner /src/recipe.json recipe.json
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo chef cook --release --locked --recipe-path recipe.json --bin tidings

# Then the source: a code change rebuilds only the workspace's crates.
COPY . .
COPY --from=web /src/web/dist web/dist
# The client is already built above; build.rs only stages web/dist.
ENV TIDINGS_SKIP_WEB_BUILD=1

# target/ stays in the image layers (not a cache mount), so the next build
# starts from the cooked dependencies above.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
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
