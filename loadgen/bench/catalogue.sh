#!/usr/bin/env bash
# Requests/s loadgen sustains on one core against GET /v1/products, next to wrk against the
# same endpoint in the same run, and the ratio (goal: >= 0.3x wrk).
#
# Usage: loadgen/bench/catalogue.sh   (from the repository root; needs wrk and taskset)
# It builds the release binaries, starts payment and order on spare ports with order pinned
# to CPU 1, and runs each load generator for 10 s pinned to CPU 0 with 32 connections/users.
set -euo pipefail

target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p stormproof-loadgen -p stormproof-order -p stormproof-payment
bin=$target_dir/release
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

export OTEL_SDK_DISABLED=true RUST_LOG=warn
taskset -c 1 "$bin/payment" --grpc-addr 127.0.0.1:25052 --ops-addr 127.0.0.1:25465 \
    --database-url "sqlite://$work/payment.db" >"$work/payment.log" 2>&1 &
pids+=($!)
taskset -c 1 "$bin/order" --grpc-addr 127.0.0.1:25051 --http-addr 127.0.0.1:28080 \
    --ops-addr 127.0.0.1:25464 --payment-url http://127.0.0.1:25052 \
    --database-url "sqlite://$work/order.db" >"$work/order.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -sf http://127.0.0.1:28080/v1/products >/dev/null && break; sleep 0.2; done

wrk_rps=$(taskset -c 0 wrk -t1 -c32 -d10s http://127.0.0.1:28080/v1/products |
    awk '/Requests\/sec/ { print $2 }')
taskset -c 0 "$bin/loadgen" --profile catalogue --quiet \
    --target-url http://127.0.0.1:28080 --order-ops-url http://127.0.0.1:25464 \
    --metrics-addr 127.0.0.1:0 --reports-dir "$work/reports" >"$work/loadgen.out" 2>&1
summary=$(ls "$work"/reports/*/summary.json)
python3 -c "import json,sys; print('  loadgen statuses:', json.load(open(sys.argv[1]))['requests']['GetProducts']['status'])" "$summary"
loadgen_rps=$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['requests_per_second'], 1))" "$summary")
ratio=$(python3 -c "import sys; print(round(float(sys.argv[1]) / float(sys.argv[2]), 2))" "$loadgen_rps" "$wrk_rps")
echo "GET /v1/products, one core each, 32 connections, 10 s:"
echo "  wrk      ${wrk_rps} requests/s"
echo "  loadgen  ${loadgen_rps} requests/s (goose, 1 s ramp included)"
echo "  ratio    ${ratio}x wrk (goal >= 0.3x)"
