# syntax=docker/dockerfile:1
# The faultline Kubernetes operator (binary `faultline-operator`).
#
# Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t ghcr.io/faultline/faultline-operator:0.1.0 .
#
# The runtime image is distroless (glibc, CA certificates, no shell, no package manager) and runs
# as uid/gid 65532. The operator writes no files at all, so it runs with a read-only root
# filesystem and no volumes (see charts/faultline-operator). Builder and runtime are both
# Debian 13, so the binary's glibc matches the one it runs on.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-trixie AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p faultline-operator --bin faultline-operator \
    && install -D -m 0755 target/release/faultline-operator /out/faultline-operator

FROM gcr.io/distroless/cc-debian13:nonroot
LABEL org.opencontainers.image.title="faultline-operator" \
      org.opencontainers.image.description="Kubernetes operator for faultline ErrorTrackers" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/faultline-operator /usr/local/bin/faultline-operator
USER 65532:65532
# /metrics and /health.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/faultline-operator"]
CMD ["run"]
