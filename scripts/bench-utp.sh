#!/usr/bin/env bash
# uTP against TCP over the whole engine: gotfs download of a BENCH_UTP_MIB file (default 1024)
# from 2 gotfs seeders on loopback (found with --peer), every side with --transport utp, then
# every side with --transport tcp, BENCH_UTP_RUNS times (default 5) interleaved. Encryption is
# off on both, so that only the transport differs. Reports per transport the median throughput
# and the median CPU seconds per GiB (user + system of the downloader and both seeders), and
# their ratios uTP/TCP (the issue asks throughput >= 0.8, CPU per GiB <= 1.5).
# Each run is made twice: with every process free to use both cores ("shared"), and with the
# seeders on CPU 1 and the downloader on CPU 0 ("pinned", taskset; skipped with fewer than 2
# CPUs or BENCH_UTP_PINNED=0). Pinned, each side has a core of its own, as peers on other
# machines would, and the Go runtime of each gets one P (GOMAXPROCS follows the CPU mask);
# shared, the three processes' runtimes compete for the same two cores.
# The reference: the same download between libtorrent-rasterbar peers (python3-libtorrent, 2
# seeders and a leecher, each with one transport turned off), BENCH_UTP_LT_RUNS times
# (default 3; 0 skips it) interleaved, and the same ratios for libtorrent's uTP.
# Env: GOTFS (binary, default bin/gotfs), BENCH_DIR (work folder, default a new temp folder),
# BENCH_UTP_MIB, BENCH_UTP_RUNS, BENCH_UTP_LT_RUNS, BENCH_UTP_PINNED (1 or 0, default 1),
# BENCH_TIMEOUT (seconds per download, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
GOTFS=${GOTFS:-$PWD/bin/gotfs}
SIZE_MIB=${BENCH_UTP_MIB:-1024}
RUNS=${BENCH_UTP_RUNS:-5}
LT_RUNS=${BENCH_UTP_LT_RUNS:-3}
PY=/usr/bin/python3
LT_SCRIPT=$PWD/scripts/bench_libtorrent.py
TIMEOUT=${BENCH_TIMEOUT:-600}
PINNED=${BENCH_UTP_PINNED:-1}
[ "$(nproc)" -ge 2 ] || PINNED=0
SEED_CPU=() LEECH_CPU=() # taskset prefixes of a pinned run
[ -x "$GOTFS" ] || { echo "bench-utp: $GOTFS is missing (make build)" >&2; exit 1; }
if [ "$LT_RUNS" -gt 0 ] && ! $PY -c 'import libtorrent' 2>/dev/null; then
  echo "bench-utp: python3-libtorrent is missing (make bench installs it)" >&2; exit 1
fi

bench_workdir utp
bench_data bench-utp.bin "$SIZE_MIB"
"$GOTFS" create "$DATA" -o "$W/t.torrent" --piece-length 1MiB --progress=false >/dev/null

cpu_ticks() { # cpu_ticks PID: user + system clock ticks so far
  awk '{print $14 + $15}' "/proc/$1/stat"
}
HZ=$(getconf CLK_TCK)

# start_seeders WHO TRANSPORT: 2 seeders of WHO (gotfs or libtorrent) with that transport
# alone, each on its own address, ready to serve; sets PIDS and PEERS (--peer options).
start_seeders() {
  local who=$1 tr=$2 i ip port log
  PIDS=() PEERS=()
  for i in 1 2; do
    log=$W/seed-$who-$tr-$i.log
    if [ "$who" = gotfs ]; then
      ip=127.0.0.$((70 + i))
      port=$(free_port "$ip")
      ${SEED_CPU[@]+"${SEED_CPU[@]}"} "$GOTFS" seed "$W/t.torrent" "$DATA" --listen "$ip:$port" --no-dht --encryption off --transport "$tr" \
        --cache-dir "$W/seed$i" >"$log" 2>&1 &
    else
      ip=127.0.0.$((80 + i))
      port=$(free_port "$ip")
      $PY "$LT_SCRIPT" --transport "$tr" --seed "$W/t.torrent" "$(dirname "$DATA")" "$ip" "$port" >"$log" 2>&1 &
    fi
    PIDS+=($!)
    PEERS+=(--peer "$ip:$port")
  done
  local ready="listening on port" # gotfs; libtorrent checks the data first
  [ "$who" = gotfs ] || ready="seeding on"
  for i in 1 2; do
    for _ in $(seq 1200); do grep -q "$ready" "$W/seed-$who-$tr-$i.log" && break; sleep 0.05; done
    grep -q "$ready" "$W/seed-$who-$tr-$i.log" || { echo "bench-utp: $who seeder $i did not start" >&2; exit 1; }
  done
}

# leech WHO TRANSPORT: WHO's download of the torrent from PEERS into $W/out.
leech() {
  if [ "$1" = gotfs ]; then
    timeout "$TIMEOUT" ${LEECH_CPU[@]+"${LEECH_CPU[@]}"} "$GOTFS" download "$W/t.torrent" -o "$W/out" --cache-dir "$W/cache" \
      --listen 127.0.0.73:0 --no-dht --encryption off --transport "$2" "${PEERS[@]}"
  else
    $PY "$LT_SCRIPT" --transport "$2" "${PEERS[@]}" "$W/t.torrent" "$W/out" 127.0.0.83 "$TIMEOUT"
  fi
}

