#!/usr/bin/env bash
# Download benchmark: a 1 GiB single-file torrent served by 4 seeders on loopback (each on its own
# 127.0.0.X, found through opentracker), fetched in turn by gotfs download, aria2c and
# libtorrent-rasterbar (python3-libtorrent), with 1 MiB and with 16 MiB pieces. Each leecher runs
# under /usr/bin/time -v: wall time, CPU time (user+sys) and peak RSS; the seeders' CPU time
# during each download is read from /proc (on 2 shared cores, what a leecher costs its seeders
# limits its speed). Then a table with the ratios gotfs/aria2c and gotfs/libtorrent, against
# the engine's targets: peak RSS <= 48 MiB, CPU <= aria2c's, wall <= 0.8x libtorrent's.
#
# Env: GOTFS (binary, default bin/gotfs), BENCH_DIR (work folder, default a new temp folder),
# BENCH_SIZE_MIB (default 1024), BENCH_PIECES (default "1MiB 16MiB"), SEEDERS (the seeder
# kinds to run the downloads against in turn, each a table: libtorrent, aria2c, gotfs; default
# "libtorrent aria2c"), BENCH_TIMEOUT (seconds per download, default 600).
# Everything stays on 127.0.0.0/8; every process the script starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
GOTFS=${GOTFS:-$PWD/bin/gotfs}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
PIECES=${BENCH_PIECES:-"1MiB 16MiB"}
SEEDERS=${SEEDERS:-${SEEDER:-libtorrent aria2c}}
TIMEOUT=${BENCH_TIMEOUT:-600}
PY=/usr/bin/python3
LT_SCRIPT=$PWD/scripts/bench_libtorrent.py

for b in aria2c opentracker; do
  command -v "$b" >/dev/null || { echo "bench-download: $b is missing (make bench installs it)" >&2; exit 1; }
done
[ -x "$GOTFS" ] || { echo "bench-download: $GOTFS is missing (make build)" >&2; exit 1; }
$PY -c 'import libtorrent' 2>/dev/null || { echo "bench-download: python3-libtorrent is missing" >&2; exit 1; }
if [ ! -x /usr/bin/time ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq time >/dev/null
fi

OWN_DIR=0
if [ -z "${BENCH_DIR:-}" ]; then BENCH_DIR=$(mktemp -d /tmp/gotfs-bench.XXXXXX); OWN_DIR=1; fi
mkdir -p "$BENCH_DIR"
W=$BENCH_DIR/download
rm -rf "$W" && mkdir -p "$W"

PIDS=()
stop_all() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_all
  stop_tracker
  rm -rf "$W"
  if [ "$OWN_DIR" = 1 ]; then rm -rf "$BENCH_DIR"; fi
  vm_release_memory
}
trap cleanup EXIT
trap 'exit 130' INT TERM
vm_hold_memory

# The data: 1 GiB of random bytes (shared with the other sections through BENCH_DIR).
DATA=$BENCH_DIR/data/bench.bin
if [ ! -f "$DATA" ] || [ "$(stat -c %s "$DATA")" != $((SIZE_MIB << 20)) ]; then
  mkdir -p "$(dirname "$DATA")"
  echo "bench-download: writing ${SIZE_MIB} MiB of random data"
  head -c $((SIZE_MIB << 20)) /dev/urandom >"$DATA"
fi

# The tracker: opentracker serves only whitelisted hashes; as root it chroots into its folder
# and drops to nobody, so the folder and the list must be world-readable.
OT=$W/tracker
mkdir -p "$OT" && chmod 755 "$OT" && : >"$OT/whitelist" && chmod 644 "$OT/whitelist"
OT_PORT=$(free_port 127.0.0.1)
ANNOUNCE=http://127.0.0.1:$OT_PORT/announce

declare -A TORRENT HASH
for pl in $PIECES; do
  TORRENT[$pl]=$W/bench-$pl.torrent
  "$GOTFS" create "$DATA" -t "$ANNOUNCE" --piece-length "$pl" -o "${TORRENT[$pl]}" --progress=false >/dev/null
  HASH[$pl]=$("$GOTFS" parse --json "${TORRENT[$pl]}" | $PY -c 'import json,sys; print(json.load(sys.stdin)["info_hash"])')
  echo "${HASH[$pl]}" >>"$OT/whitelist"
