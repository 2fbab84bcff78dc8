#!/usr/bin/env bash
# The Wasm pod benchmark (benches/wasm.rs): installs `wasmtime-cli` from crates.io — the same
# wasmtime version Skiff links, so both run the same engine — into target/bench-tools, then
# runs `cargo bench --bench wasm`, which prints the table. The install is a one-time build of
# several minutes; later runs reuse it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
version=$(awk '/^name = "wasmtime"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$version" ] || { echo "bench-wasm: no wasmtime version in Cargo.lock" >&2; exit 1; }
tools="$ROOT/target/bench-tools"
if ! "$tools/bin/wasmtime" --version 2>/dev/null | grep -q "$version"; then
    echo "bench-wasm: installing wasmtime-cli $version into $tools" >&2
    cargo install wasmtime-cli --version "$version" --locked --root "$tools"
fi
WASMTIME="$tools/bin/wasmtime" cargo bench --bench wasm "$@"
