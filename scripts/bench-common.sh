# Sourced by the scripts of the benchmarks that run in a network namespace of their own
# (scripts/bench-containers.sh, bench-network.sh, bench-serverless.sh): the checks they make
# before `cargo bench`. Messages start with "bench-NAME:"; a failed check exits 1.
#
#   bench_init NAME             NAME (network, …) names the benchmark; cd to the repository root
#   bench_need_root             root, as the benchmark creates a network namespace
#   bench_need_tools HINT TOOL… every TOOL on PATH, else names the missing one and HINT
#                               (where the tools come from)
#   bench_on_path TOOL          whether TOOL is on PATH (for a check with a message of its own)
#   bench_fail MESSAGE          says MESSAGE and exits 1
#   bench_need_busybox          Debian's busybox-static (/bin/busybox), for the busybox image
#   bench_optional_containers   without containerd, says the container rows will be skipped;
#                               with it, needs busybox-static
#   bench_run ARG…              exec `cargo bench --bench NAME ARG…`

bench_init() {
    BENCH_NAME=$1
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$root"
}

bench_fail() {
    echo "bench-$BENCH_NAME: $1" >&2
    exit 1
}

bench_on_path() {
    command -v "$1" >/dev/null 2>&1
}

bench_need_root() {
    if [ "$(id -u)" != 0 ]; then
        bench_fail "run as root (the benchmark creates a network namespace)"
    fi
}

bench_need_tools() {
    local hint=$1 tool
    shift
    for tool in "$@"; do
        bench_on_path "$tool" || bench_fail "$tool is not on PATH ($hint)"
    done
}

bench_need_busybox() {
    [ -x /bin/busybox ] || bench_fail "/bin/busybox is missing (apt-get install busybox-static)"
}

bench_optional_containers() {
    if ! bench_on_path containerd; then
        echo "bench-$BENCH_NAME: containerd is not on PATH: the container rows will be skipped (apt-get install containerd runc containernetworking-plugins busybox-static)" >&2
    else
        bench_need_busybox
    fi
}

bench_run() {
    exec cargo bench --bench "$BENCH_NAME" "$@"
}
