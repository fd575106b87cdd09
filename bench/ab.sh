#!/usr/bin/env bash
# POST throughput of two builds, alternating round by round (the VM drifts):
# each round starts BINARY on a fresh database pinned to CPU 0, runs wrk
# pinned to CPU 1 (32 connections, 5 s, bench/lua/post_article.lua), and
# prints requests/s of A and of B; then the medians and B/A.
#
#   bench/ab.sh A_BINARY B_BINARY [ROUNDS]
#
# BENCH_TMP (default /tmp) is where the databases go: /dev/shm takes the
# disk out of the comparison.
set -euo pipefail
a=$(realpath "$1") b=$(realpath "$2") rounds=${3:-5}
cd "$(dirname "$0")"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }

one() { # $1: binary; prints requests/s
    local dir pid port
    dir=$(mktemp -d -p "${BENCH_TMP:-/tmp}")
    taskset -c 0 "$1" serve --addr 127.0.0.1:0 --db "$dir/db" >"$dir/out" 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do
        grep -q listening "$dir/out" 2>/dev/null && break
        sleep 0.05
    done
    port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$dir/out")
    taskset -c 1 wrk -t2 -c32 -d5s -s lua/post_article.lua \
        "http://127.0.0.1:$port/articles" | awk '/Requests\/sec/ {print $2}'
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

as=() bs=()
for round in $(seq "$rounds"); do
    as+=("$(one "$a")")
    bs+=("$(one "$b")")
    echo "round $round: A ${as[-1]}  B ${bs[-1]}"
done
ma=$(printf '%s\n' "${as[@]}" | median)
mb=$(printf '%s\n' "${bs[@]}" | median)
echo "median: A $ma  B $mb  B/A $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.3f", b / a}')"