stop_seeders() {
  local i
  for i in ${PIDS[@]+"${PIDS[@]}"}; do kill "$i" 2>/dev/null || true; wait "$i" 2>/dev/null || true; done
  PIDS=()
}

# one_run WHO TRANSPORT: prints "seconds cpu_seconds" (the leecher's, plus the seeders' CPU).
# It runs in a subshell (read < <(...)), which does not inherit the script's exit trap: its
# own stops the seeders however it ends.
one_run() {
  local who=$1 tr=$2 i base=0 seedcpu=0 times
  trap stop_seeders EXIT
  start_seeders "$who" "$tr"
  for i in "${PIDS[@]}"; do base=$((base + $(cpu_ticks "$i"))); done
  rm -rf "$W/out" "$W/cache"
  sync
  TIMEFORMAT='%R %U %S'
  times=$({ time leech "$who" "$tr" >"$W/download-$who-$tr.log" 2>&1; } 2>&1) ||
    { echo "bench-utp: $who download over $tr failed" >&2; tail -n 20 "$W/download-$who-$tr.log" >&2; exit 1; }
  for i in "${PIDS[@]}"; do seedcpu=$((seedcpu + $(cpu_ticks "$i"))); done
  seedcpu=$((seedcpu - base))
  cmp -s "$DATA" "$W/out/$(basename "$DATA")" || { echo "bench-utp: $who's download differs ($tr)" >&2; exit 1; }
  stop_seeders
  awk -v t="$times" -v s="$seedcpu" -v hz="$HZ" 'BEGIN { split(t, a, " "); printf "%.3f %.3f\n", a[1], a[2] + a[3] + s / hz }'
}

: >"$W/results"
# run WHO TRANSPORT RUN [pinned]: one download, its line and its result (WHO: gotfs or
# libtorrent; pinned: gotfs's seeders on CPU 1, its downloader on CPU 0)
run() {
  local secs cpu label=$1
  SEED_CPU=() LEECH_CPU=()
  if [ "${4:-}" = pinned ]; then
    SEED_CPU=(taskset -c 1) LEECH_CPU=(taskset -c 0) label=$1-pinned
  fi
  read -r secs cpu < <(one_run "$1" "$2")
  awk -v who="$label" -v tr="$2" -v run="$3" -v s="$secs" -v c="$cpu" -v mib="$SIZE_MIB" \
    'BEGIN { printf "run %d %-12s %-3s %7.2f s %8.1f MB/s  %5.2f CPU-s/GiB\n", run, who, tr, s, mib * 1.048576 / s, c * 1024 / mib }'
  echo "$label $2 $secs $cpu" >>"$W/results"
}
for r in $(seq "$RUNS"); do
  for tr in utp tcp; do run gotfs "$tr" "$r"; done
  if [ "$PINNED" = 1 ]; then
    for tr in utp tcp; do run gotfs "$tr" "$r" pinned; done
  fi
  if [ "$r" -le "$LT_RUNS" ]; then
    for tr in utp tcp; do run libtorrent "$tr" "$r"; done
  fi
done
# summary WHO RUNS: medians per transport and the ratios
summary() {
  local who=$1 tr rate cpu
  for tr in utp tcp; do
    rate=$(awk -v who="$who" -v tr="$tr" -v mib="$SIZE_MIB" '$1 == who && $2 == tr { print mib * 1.048576 / $3 }' "$W/results" | median)
    cpu=$(awk -v who="$who" -v tr="$tr" -v mib="$SIZE_MIB" '$1 == who && $2 == tr { print $4 * 1024 / mib }' "$W/results" | median)
    printf -v "RATE_$tr" '%s' "$rate"
    printf -v "CPU_$tr" '%s' "$cpu"
    printf "%s %s: median %.1f MB/s, %.2f CPU-s/GiB (%d runs of %d MiB from 2 seeders)\n" "$who" "$tr" "$rate" "$cpu" "$2" "$SIZE_MIB"
  done
  awk -v who="$who" -v ru="$RATE_utp" -v rt="$RATE_tcp" -v cu="$CPU_utp" -v ct="$CPU_tcp" -v tail="$3" \
    'BEGIN { printf "%s uTP/TCP: throughput %.2f%s, CPU per GiB %.2f%s\n", who, ru / rt, tail == "" ? "" : " (target >= 0.8)", cu / ct, tail == "" ? "" : " (target <= 1.5)" }'
}
summary gotfs "$RUNS" targets
if [ "$PINNED" = 1 ]; then summary gotfs-pinned "$RUNS" targets; fi
if [ "$LT_RUNS" -gt 0 ]; then summary libtorrent "$((LT_RUNS < RUNS ? LT_RUNS : RUNS))" ""; fi
