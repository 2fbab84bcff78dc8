#!/usr/bin/env bash
# Builds the Wasm guests — the skiff-sdk samples (samples/) and the end-to-end test components
# (tests/guests/) — for wasm32-wasip2 in release mode, into one target dir, and prints the path
# of every produced component, one per line, on stdout (cargo's progress goes to stderr).
# Idempotent: a second run with nothing changed is a no-op cargo build (about a second).
#
# Outputs, in target/wasm/wasm32-wasip2/release/ under the repository root:
#   hello_wasm.wasm   samples/hello-wasm    cdylib → exports wasi:http/incoming-handler (wasi:http/proxy)
#   wasm-job.wasm     samples/wasm-job      bin    → exports wasi:cli/run (command)
#   cron-report.wasm  samples/cron-report   bin    → command: prints a sales report (a CronJob)
#   sidecar.wasm      samples/sidecar       cdylib → wasi:http: serves what a container sidecar writes
#   todo_api.wasm     samples/todo-api      cdylib → wasi:http: JSON CRUD kept in a file under $DATA_DIR
#   mixed_app.wasm    samples/mixed-app     cdylib → wasi:http: renders what the Service "inventory" serves
#   fail-exit.wasm    tests/guests/fail-exit  prints "about to fail", exits 3 (wasi:cli/exit.exit-with-code)
#   trap.wasm         tests/guests/trap       prints "about to trap", panics "boom" → trap
#   spin.wasm         tests/guests/spin       prints "spinning", loops forever
#   hog.wasm          tests/guests/hog        prints "allocating", allocates 1 MiB chunks forever
#   env-reader.wasm   tests/guests/env-reader prints "GREETING=…", "file=<content of /config/greeting>", "relative=<./greeting in the working dir>"
#   sleeper.wasm      tests/guests/sleeper    prints "started", sleeps $SECONDS (2), prints "done"
#   counter.wasm      tests/guests/counter    increments /data/count, prints "count=N", sleeps forever
#   sdk_probe.wasm    tests/guests/sdk-probe  cdylib → wasi:http: every skiff-sdk feature (tests/sdk.rs)
#   escape.wasm       tests/guests/escape   tries to read outside its preopens (tests/sandbox.rs)
# (cdylib outputs use the crate name with '-' → '_'; bin outputs keep the bin name as is.)
# Hosts: every component imports the WASI 0.2 CLI interfaces (environment, exit, stdio, and
# filesystem for hello_wasm and env-reader), so link wasmtime_wasi::p2::add_to_linker_async, plus
# wasmtime_wasi_http::p2::add_only_http_to_linker_async for hello_wasm.
#
# Usage: scripts/build-guests.sh [extra cargo build args, e.g. --locked]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=wasm32-wasip2
TARGET_DIR="$ROOT/target/wasm"
OUT_DIR="$TARGET_DIR/$TARGET/release"

# The wasm32-wasip2 standard library: add it through rustup when it is missing.
if ! rustc --print sysroot >/dev/null 2>&1; then
    echo "build-guests: rustc not found" >&2
    exit 1
fi
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$TARGET" ]; then
    if command -v rustup >/dev/null 2>&1; then
        echo "build-guests: adding the $TARGET target" >&2
        rustup target add "$TARGET" >&2
    else
        echo "build-guests: the $TARGET target is not installed and rustup is not available" >&2
        exit 1
    fi
fi

for workspace in samples tests/guests; do
    cargo build --release --target "$TARGET" --target-dir "$TARGET_DIR" \
        --manifest-path "$ROOT/$workspace/Cargo.toml" --workspace "$@" >&2
done

status=0
for name in hello_wasm wasm-job cron-report sidecar todo_api mixed_app fail-exit trap spin hog env-reader sleeper counter sdk_probe escape; do
    wasm="$OUT_DIR/$name.wasm"
    if [ -f "$wasm" ]; then
        echo "$wasm"
    else
        echo "build-guests: expected output missing: $wasm" >&2
        status=1
    fi
done
exit "$status"
