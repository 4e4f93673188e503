# syntax=docker/dockerfile:1.7
# Images of order, payment and loadgen (`docker build --target order .`, or compose.yaml).
#
# One build stage compiles the three binaries and `probe` (the health check) with BuildKit
# cache mounts for the cargo registry and the target directory, so a rebuild compiles only what
# changed: dependencies are built once per Cargo.lock. Each final stage is distroless
# (glibc, CA certificates, no shell), runs as the nonroot user (65532) and listens on 0.0.0.0.
#
# The base images and where the binaries come from are build arguments; the defaults are what
# users build. Where no registry can be reached, the containerised stack test
# (tests/containers/) builds on a Debian root file system made locally and takes binaries that
# cargo built on the host (BINARIES=prebuilt: they are copied from .stormproof/image-bin/).
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARIES=build

FROM ${RUST_IMAGE} AS build
# aws-lc-sys (rustls' crypto provider) builds with cmake.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin order --bin payment --bin loadgen --bin probe \
 && mkdir -p /out/data \
 && cp target/release/order target/release/payment target/release/loadgen target/release/probe /out/

# Binaries built on the host (cargo build --release --bin order --bin payment --bin loadgen
# --bin probe, copied with an empty data/ folder into .stormproof/image-bin/).
FROM scratch AS prebuilt
COPY .stormproof/image-bin/ /out/

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=binaries /out/probe /usr/local/bin/probe
# SQLite files live on a volume at /data; the directory is the nonroot user's, and a fresh
# named volume takes its owner from it.
COPY --from=binaries --chown=65532:65532 /out/data /data
ENV LOG_FORMAT=json
USER 65532:65532

FROM runtime AS payment
COPY --from=binaries /out/payment /usr/local/bin/payment
ENV PAYMENT_GRPC_ADDR=0.0.0.0:50052 \
    PAYMENT_OPS_ADDR=0.0.0.0:9465 \
    PAYMENT_DATABASE_URL=sqlite:///data/payment.db \
    OTEL_SERVICE_NAME=payment
EXPOSE 50052 9465
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s CMD ["/usr/local/bin/probe", "http://127.0.0.1:9465/readyz"]
ENTRYPOINT ["/usr/local/bin/payment"]

FROM runtime AS order
COPY --from=binaries /out/order /usr/local/bin/order
ENV ORDER_GRPC_ADDR=0.0.0.0:50051 \
    ORDER_HTTP_ADDR=0.0.0.0:8080 \
    ORDER_OPS_ADDR=0.0.0.0:9464 \
    DATABASE_URL=sqlite:///data/order.db \
    OTEL_SERVICE_NAME=order
EXPOSE 50051 8080 9464
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s CMD ["/usr/local/bin/probe", "http://127.0.0.1:9464/readyz"]
ENTRYPOINT ["/usr/local/bin/order"]

FROM runtime AS loadgen
COPY --from=binaries /out/loadgen /usr/local/bin/loadgen
# goose writes its reports under the working directory.
WORKDIR /data
ENV LOADGEN_METRICS_ADDR=0.0.0.0:9466 \
    LOADGEN_REPORTS_DIR=/data/reports \
    OTEL_SERVICE_NAME=loadgen
EXPOSE 9466
ENTRYPOINT ["/usr/local/bin/loadgen"]
