#!/usr/bin/env bash
# Web seed benchmark: a single-file torrent of random data (1 GiB, 1 MiB pieces) whose only
# source is a web seed (url-list, BEP 19): Debian's nginx on 127.0.0.221 serving the file. No
# tracker, no peer. BENCH_REPS interleaved runs of each, all writing to a file beside the data:
#   curl    `curl -o` of the file's URL from the same nginx (the reference)
#   gotfs   `gotfs download` (fresh folder and cache)      target >= 0.9x curl
#   aria2c  aria2c's download of the same torrent (it uses url-list web seeds too)
#   cp      cold `cp` from a fresh `gotfs mount` (empty cache), timed from the cp's start to its
#           end (the mount is up before and stopped after)  target >= 0.9x gotfs download
#   bound   `gotfs download` with an independent `cp` of a second file of the same size (from
#           the page cache, no FUSE) beside it, until both end: the least a copy out of a mount
#           adds, so bound / gotfs is the most cold cp / download can reach on this machine
#   ttfb    one 64 KiB pread at a random offset on a fresh mount with an empty cache, timed from
#           the read call, BENCH_TTFB_N runs: median (target <= 30 ms) and worst
# MB/s are 10^6 bytes per second; medians, and ratios of the medians.
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
. scripts/bench-lib.sh
GOTFS=${GOTFS:-$PWD/bin/gotfs}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
PIECE=${BENCH_PIECE:-1MiB}
REPS=${BENCH_REPS:-3}
TTFB_N=${BENCH_TTFB_N:-10}
RANDOM=${BENCH_SEED:-1}
SIZE=$((SIZE_MIB << 20))
NGINX=/usr/sbin/nginx
for b in curl aria2c flock python3 $NGINX; do
  command -v "$b" >/dev/null || { echo "bench-webseed: $b is missing (make bench installs it)" >&2; exit 1; }
done
[ -x "$GOTFS" ] || { echo "bench-webseed: $GOTFS is missing (make build)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-webseed: run as root (FUSE, and it drops the page cache)" >&2; exit 1; }
H="/usr/bin/python3 $PWD/scripts/bench_fuse.py"

OWN_DIR=0
if [ -z "${BENCH_DIR:-}" ]; then BENCH_DIR=$(mktemp -d /tmp/gotfs-bench.XXXXXX); OWN_DIR=1; fi
W=$BENCH_DIR/webseed
rm -rf "$W" && mkdir -p "$W"
cp "$GOTFS" "$W/gotfs" && GOTFS=$W/gotfs
MP=$W/mnt && mkdir -p "$MP"
NPID="" GPID=""
stop_mount() {
  if mountpoint -q "$MP"; then "$GOTFS" unmount --lazy "$MP" >/dev/null 2>&1 || umount -l "$MP" 2>/dev/null || true; fi
  if [ -n "$GPID" ]; then kill "$GPID" 2>/dev/null || true; wait "$GPID" 2>/dev/null || true; GPID=""; fi
}
cleanup() {
  stop_mount
  if [ -n "$NPID" ]; then kill "$NPID" 2>/dev/null || true; wait "$NPID" 2>/dev/null || true; fi
  rm -rf "$W"
  if [ "$OWN_DIR" = 1 ]; then rm -rf "$BENCH_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DATA=$(bench_file bench.bin "$SIZE_MIB")
NAME=$(basename "$DATA")

# nginx with its own configuration, logs and temporary folders under $W.
IP=127.0.0.221
PORT=$(free_port $IP)
mkdir -p "$W/nginx"
cat >"$W/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
error_log $W/nginx/error.log;
pid $W/nginx/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $W/nginx/body;
  proxy_temp_path $W/nginx/proxy;
  fastcgi_temp_path $W/nginx/fastcgi;
  uwsgi_temp_path $W/nginx/uwsgi;
  scgi_temp_path $W/nginx/scgi;
  server { listen $IP:$PORT; root $(dirname "$DATA"); }
}
CONF
# Without the bench lock's descriptor: were this script killed, nginx must not keep the lock.
(for fd in /proc/self/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null
  exec $NGINX -p "$W/nginx" -c "$W/nginx/nginx.conf" >"$W/nginx/out.log" 2>&1) &
NPID=$!
URL=http://$IP:$PORT/
for _ in $(seq 100); do curl -s -o /dev/null "$URL" && break; sleep 0.05; done
T=$W/bench.torrent
"$GOTFS" create "$DATA" --piece-length "$PIECE" --web-seed "$URL" -o "$T" --progress=false >/dev/null
echo "bench-webseed: $("$GOTFS" version | head -n 1), ${SIZE_MIB} MiB, $PIECE pieces, web seed only (nginx)"

