#!/usr/bin/env bash
# Scheduler throughput: the real scheduler against a real store with 100 and 1,000 fake
# nodes and 5,000 pending pods; prints pods bound per second beside kube-scheduler's
# reference figure. Run it on an otherwise idle machine: other builds skew the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench scheduler "$@"
