#!/usr/bin/env bash
# Container pods beside Wasm pods on one node (benches/containers.rs): create → Ready p50/p99
# for 50 busybox container pods and 50 Wasm HTTP pods, their ratio, the RSS per running pod
# (skiff server + its containerd + the containerd shims), and the same sandbox + container
# started directly through CRI; prints the table. Run it on an otherwise idle machine.
#
# Needs root (the benchmark creates a network namespace, runs everything inside it with
# `nsenter --net`, and deletes it at the end), containerd, runc, the CNI plugins
# (containernetworking-plugins) and busybox-static. Builds the Wasm samples
# (scripts/build-guests.sh) unless HELLO_WASM points at hello_wasm.wasm. Cargo's usual target
# dir applies (CARGO_TARGET_DIR when set, else target/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "$(id -u)" != 0 ]; then
    echo "bench-containers: run as root (the benchmark creates a network namespace)" >&2
    exit 1
fi
for tool in containerd runc nsenter ip; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "bench-containers: $tool is not on PATH (apt-get install containerd runc util-linux iproute2 containernetworking-plugins busybox-static)" >&2
        exit 1
    fi
done
if [ ! -x /bin/busybox ]; then
    echo "bench-containers: /bin/busybox is missing (apt-get install busybox-static)" >&2
    exit 1
fi
exec cargo bench --bench containers "$@"
