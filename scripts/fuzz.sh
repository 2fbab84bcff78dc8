#!/usr/bin/env bash
# Fuzzes the API server's input decoding (fuzz/: JSON, YAML and protobuf bodies, PATCH
# application, label and field selectors) for a bounded time per target; fails on any crash.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 30; FUZZ_RELEASE=1 for an optimised build)
#
# Each target starts from a temporary copy of its committed seeds (fuzz/corpus/<target>/), so a
# run never changes the repository; crashing inputs are kept in fuzz/artifacts/<target>/.
#
# Toolchain: cargo-fuzz passes nightly-only flags (-Zsanitizer=address), and only the stable
# toolchain exists on our machines, so builds run with RUSTC_BOOTSTRAP=1. Stable ships the
# AddressSanitizer runtime (librustc-stable_rt.asan.a), so targets build with ASan, cargo-fuzz's
# default: beside the panics we hunt in our safe Rust, it watches the unsafe code beneath
# (unsafe-libyaml). Stack-use-after-return checks are off: they halved the runs per second.
# The build is `--dev` (opt-level 0, debug assertions on; see fuzz/Cargo.toml): from scratch
# on 2 cores it takes ~7 CPU-minutes against ~24 for cargo-fuzz's optimised build, nearly all
# of it control-plane's dependency tree; the targets then run 5-50x slower, which a bounded CI
# run accepts. For long runs, FUZZ_RELEASE=1 builds as cargo-fuzz does by default (release
# with debug assertions).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2; }
cargo_fuzz_version=0.13.2
export RUSTC_BOOTSTRAP=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=0}"
target_dir="${CARGO_TARGET_DIR:-fuzz/target}"
[[ -n "${CARGO_TARGET_DIR:-}" ]] && target_dir="$CARGO_TARGET_DIR/fuzz"
target_dir="$(mkdir -p "$target_dir" && cd "$target_dir" && pwd)"
if [[ "${FUZZ_RELEASE:-0}" == 1 ]]; then
  profile=(); profile_dir=release
else
  profile=(--dev); profile_dir=debug
fi
triple="$(rustc -vV | sed -n 's/^host: //p')"

step() { printf '[fuzz] %s\n' "$*"; }
now() { date +%s; }

if ! cargo fuzz --version 2>/dev/null | grep -q " $cargo_fuzz_version\$"; then
  start=$(now)
  step "installing cargo-fuzz $cargo_fuzz_version"
  cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version"
  step "installed cargo-fuzz in $(($(now) - start))s"
fi

start=$(now)
step "building the targets (${profile[*]:-release}, AddressSanitizer)"
cargo fuzz build "${profile[@]}" --target-dir "$target_dir"
step "built in $(($(now) - start))s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in $(cargo fuzz list); do
  start=$(now)
  corpus="$work/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  cp -r "fuzz/corpus/$target/." "$corpus/" 2>/dev/null || true
  log="$work/$target.log"
  # -timeout: an input that takes 10 s is a failure too (a request body must not stall the
  # server); -rss_limit_mb: libFuzzer's default, stated.
  if "$target_dir/$triple/$profile_dir/$target" "$corpus" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    step "$target: ok, ${runs:-?} inputs in $(($(now) - start))s ($cov)"
  else
    failed+=("$target")
    tail -n 60 "$log"
    artifact=$(grep -o "Test unit written to .*" "$log" | tail -1 | sed 's/^Test unit written to //')
    step "$target: FAILED after $(($(now) - start))s; input: ${artifact:-see the log above}"
    step "reproduce: RUSTC_BOOTSTRAP=1 ASAN_OPTIONS=$ASAN_OPTIONS cargo fuzz run ${profile[*]} $target ${artifact:-fuzz/artifacts/$target/<file>}"
  fi
done
if ((${#failed[@]})); then
  step "crashes in: ${failed[*]}"
  exit 1
fi
