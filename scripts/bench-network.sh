#!/usr/bin/env bash
# The pod network's cost on one node (benches/network.rs): a Wasm Service and a container
# Service loaded by wrk on their pod IP, ClusterIP and NodePort (req/s, p50/p99, the
# ClusterIP/direct ratio and added p99), Wasm create → Ready with the pod network on, and
# 1,000 Wasm pods until Running with the server's RSS then; prints the table. Run it on an
# otherwise idle machine: wrk shares the cores with the server.
#
# Needs root (the benchmark creates a network namespace with an uplink, runs everything
# inside it with `nsenter --net` — wrk included, so no traffic leaves it — and deletes it at
# the end), wrk, nft, ip and nsenter. The container rows also need containerd, runc, the CNI
# plugins (containernetworking-plugins) and busybox-static; without containerd they are
# printed as skipped. Builds the Wasm samples (scripts/build-guests.sh) unless HELLO_WASM
# points at hello_wasm.wasm. Cargo's usual target dir applies (CARGO_TARGET_DIR when set,
# else target/).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
bench_init network
bench_need_root
bench_on_path wrk || bench_fail "wrk (the load generator) is not on PATH (apt-get install wrk)"
bench_need_tools "apt-get install nftables util-linux iproute2" nft nsenter ip
bench_optional_containers
bench_run "$@"
