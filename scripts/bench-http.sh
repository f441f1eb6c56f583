#!/usr/bin/env bash
# HTTP benchmark: a single-file torrent of random data (1 GiB, 1 MiB pieces) served on
# loopback by 4 `gotfs seed` seeders (127.0.0.181-184), fetched by one `gotfs mount --http`
# (127.0.0.185) that shows it both as a FUSE file and over HTTP:
#   cold   `cp` of the file from a fresh mount (empty cache) vs `curl -o` of its URL from
#          another fresh mount of the same swarm, BENCH_REPS runs of each, interleaved, both to
#          a file beside the data: median MB/s each and the ratio curl/cp (target >= 0.95)
#   ttfb   `gotfs serve` with an empty cache, then one 64 KiB range at a random offset, timed
#          by curl from the request to its first byte (time_starttransfer minus connect),
#          BENCH_TTFB_N runs: median and worst
# MB/s are 10^6 bytes per second. Every process and mount it starts is stopped on exit; runs
# under flock /tmp/gotfs-bench.lock like the other sections.
#
# Env: GOTFS (binary, default bin/gotfs), BENCH_DIR (work folder; the data file is shared with
# the other sections), BENCH_SIZE_MIB (default 1024), BENCH_PIECE (default 1MiB), BENCH_REPS
# (default 3), BENCH_TTFB_N (default 10), BENCH_SEED (offsets, default 1).
set -euo pipefail
if [ "${GOTFS_BENCH_LOCKED:-0}" != 1 ]; then
  export GOTFS_BENCH_LOCKED=1
  exec flock /tmp/gotfs-bench.lock "$0" "$@"
fi
cd "$(dirname "$0")/.."
GOTFS=${GOTFS:-$PWD/bin/gotfs}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
PIECE=${BENCH_PIECE:-1MiB}
REPS=${BENCH_REPS:-3}
TTFB_N=${BENCH_TTFB_N:-10}
RANDOM=${BENCH_SEED:-1}
SIZE=$((SIZE_MIB << 20))
for b in curl flock python3; do
  command -v "$b" >/dev/null || { echo "bench-http: $b is missing (make bench installs it)" >&2; exit 1; }
done
[ -x "$GOTFS" ] || { echo "bench-http: $GOTFS is missing (make build)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-http: run as root (FUSE, and it drops the page cache)" >&2; exit 1; }

