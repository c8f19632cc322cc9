# syntax=docker/dockerfile:1
# The faultline engine (binary `faultline`): ingest, storage and query in one process.
#
# Build from the repository root:
#   docker build -f docker/engine.Dockerfile -t ghcr.io/faultline/faultline:0.1.0 .
#
# The runtime image is distroless (glibc, CA certificates, no shell, no package manager) and runs
# as uid/gid 65532. Nothing is written to the root filesystem: the engine writes only to its data
# directory and /tmp, which a pod mounts as volumes, so `readOnlyRootFilesystem: true` works.
# Builder and runtime are both Debian 13, so the binary's glibc matches the one it runs on.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-trixie AS builder
WORKDIR /src
# Copy the workspace (see .dockerignore) and build only the engine crate. The cache mounts keep
# the registry and the target directory between builds; the binary is copied out of the cached
# target directory so that the next stage can see it.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p faultline-engine --bin faultline \
    && install -D -m 0755 target/release/faultline /out/faultline \
    && install -d -m 0750 /out/var/lib/faultline

FROM gcr.io/distroless/cc-debian13:nonroot
LABEL org.opencontainers.image.title="faultline" \
      org.opencontainers.image.description="Self-hosted, Sentry-compatible error tracker" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/faultline /usr/local/bin/faultline
# Working directory owned by the runtime user: the engine's default data directory (`./data`)
# lands in /var/lib/faultline/data for a plain `docker run`. In Kubernetes the operator mounts
# volumes under /var/lib/faultline and passes a config file; the image sets no FAULTLINE_*
# variable, so nothing here overrides that config.
COPY --from=builder --chown=65532:65532 /out/var/lib/faultline /var/lib/faultline
WORKDIR /var/lib/faultline
USER 65532:65532
# The binary itself tells mimalloc to return freed memory after 50 ms (engine/src/allocator.rs);
# set MIMALLOC_PURGE_DELAY in the pod spec to choose another trade-off of CPU against memory.
# 8000: ingest (Sentry endpoints, health); 8001: query and admin.
EXPOSE 8000 8001
ENTRYPOINT ["/usr/local/bin/faultline"]
