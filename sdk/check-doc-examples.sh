#!/usr/bin/env bash
# Checks that every doc example of skiff-sdk compiles for wasm32-wasip2, the target it is
# written for, and runs the ones that can run there.
#
# Stable cargo cross-compiles doctests for `--target wasm32-wasip2` and runs each through the
# target's runner (rustdoc's `--no-run` is unstable, so compiling without a runner is not an
# option on stable). The runner is jco (npm, the version Skiff's JavaScript templates pin),
# whose `jco run` runs a WASI 0.2 command component on Node.js: the pure examples (Error,
# Router, JSON, config parsing, logs…) really run on WASI; the `no_run` ones (an exported
# handler, outbound HTTP: they need a wasi:http host) are compiled only.
#
# Needs: rustup's wasm32-wasip2 target, Node.js 18+ and npm. jco is installed once under the
# target dir (reused later). Usage: sdk/check-doc-examples.sh [extra cargo test args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
JCO_VERSION=1.35.0
JCO_DIR="$TARGET_DIR/sdk-doc-runner/jco-$JCO_VERSION"
JCO="$JCO_DIR/node_modules/.bin/jco"

if [ ! -x "$JCO" ]; then
    mkdir -p "$JCO_DIR"
    npm install --prefix "$JCO_DIR" --no-audit --no-fund --loglevel=error \
        "@bytecodealliance/jco@$JCO_VERSION" >&2
fi

cargo test --manifest-path "$ROOT/sdk/Cargo.toml" --target-dir "$TARGET_DIR/sdk-host" \
    --target wasm32-wasip2 --doc \
    --config "target.wasm32-wasip2.runner = [\"$JCO\", \"run\"]" "$@"
