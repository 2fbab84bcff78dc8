#!/usr/bin/env bash
# Scale to zero on one node (benches/serverless.rs): cold start from zero (p50/p99/max) of a
# Wasm Deployment and a busybox-httpd container Deployment behind ClusterIP Services, the same
# request warm, beside Knative's published 2–4 s cold start; and how many idle scale-to-zero
# Wasm Deployments (1,000 by default) one node holds, with the server's RSS; prints the table.
# Run it on an otherwise idle machine.
#
# SKIFF_BENCH_COLD_STARTS (default 50) sets the cold starts per runtime, SKIFF_BENCH_DENSITY
# (default 1000) the idle Deployments; a smoke run:
#   SKIFF_BENCH_COLD_STARTS=3 SKIFF_BENCH_DENSITY=50 scripts/bench-serverless.sh
#
# Needs root (the benchmark creates a network namespace with an uplink, runs everything inside
# it with `nsenter --net` and deletes it at the end), nft, ip, nsenter and kubectl. The
# container rows also need containerd, runc, the CNI plugins (containernetworking-plugins) and
# busybox-static; without containerd they are printed as skipped. Builds the Wasm samples
# (scripts/build-guests.sh) unless HELLO_WASM points at hello_wasm.wasm. Cargo's usual target
# dir applies (CARGO_TARGET_DIR when set, else target/).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
bench_init serverless
bench_need_root
bench_need_tools "apt-get install nftables util-linux iproute2" nft nsenter ip
bench_on_path kubectl || bench_fail "kubectl (1.32) is not on PATH"
bench_optional_containers
bench_run "$@"