run_curl() { curl -sS --fail -o "$W/out.bin" "$URL$NAME"; }
run_gotfs() { rm -rf "$W/dl" "$W/cache"; "$GOTFS" download "$T" -o "$W/dl" --cache-dir "$W/cache" --listen 127.0.0.222:0 --no-dht >/dev/null 2>&1; }
run_aria2c() {
  rm -rf "$W/aria"
  aria2c -q -d "$W/aria" --seed-time=0 --enable-dht=false --enable-dht6=false --bt-enable-lpd=false \
    --listen-port=6990 --file-allocation=none --check-integrity=false "$T" >/dev/null
}
mount_gotfs() {
  rm -rf "$W/mcache"
  "$GOTFS" mount "$T" "$MP" --cache-dir "$W/mcache" --listen 127.0.0.223:0 --no-dht >"$W/mount.log" 2>&1 &
  GPID=$!
  $H waitfile "$MP/$NAME" 30 >/dev/null || { echo "bench-webseed: the mount did not come up" >&2; tail "$W/mount.log" >&2; return 1; }
}
# The mount is up before cp's timer starts and is stopped after it ends, as in bench-mount:
# a user copies out of a mount that is already there (stopping it syncs the cache, 0.6-0.7 s).
run_cp() { cp "$MP/$NAME" "$W/out.bin"; }
OTHER=$(bench_file bench-other.bin "$SIZE_MIB")
run_bound() {
  local pid rc=0
  run_gotfs & pid=$!
  cp "$OTHER" "$W/other.out" || rc=1
  wait "$pid" || rc=1
  rm -f "$W/other.out"
  return $rc
}
check() { # check WHAT FILE: the copy must equal the source
  cmp -s "$DATA" "$2" || { echo "bench-webseed: $1's copy differs from the source" >&2; return 1; }
}

declare -A S
for r in $(seq "$REPS"); do
  for who in curl gotfs aria2c cp bound; do
    drop_caches
    cat "$DATA" >/dev/null # nginx serves from the page cache in every run
    [ "$who" = bound ] && cat "$OTHER" >/dev/null
    rm -f "$W/out.bin"
    if [ "$who" = cp ] && ! mount_gotfs; then echo "bench-webseed: $who failed" >&2; continue; fi
    t0=$(now)
    if ! "run_$who"; then echo "bench-webseed: $who failed" >&2; stop_mount; continue; fi
    s=$(secs_since "$t0")
    stop_mount
    case $who in
      gotfs | bound) check "$who" "$W/dl/$NAME" ;;
      aria2c) check aria2c "$W/aria/$NAME" ;;
      *) check "$who" "$W/out.bin" ;;
    esac && S[$who]+="$s "
    echo "  run $r: $who $(mbs "$SIZE" "$s") MB/s"
  done
done
TT=()
for _ in $(seq "$TTFB_N"); do
  off=$(( ((RANDOM << 15) | RANDOM) % (SIZE - 65536) ))
  mount_gotfs || continue
  TT+=("$($H pread "$MP/$NAME" "$off" 65536 "$DATA")")
  stop_mount
done

med() { [ -z "${S[$1]:-}" ] && echo - || printf '%s\n' ${S[$1]} | median; }
rate() { local m; m=$(med "$1"); [ "$m" = - ] && echo - || mbs "$SIZE" "$m"; }
printf '\n%-8s %8s\n' "" "MB/s"
for who in curl gotfs aria2c cp bound; do printf '%-8s %8s\n' "$who" "$(rate "$who")"; done
echo "bench-webseed: gotfs download / curl $(ratio "$(med curl)" "$(med gotfs)") (target >= 0.9)," \
  "cold cp / download $(ratio "$(med gotfs)" "$(med cp)") (target >= 0.9; at most $(ratio "$(med gotfs)" "$(med bound)") here, the bound)," \
  "aria2c / gotfs $(ratio "$(med gotfs)" "$(med aria2c)")"
echo "bench-webseed: first byte of a 64 KiB read at a random offset, fresh mount: median $(printf '%s\n' "${TT[@]}" | median) ms," \
  "worst $(printf '%s\n' "${TT[@]}" | sort -g | tail -n 1) ms ($TTFB_N runs; target median <= 30 ms)"