done
# start_tracker: a fresh opentracker on OT_PORT, which lists no seeder of an earlier round.
OT_PID=""
start_tracker() {
  opentracker -i 127.0.0.1 -p "$OT_PORT" -P "$OT_PORT" -d "$OT" -w whitelist >"$W/opentracker.log" 2>&1 &
  OT_PID=$!
  for _ in $(seq 100); do
    $PY -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2)' "$OT_PORT" 2>/dev/null && break
    sleep 0.05
  done
}
stop_tracker() {
  [ -n "$OT_PID" ] || return 0
  kill "$OT_PID" 2>/dev/null || true
  wait "$OT_PID" 2>/dev/null || true
  OT_PID=""
}

# aria2c options shared by seeders and the aria2c leecher: no DHT, LPD or PEX, every socket
# bound to one loopback address so the tracker sees it.
aria2_common() { # aria2_common IP PORT
  echo --enable-dht=false --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false \
    --disable-ipv6=true --interface="$1" --listen-port="$2" --no-conf=true --summary-interval=0 \
    --console-log-level=warn --auto-save-interval=0 --bt-save-metadata=false --file-allocation=falloc
}

SEED_PIDS=()
start_seeders() { # start_seeders TORRENT
  local i ip port
  SEED_PIDS=()
  for i in 1 2 3 4; do
    ip=127.0.0.$((20 + i))
    port=$(free_port "$ip")
    if [ "$SEEDER" = gotfs ]; then
      "$GOTFS" seed "$1" "$DATA" --listen "$ip:$port" --no-dht --cache-dir "$W/seed$i" >"$W/seed$i.log" 2>&1 &
    elif [ "$SEEDER" = libtorrent ]; then
      "$PY" "$LT_SCRIPT" --seed "$1" "$(dirname "$DATA")" "$ip" "$port" >"$W/seed$i.log" 2>&1 &
    else
      # shellcheck disable=SC2046
      aria2c $(aria2_common "$ip" "$port") --seed-ratio=0.0 --bt-seed-unverified=true \
        -d "$(dirname "$DATA")" "$1" >"$W/seed$i.log" 2>&1 &
    fi
    PIDS+=($!)
    SEED_PIDS+=($!)
  done
  # Wait until the tracker lists all 4 seeders.
  local want=4 n=0
  for _ in $(seq 300); do
    n=$("$GOTFS" peers --json "$1" 2>/dev/null | $PY -c 'import json,sys
d=json.load(sys.stdin); print(sum(1 for p in d.get("peers") or [] if not p["addr"].startswith("127.0.0.1:")))' 2>/dev/null || echo 0)
    [ "$n" -ge "$want" ] && break
    sleep 0.2
  done
  [ "$n" -ge "$want" ] || { echo "bench-download: only $n of $want seeders announced" >&2; tail -n 20 "$W"/seed*.log >&2; exit 1; }
  sleep 1 # let the seeders settle (aria2c seeds what it announced at once)
}

# seeder_ticks: the CPU time (user+sys, clock ticks) the seeders have used so far.
seeder_ticks() {
  local p sum=0 t
  for p in "${SEED_PIDS[@]}"; do
    t=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    sum=$((sum + t))
  done
  echo "$sum"
}

# measure NAME LOGFILE CMD...: runs CMD under /usr/bin/time -v, records wall, cpu, rss and the
# seeders' cpu.
declare -A WALL CPU RSS SCPU
measure() {
  local key=$1 log=$2; shift 2
  local tv=$W/$key.time before
  before=$(seeder_ticks)
  if ! timeout "$TIMEOUT" /usr/bin/time -v -o "$tv" "$@" >"$log" 2>&1; then
    echo "bench-download: $key failed; last output:" >&2
    tail -n 20 "$log" >&2
    WALL[$key]=nan CPU[$key]=nan RSS[$key]=nan SCPU[$key]=nan
    return 0
  fi
  SCPU[$key]=$(awk -v a="$before" -v b="$(seeder_ticks)" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b-a)/hz }')
  WALL[$key]=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tv")
  CPU[$key]=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$tv")
  RSS[$key]=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$tv")
}

