#!/usr/bin/env bash
# Protocol encryption benchmark: what RC4 (MSE/PE) costs.
#  0. RC4 alone on one core: Go's crypto/rc4, which gotfs uses (BenchmarkRC4 in p2p/mse), and
#     OpenSSL's assembly RC4 (`openssl speed -evp rc4`, when openssl is installed), as the
#     fastest RC4 at hand on this CPU.
#  1. The p2p layer alone: piece messages through a loopback TCP pair, plaintext
#     (BenchmarkReadPiece) and through an MSE connection with RC4 (BenchmarkReadPieceRC4); both
#     ends run on this machine, so RC4 is paid twice (encrypt and decrypt) per byte.
#  2. A whole download: gotfs download of a BENCH_MSE_MIB file (default 1024) from 2 gotfs
#     seeders on loopback (found with --peer, no tracker), with --encryption require on every
#     side, then with --encryption off; the ratio is plaintext time / encrypted time (the issue
#     asks >= 0.85), and the downloader's CPU seconds each way (what RC4 costs it).
#  3. The same with each seeder's upload capped at BENCH_MSE_CAP (default 40MiB a second, the
#     two together about 670 Mbit/s): a swarm whose links, not this machine's 2 cores (which
#     also run the seeders' RC4), set the pace.
# Env: GOTFS (binary, default bin/gotfs), BENCH_DIR (work folder, default a new temp folder),
# BENCH_MSE_MIB, BENCH_MSE_CAP, BENCH_TIMEOUT (seconds per download, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
GOTFS=${GOTFS:-$PWD/bin/gotfs}
SIZE_MIB=${BENCH_MSE_MIB:-1024}
TIMEOUT=${BENCH_TIMEOUT:-600}
CAP=${BENCH_MSE_CAP:-40MiB}
[ -x "$GOTFS" ] || { echo "bench-mse: $GOTFS is missing (make build)" >&2; exit 1; }

echo "-- RC4 alone, one core, 16 KiB at a time"
out=$(go test -run '^$' -bench '^BenchmarkRC4$' -benchtime 2s -count 3 ./p2p/mse/)
echo "$out" | awk '{for (i = 2; i <= NF; i++) if ($i == "MB/s") {s += $(i-1); n++}}
  END { if (n) printf "RC4, Go crypto/rc4: %.0f MB/s (mean of %d runs)\n", s/n, n }'
if command -v openssl >/dev/null; then
  # Its figures are in 1000s of bytes per second.
  openssl speed -provider legacy -provider default -seconds 2 -bytes 16384 -evp rc4 2>/dev/null |
    awk '$1 == "RC4" || $1 == "rc4" { v = $2; sub(/k$/, "", v); printf "RC4, OpenSSL %s: %.0f MB/s\n", ver, v / 1000 }' ver="$(openssl version | awk '{print $2}')" ||
    echo "bench-mse: openssl speed failed (no legacy provider?)"
fi

echo "-- p2p layer (go test -bench, loopback TCP, 16 KiB piece messages)"
out=$(go test -run '^$' -bench '^BenchmarkReadPiece(RC4)?$' -benchtime 2s -count 3 ./p2p/)
echo "$out" | grep '^Benchmark'
echo "$out" | awk '{for (i = 2; i <= NF; i++) if ($i == "MB/s") v = $(i-1)}
  /^BenchmarkReadPiece-/ {p += v; np++} /^BenchmarkReadPieceRC4-/ {e += v; ne++}
  END { if (np && ne) printf "p2p layer: plaintext %.0f MB/s, RC4 %.0f MB/s, ratio %.2f\n", p/np, e/ne, (e/ne)/(p/np) }'

bench_workdir mse
bench_data bench-mse.bin "$SIZE_MIB"
"$GOTFS" create "$DATA" -o "$W/t.torrent" --piece-length 1MiB --progress=false >/dev/null

declare -A SECS CPU
for run in "require 0" "off 0" "require $CAP" "off $CAP"; do
  read -r mode cap <<<"$run"
  key=$mode-$cap
  peers=()
  PIDS=()
  for i in 1 2; do
    ip=127.0.0.$((60 + i))
    port=$(free_port "$ip")
    "$GOTFS" seed "$W/t.torrent" "$DATA" --listen "$ip:$port" --no-dht --encryption "$mode" \
      --max-upload-rate "$cap" --cache-dir "$W/seed$i" >"$W/seed-$key-$i.log" 2>&1 &
    PIDS+=($!)
    peers+=(--peer "$ip:$port")
    for _ in $(seq 100); do grep -q "listening on port" "$W/seed-$key-$i.log" && break; sleep 0.05; done
  done
  rm -rf "$W/out" "$W/cache"
  start=$(date +%s.%N)
  timeout "$TIMEOUT" /usr/bin/time -f "%U %S" -o "$W/time-$key" "$GOTFS" download "$W/t.torrent" -o "$W/out" \
    --cache-dir "$W/cache" --listen 127.0.0.63:0 --no-dht --encryption "$mode" "${peers[@]}" >"$W/download-$key.log" 2>&1 ||
    { echo "bench-mse: download with --encryption $mode (seeders capped at $cap) failed" >&2; tail -n 20 "$W/download-$key.log" >&2; exit 1; }
  SECS[$key]=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
  CPU[$key]=$(awk '{ printf "%.2f", $1 + $2 }' "$W/time-$key")
  cmp -s "$DATA" "$W/out/$(basename "$DATA")" || { echo "bench-mse: downloaded data differs" >&2; exit 1; }
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=()
  what="uncapped"
  [ "$cap" != 0 ] && what="capped at $cap/s each"
  printf "download %d MiB from 2 gotfs seeders (%s), --encryption %-7s %6.2f s, downloader CPU %5.2f s\n" \
    "$SIZE_MIB" "$what" "$mode" "${SECS[$key]}" "${CPU[$key]}"
done
awk -v off="${SECS[off-0]}" -v req="${SECS[require-0]}" -v co="${CPU[off-0]}" -v cr="${CPU[require-0]}" \
  'BEGIN { printf "download, uncapped: encrypted/plaintext speed ratio %.2f, CPU %.2f s vs %.2f s\n", off / req, cr, co }'
awk -v off="${SECS[off-$CAP]}" -v req="${SECS[require-$CAP]}" -v co="${CPU[off-$CAP]}" -v cr="${CPU[require-$CAP]}" \
  'BEGIN { printf "download, seeders capped: encrypted/plaintext speed ratio %.2f, CPU %.2f s vs %.2f s\n", off / req, cr, co }'
