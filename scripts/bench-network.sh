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
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "$(id -u)" != 0 ]; then
    echo "bench-network: run as root (the benchmark creates a network namespace)" >&2
    exit 1
fi
if ! command -v wrk >/dev/null 2>&1; then
    echo "bench-network: wrk (the load generator) is not on PATH (apt-get install wrk)" >&2
    exit 1
fi
for tool in nft nsenter ip; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "bench-network: $tool is not on PATH (apt-get install nftables util-linux iproute2)" >&2
        exit 1
    fi
done
if ! command -v containerd >/dev/null 2>&1; then
    echo "bench-network: containerd is not on PATH: the container rows will be skipped (apt-get install containerd runc containernetworking-plugins busybox-static)" >&2
elif [ ! -x /bin/busybox ]; then
    echo "bench-network: /bin/busybox is missing (apt-get install busybox-static)" >&2
    exit 1
fi
exec cargo bench --bench network "$@"