check_out() { # check_out KEY FILE
  if [ "${WALL[$1]}" != nan ] && ! cmp -s "$DATA" "$2"; then
    echo "bench-download: $1 produced a file that differs from the source" >&2
    WALL[$1]=bad
  fi
  rm -rf "$(dirname "$2")"
}

name=$(basename "$DATA")

# report SEEDER: the table of one seeder kind.
report() {
  echo
  echo "Download of a ${SIZE_MIB} MiB torrent from 4 $SEEDER seeders on loopback ($(nproc) cores)"
  printf '%-8s %-11s %9s %9s %9s %9s %12s\n' pieces client wall_s cpu_s rss_MiB MB/s seeders_cpu_s
  for pl in $PIECES; do
    for c in gotfs aria2c libtorrent; do
      k=$c-$pl
      mbs=$(awk -v w="${WALL[$k]}" -v n="$SIZE_MIB" 'BEGIN { if (w+0 > 0) printf "%.0f", n*1.048576/w; else print "-" }')
      printf '%-8s %-11s %9s %9s %9s %9s %12s\n' "$pl" "$c" "${WALL[$k]}" "${CPU[$k]}" "${RSS[$k]}" "$mbs" "${SCPU[$k]}"
    done
  done
  echo
  printf '%-8s %-22s %8s %8s %8s   %s\n' pieces ratio wall cpu rss targets
  for pl in $PIECES; do
    printf '%-8s %-22s %8s %8s %8s   %s\n' "$pl" gotfs/aria2c "$(ratio "${WALL[gotfs-$pl]}" "${WALL[aria2c-$pl]}")" \
      "$(ratio "${CPU[gotfs-$pl]}" "${CPU[aria2c-$pl]}")" "$(ratio "${RSS[gotfs-$pl]}" "${RSS[aria2c-$pl]}")" "cpu <= 1.0"
    printf '%-8s %-22s %8s %8s %8s   %s\n' "$pl" gotfs/libtorrent "$(ratio "${WALL[gotfs-$pl]}" "${WALL[libtorrent-$pl]}")" \
      "$(ratio "${CPU[gotfs-$pl]}" "${CPU[libtorrent-$pl]}")" "$(ratio "${RSS[gotfs-$pl]}" "${RSS[libtorrent-$pl]}")" "wall <= 0.8"
    printf '%-8s %-22s %8s %8s %8s   %s\n' "$pl" "gotfs peak RSS" "" "" "${RSS[gotfs-$pl]}" "<= 48 MiB"
  done
}

for SEEDER in $SEEDERS; do
  for pl in $PIECES; do
    t=${TORRENT[$pl]}
    echo "bench-download: $pl pieces: starting 4 $SEEDER seeders"
    start_tracker
    start_seeders "$t"
    sync

    out=$W/out-gotfs-$pl
    measure "gotfs-$pl" "$W/gotfs-$pl.log" "$GOTFS" download "$t" -o "$out" --cache-dir "$W/cache-gotfs-$pl" \
      --listen "127.0.0.1:$(free_port 127.0.0.1)" --no-dht --json
    check_out "gotfs-$pl" "$out/$name"

    out=$W/out-aria2c-$pl
    ip=127.0.0.31
    # shellcheck disable=SC2046
    measure "aria2c-$pl" "$W/aria2c-$pl.log" aria2c $(aria2_common "$ip" "$(free_port "$ip")") --seed-time=0 -d "$out" "$t"
    check_out "aria2c-$pl" "$out/$name"

    out=$W/out-libtorrent-$pl
    mkdir -p "$out"
    measure "libtorrent-$pl" "$W/libtorrent-$pl.log" "$PY" "$LT_SCRIPT" "$t" "$out" 127.0.0.32 "$TIMEOUT"
    check_out "libtorrent-$pl" "$out/$name"

    stop_all
    PIDS=()
    stop_tracker
  done
  report
done

