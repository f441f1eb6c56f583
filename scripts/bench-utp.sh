#!/usr/bin/env bash
# uTP against TCP over the whole engine: gotfs download of a BENCH_UTP_MIB file (default 1024)
# from 2 gotfs seeders on loopback (found with --peer), every side with --transport utp, then
# every side with --transport tcp, BENCH_UTP_RUNS times (default 5) interleaved. Encryption is
# off on both, so that only the transport differs. Reports per transport the median throughput
# and the median CPU seconds per GiB (user + system of the downloader and both seeders), and
# their ratios uTP/TCP (the issue asks throughput >= 0.8, CPU per GiB <= 1.5).
# Env: GOTFS (binary, default bin/gotfs), BENCH_DIR (work folder, default a new temp folder),
# BENCH_UTP_MIB, BENCH_UTP_RUNS, BENCH_TIMEOUT (seconds per download, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
GOTFS=${GOTFS:-$PWD/bin/gotfs}
SIZE_MIB=${BENCH_UTP_MIB:-1024}
RUNS=${BENCH_UTP_RUNS:-5}
TIMEOUT=${BENCH_TIMEOUT:-600}
[ -x "$GOTFS" ] || { echo "bench-utp: $GOTFS is missing (make build)" >&2; exit 1; }

bench_workdir utp
bench_data bench-utp.bin "$SIZE_MIB"
"$GOTFS" create "$DATA" -o "$W/t.torrent" --piece-length 1MiB --progress=false >/dev/null

free_port() { # free_port IP: a port free for TCP and UDP
  python3 -c 'import socket,sys
while True:
    t = socket.socket(); t.bind((sys.argv[1], 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind((sys.argv[1], p)); print(p); break
    except OSError: pass
    finally: u.close(); t.close()' "$1"
}
cpu_ticks() { # cpu_ticks PID: user + system clock ticks so far
  awk '{print $14 + $15}' "/proc/$1/stat"
}
HZ=$(getconf CLK_TCK)

one_run() { # one_run TRANSPORT: prints "seconds cpu_seconds"
  local tr=$1 i ip port peers=() seedcpu=0 start end times
  PIDS=()
  for i in 1 2; do
    ip=127.0.0.$((70 + i))
    port=$(free_port "$ip")
    "$GOTFS" seed "$W/t.torrent" "$DATA" --listen "$ip:$port" --no-dht --encryption off --transport "$tr" \
      --cache-dir "$W/seed$i" >"$W/seed-$tr-$i.log" 2>&1 &
    PIDS+=($!)
    peers+=(--peer "$ip:$port")
    for _ in $(seq 200); do grep -q "listening on port" "$W/seed-$tr-$i.log" && break; sleep 0.05; done
  done
  local base=0
  for i in "${PIDS[@]}"; do base=$((base + $(cpu_ticks "$i"))); done
  rm -rf "$W/out" "$W/cache"
  TIMEFORMAT='%R %U %S'
  times=$({ time timeout "$TIMEOUT" "$GOTFS" download "$W/t.torrent" -o "$W/out" --cache-dir "$W/cache" \
    --listen 127.0.0.73:0 --no-dht --encryption off --transport "$tr" "${peers[@]}" >"$W/download-$tr.log" 2>&1; } 2>&1) ||
    { echo "bench-utp: download over $tr failed" >&2; tail -n 20 "$W/download-$tr.log" >&2; exit 1; }
  for i in "${PIDS[@]}"; do seedcpu=$((seedcpu + $(cpu_ticks "$i"))); done
  seedcpu=$((seedcpu - base))
  cmp -s "$DATA" "$W/out/$(basename "$DATA")" || { echo "bench-utp: downloaded data differs ($tr)" >&2; exit 1; }
  for i in "${PIDS[@]}"; do kill "$i" 2>/dev/null || true; wait "$i" 2>/dev/null || true; done
  PIDS=()
  awk -v t="$times" -v s="$seedcpu" -v hz="$HZ" 'BEGIN { split(t, a, " "); printf "%.3f %.3f\n", a[1], a[2] + a[3] + s / hz }'
}

: >"$W/results"
for run in $(seq "$RUNS"); do
  for tr in utp tcp; do
    read -r secs cpu < <(one_run "$tr")
    awk -v tr="$tr" -v run="$run" -v s="$secs" -v c="$cpu" -v mib="$SIZE_MIB" \
      'BEGIN { printf "run %d %-3s %7.2f s %8.1f MB/s  %5.2f CPU-s/GiB\n", run, tr, s, mib * 1.048576 / s, c * 1024 / mib }'
    echo "$tr $secs $cpu" >>"$W/results"
  done
done
for tr in utp tcp; do
  rate=$(awk -v tr="$tr" -v mib="$SIZE_MIB" '$1 == tr { print mib * 1.048576 / $2 }' "$W/results" | median)
  cpu=$(awk -v tr="$tr" -v mib="$SIZE_MIB" '$1 == tr { print $3 * 1024 / mib }' "$W/results" | median)
  printf -v "RATE_$tr" '%s' "$rate"
  printf -v "CPU_$tr" '%s' "$cpu"
  printf "%s: median %.1f MB/s, %.2f CPU-s/GiB (%d runs of %d MiB from 2 seeders)\n" "$tr" "$rate" "$cpu" "$RUNS" "$SIZE_MIB"
done
awk -v ru="$RATE_utp" -v rt="$RATE_tcp" -v cu="$CPU_utp" -v ct="$CPU_tcp" \
  'BEGIN { printf "uTP/TCP: throughput %.2f (target >= 0.8), CPU per GiB %.2f (target <= 1.5)\n", ru / rt, cu / ct }'