OWN_DIR=0
if [ -z "${BENCH_DIR:-}" ]; then BENCH_DIR=$(mktemp -d /tmp/gotfs-bench.XXXXXX); OWN_DIR=1; fi
W=$BENCH_DIR/http
rm -rf "$W" && mkdir -p "$W"
cp "$GOTFS" "$W/gotfs" && GOTFS=$W/gotfs
MP=$W/mnt && mkdir -p "$MP"
PIDS=()
GPID=""
cleanup() {
  if mountpoint -q "$MP"; then "$GOTFS" unmount --lazy "$MP" >/dev/null 2>&1 || umount -l "$MP" 2>/dev/null || true; fi
  [ -n "$GPID" ] && { kill "$GPID" 2>/dev/null || true; wait "$GPID" 2>/dev/null || true; }
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
  if [ "$OWN_DIR" = 1 ]; then rm -rf "$BENCH_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. scripts/bench-lib.sh

DATA=$BENCH_DIR/data/bench.bin
NAME=$(basename "$DATA")
if [ ! -f "$DATA" ] || [ "$(stat -c %s "$DATA")" != "$SIZE" ]; then
  mkdir -p "$(dirname "$DATA")"
  echo "bench-http: writing ${SIZE_MIB} MiB of random data"
  head -c "$SIZE" /dev/urandom >"$DATA"
fi
sync
T=$W/bench.torrent
"$GOTFS" create "$DATA" --piece-length "$PIECE" -o "$T" --progress=false >/dev/null
echo "bench-http: $("$GOTFS" version | head -n 1), ${SIZE_MIB} MiB, $PIECE pieces, 4 gotfs seeders"

PEERS=()
for i in 1 2 3 4; do
  ip=127.0.0.$((180 + i)) port=$(free_port 127.0.0.$((180 + i)))
  "$GOTFS" seed "$T" "$DATA" --listen "$ip:$port" --no-dht --cache-dir "$W/seed$i" >"$W/seed$i.log" 2>&1 &
  PIDS+=($!)
  PEERS+=(--peer "$ip:$port")
done
for p in "${PEERS[@]}"; do
  [ "$p" = --peer ] && continue
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/${p%:*}/${p##*:}") 2>/dev/null && break; sleep 0.05; done
done

CLIENT=127.0.0.185
# start CMD...: a fresh cache, then `gotfs CMD... --http` in the background; sets GPID and URL.
start() {
  rm -rf "$W/cache" "$W/out.bin" "$W/gotfs.log"
  "$GOTFS" "$@" --cache-dir "$W/cache" --listen "$CLIENT:$(free_port $CLIENT)" --no-dht "${PEERS[@]}" \
    --http "$CLIENT:$(free_port $CLIENT)" >"$W/gotfs.log" 2>&1 &
  GPID=$!
  URL=""
  for _ in $(seq 300); do
    URL=$(sed -n 's|^gotfs: serving .* at \(http://[^ ]*/\).*|\1|p' "$W/gotfs.log" 2>/dev/null || true)
    [ -n "$URL" ] && break
    sleep 0.05
  done
  [ -n "$URL" ] || { echo "bench-http: gotfs did not start:" >&2; cat "$W/gotfs.log" >&2; exit 1; }
  drop_caches
}
stop() {
  if mountpoint -q "$MP"; then "$GOTFS" unmount "$MP" >/dev/null 2>&1 || "$GOTFS" unmount --lazy "$MP" >/dev/null 2>&1 || true; fi
  kill "$GPID" 2>/dev/null || true
  wait "$GPID" 2>/dev/null || true
  GPID=""
}

CP=() CURL=()
for rep in $(seq "$REPS"); do
  start mount "$T" "$MP"
  t0=$(now); cp "$MP/$NAME" "$W/out.bin"; s=$(secs_since "$t0"); stop
  CP+=("$s")
  start mount "$T" "$MP"
  t0=$(now); curl -sS --fail -o "$W/out.bin" "$URL$NAME"; s2=$(secs_since "$t0"); stop
  cmp -s "$W/out.bin" "$DATA" || { echo "bench-http: curl's copy differs from the data" >&2; exit 1; }
  CURL+=("$s2")
  echo "bench-http: run $rep: cold cp $(mbs "$SIZE" "$s") MB/s, cold curl $(mbs "$SIZE" "$s2") MB/s"
done

TTFB=()
for i in $(seq "$TTFB_N"); do
  start serve "$T"
  off=$(( ((RANDOM << 15) | RANDOM) % (SIZE - 65536) ))
  ms=$(curl -sS --fail -o /dev/null -r "$off-$((off + 65535))" -w '%{time_connect} %{time_starttransfer}' "$URL$NAME" |
    awk '{ printf "%.1f", ($2 - $1) * 1000 }')
  stop
  TTFB+=("$ms")
done

cp_med=$(printf '%s\n' "${CP[@]}" | median) curl_med=$(printf '%s\n' "${CURL[@]}" | median)
echo "bench-http: cold ${SIZE_MIB} MiB: cp from the mount $(mbs "$SIZE" "$cp_med") MB/s, curl over HTTP $(mbs "$SIZE" "$curl_med") MB/s," \
  "ratio curl/cp $(awk -v a="$cp_med" -v b="$curl_med" 'BEGIN { printf "%.2f", a/b }') (target >= 0.95)"
echo "bench-http: first byte of a 64 KiB range at a random offset, cold: median $(printf '%s\n' "${TTFB[@]}" | median) ms," \
  "worst $(printf '%s\n' "${TTFB[@]}" | sort -g | tail -n 1) ms ($TTFB_N runs)"
