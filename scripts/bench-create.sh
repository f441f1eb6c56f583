#!/usr/bin/env bash
# Hashing benchmark: `gotfs create` on a 1 GiB file beside `sha1sum` on the same file (both from
# the page cache, after a warm-up read): wall time, MB/s and the ratio. Target: gotfs ≥ 1.5× sha1sum
# on 2 cores (create hashes pieces in parallel; sha1sum uses one core).
# Env: GOTFS (default bin/gotfs), BENCH_DIR (work folder; its data/bench.bin is reused),
# BENCH_SIZE_MIB (default 1024), BENCH_RUNS (default 3; the best run counts).
set -euo pipefail
cd "$(dirname "$0")/.."
GOTFS=${GOTFS:-$PWD/bin/gotfs}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
RUNS=${BENCH_RUNS:-3}
[ -x "$GOTFS" ] || { echo "bench-create: $GOTFS is missing (make build)" >&2; exit 1; }
OWN_DIR=0
if [ -z "${BENCH_DIR:-}" ]; then BENCH_DIR=$(mktemp -d /tmp/gotfs-bench.XXXXXX); OWN_DIR=1; fi
W=$BENCH_DIR/create
mkdir -p "$W"
cleanup() { rm -rf "$W"; if [ "$OWN_DIR" = 1 ]; then rm -rf "$BENCH_DIR"; fi; }
trap cleanup EXIT
DATA=$BENCH_DIR/data/bench.bin
if [ ! -f "$DATA" ] || [ "$(stat -c %s "$DATA")" != $((SIZE_MIB << 20)) ]; then
  mkdir -p "$(dirname "$DATA")"
  echo "bench-create: writing ${SIZE_MIB} MiB of random data"
  head -c $((SIZE_MIB << 20)) /dev/urandom >"$DATA"
fi
cat "$DATA" >/dev/null # into the page cache

now() { date +%s.%N; }
best() { # best CMD...: prints the shortest wall time of RUNS runs
  local b="" s e d
  for _ in $(seq "$RUNS"); do
    s=$(now); "$@" >/dev/null; e=$(now)
    d=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e-s }')
    if [ -z "$b" ] || awk -v d="$d" -v b="$b" 'BEGIN { exit !(d < b) }'; then b=$d; fi
  done
  echo "$b"
}
sha=$(best sha1sum "$DATA")
gt=$(best "$GOTFS" create "$DATA" -o "$W/c.torrent" --force --progress=false --piece-length 1MiB)
echo
echo "Hashing ${SIZE_MIB} MiB from the page cache ($(nproc) cores, best of $RUNS)"
printf '%-22s %8s %9s\n' tool wall_s MB/s
for pair in "sha1sum:$sha" "gotfs create:$gt"; do
  name=${pair%%:*} t=${pair#*:}
  printf '%-22s %8s %9s\n' "$name" "$t" "$(awk -v t="$t" -v n="$SIZE_MIB" 'BEGIN { printf "%.0f", n*1.048576/t }')"
done
printf 'gotfs create / sha1sum throughput: %sx (target >= 1.5x)\n' "$(awk -v a="$sha" -v b="$gt" 'BEGIN { printf "%.2f", a/b }')"
