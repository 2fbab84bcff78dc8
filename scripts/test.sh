#!/usr/bin/env bash
# The one test command: unit tests beside the code and end-to-end tests in tests/ that start
# real `skiff` processes and drive them with real kubectl and the kube crate.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "kubectl is required by the end-to-end tests (kubectl 1.32 on PATH)"; exit 1; }
# The checked-in protobuf schema must match the generator (it reads crates cargo fetched).
cargo fetch --quiet
python3 control-plane/tools/gen_k8s_proto_schema.py --check >/dev/null
# The Wasm samples and test guests (wasm32-wasip2; adds the target through rustup if missing).
scripts/build-guests.sh >/dev/null
cargo test --workspace "$@"
# The SDK's own tests, on the host (its bindings compile for any target).
cargo test --manifest-path sdk/Cargo.toml --target-dir "${CARGO_TARGET_DIR:-target}/sdk-host" --quiet
# Its doc examples, compiled for wasm32-wasip2 (the target they are written for) and run there
# through jco on Node.js; `no_run` ones (exported handlers, outbound HTTP) compile only. Stable
# rustdoc has no compile-only mode for cross targets, hence a real WASI 0.2 runner (see the script).
sdk/check-doc-examples.sh --quiet
# Fuzz the API server's input decoding (fuzz/: bodies, patches, selectors) for a bounded time per
# target; fails on any crash. Its from-scratch build is ~7 CPU-minutes (see scripts/fuzz.sh).
scripts/fuzz.sh "${SKIFF_FUZZ_SECONDS:-20}"
