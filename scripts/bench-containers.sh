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
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
bench_init containers
bench_need_root
bench_need_tools "apt-get install containerd runc util-linux iproute2 containernetworking-plugins busybox-static" containerd runc nsenter ip
bench_need_busybox
bench_run "$@"
