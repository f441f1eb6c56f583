#!/usr/bin/env bash
# Streaming over a WAN-like swarm. A 45 MB H.264 MP4 whose index (moov) is at the end, as
# players meet it, is seeded by 4 `gotfs seed` processes, each behind a forwarder of our own
# (internal/netsim, run by internal/netsim/wanlab) that adds one-way delay and caps each
# connection's rate: two near, fast seeders and two far, slow ones. A tracker of the same tool
# hands out only the forwarders, so gotfs and btfs (Debian's, libtorrent) see the same swarm.
# Each run is a fresh mount with an empty cache; runs of gotfs and btfs take turns.
#   first  one 64 KiB read in the middle of the file, timed from the read call (ms), at once
#          after the file appears (the connections to the seeders are being made meanwhile)
#   warm   the same read 1 s after the file appears, the seeders connected: the latency of a
#          read itself (the target below is for this one)
#   probe  ffprobe of the file (reads the head, then the moov at the end) (s)
#   seek   ffmpeg -ss 45 decoding 1 s from 45 s in (s)
#   cp     cold `cp` of the whole file from a fresh mount vs `gotfs download` of it (fresh cache
#          and folder) on the same swarm, in turns: where the network, not the CPU, is the
#          bottleneck, the mount's read path should cost nothing (target cp/download >= 0.95)
# Medians of BENCH_WAN_REPS runs (default 3) and the ratio btfs/gotfs of the medians.
# Links (BENCH_WAN_NEAR / BENCH_WAN_FAR, one-way delay and rate): 10ms,20MB and 120ms,1MB.
# Targets (issue 12): first byte <= 2 round trips of the fastest peer plus one piece at the
# swarm's rate; seek <= 1.5 s.
# Everything stays on 127.0.0.0/8 (btfs itself binds 0.0.0.0; it has no option against that).
set -euo pipefail
if [ "${GOTFS_BENCH_LOCKED:-0}" != 1 ]; then
  export GOTFS_BENCH_LOCKED=1
  exec flock /tmp/gotfs-bench.lock "$0" "$@"
fi
cd "$(dirname "$0")/.."
. scripts/bench-vm.sh
GOTFS=${GOTFS:-$PWD/bin/gotfs}
REPS=${BENCH_WAN_REPS:-3}
NEAR=${BENCH_WAN_NEAR:-delay=10ms,rate=20MB}
FAR=${BENCH_WAN_FAR:-delay=120ms,rate=1MB}
PIECE=${BENCH_WAN_PIECE:-256KiB}
RUN_BTFS=${BENCH_BTFS:-1}
PY=/usr/bin/python3
H="$PY $PWD/scripts/bench_fuse.py"
for b in ffmpeg ffprobe flock; do
  command -v "$b" >/dev/null || { echo "bench-wan: $b is missing (make bench installs it)" >&2; exit 1; }
done
[ -x "$GOTFS" ] || { echo "bench-wan: $GOTFS is missing (make build)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-wan: run as root (FUSE mounts)" >&2; exit 1; }
if [ "$RUN_BTFS" = 1 ] && ! command -v btfs >/dev/null; then
  echo "bench-wan: btfs is missing (WITH_BENCH_DEPS=1 scripts/install-deps.sh); skipping it" >&2
  RUN_BTFS=0
fi

OWN_DIR=0
if [ -z "${BENCH_DIR:-}" ]; then BENCH_DIR=$(mktemp -d /tmp/gotfs-bench.XXXXXX); OWN_DIR=1; fi
W=$BENCH_DIR/wan
rm -rf "$W" && mkdir -p "$W"
cp "$GOTFS" "$W/gotfs" && GOTFS=$W/gotfs
go build -o "$W/wanlab" ./internal/netsim/wanlab
echo "bench-wan: $("$GOTFS" version 2>&1 | head -n 1)"

PIDS=()
MP=$W/mnt
mkdir -p "$MP"
MPID=""
unmount_any() {
  if mountpoint -q "$MP"; then
    fusermount3 -u "$MP" 2>/dev/null || umount -l "$MP" 2>/dev/null || true
  fi
  if [ -n "$MPID" ]; then kill "$MPID" 2>/dev/null || true; wait "$MPID" 2>/dev/null || true; MPID=""; fi
}
cleanup() {
  unmount_any
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
  if [ "$OWN_DIR" = 1 ]; then rm -rf "$BENCH_DIR"; fi
  vm_release_memory
}
trap cleanup EXIT
trap 'exit 130' INT TERM
vm_hold_memory
now() { date +%s.%N; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f\n", b-a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'; }

# The media: 90 s of 720p test pattern at ~4 Mbit/s, moov at the end (no faststart).
MEDIA=$W/data/movie.mp4
mkdir -p "$W/data"
ffmpeg -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 -t 90 -c:v libx264 -preset ultrafast \
  -b:v 4M -maxrate 4M -bufsize 8M -pix_fmt yuv420p "$MEDIA"
SIZE=$(stat -c %s "$MEDIA")
echo "bench-wan: media $((SIZE / 1000000)) MB, pieces $PIECE; links near $NEAR, far $FAR"

TPORT=7190
"$GOTFS" create "$MEDIA" -t "http://127.0.0.1:$TPORT/announce" --piece-length "$PIECE" -o "$W/movie.torrent" >/dev/null
links=()
i=0
for spec in "$NEAR" "$NEAR" "$FAR" "$FAR"; do
  i=$((i + 1))
  "$GOTFS" seed "$W/movie.torrent" "$W/data" --listen "127.0.0.3$i:7000" --no-dht --cache-dir "$W/seed$i" >"$W/seed$i.log" 2>&1 &
  PIDS+=($!)
  links+=(-link "127.0.0.4$i:7000=127.0.0.3$i:7000,$spec")
done
"$W/wanlab" -tracker "127.0.0.1:$TPORT" "${links[@]}" >"$W/wanlab.log" 2>&1 &
PIDS+=($!)
for i in 1 2 3 4; do
  for _ in $(seq 100); do grep -q 'listening on port' "$W/seed$i.log" 2>/dev/null && break; sleep 0.1; done
done
for _ in $(seq 50); do grep -q ready "$W/wanlab.log" && break; sleep 0.1; done

mount_gotfs() {
  rm -rf "$W/cache" && mkdir -p "$W/cache"
  "$GOTFS" mount "$W/movie.torrent" "$MP" --cache-dir "$W/cache" --no-dht --listen 127.0.0.51:0 >"$W/mount.log" 2>&1 &
  MPID=$!
  $H waitfile "$MP/movie.mp4" 30 >/dev/null || { echo "bench-wan: gotfs mount did not come up" >&2; tail "$W/mount.log" >&2; return 1; }
}
mount_btfs() {
  rm -rf "$W/btfs" && mkdir -p "$W/btfs"
  btfs -f --data-directory="$W/btfs" --min-port=7191 --max-port=7191 "$W/movie.torrent" "$MP" >"$W/btfs.log" 2>&1 &
  MPID=$!
  $H waitfile "$MP/movie.mp4" 60 >/dev/null || { echo "bench-wan: btfs did not come up" >&2; tail "$W/btfs.log" >&2; return 1; }
}
measure() { # measure NAME: one fresh mount per figure
  local who=$1 t0 ms
  mount_$who || return 1
  ms=$(timeout 120 $H pread "$MP/movie.mp4" $((SIZE / 2 / 65536 * 65536)) 65536 "$MEDIA") || ms=120000
  echo "$ms" >>"$W/$who.first"
  unmount_any
  mount_$who || return 1
  sleep 1
  ms=$(timeout 120 $H pread "$MP/movie.mp4" $((SIZE / 3 / 65536 * 65536)) 65536 "$MEDIA") || ms=120000
  echo "$ms" >>"$W/$who.warm"
  unmount_any
  mount_$who || return 1
  t0=$(now)
  timeout 120 ffprobe -loglevel error -show_format "$MP/movie.mp4" >/dev/null || echo "bench-wan: $who: ffprobe failed" >&2
  secs_since "$t0" >>"$W/$who.probe"
  unmount_any
  mount_$who || return 1
  t0=$(now)
  timeout 120 ffmpeg -loglevel error -ss 45 -i "$MP/movie.mp4" -t 1 -f null - || echo "bench-wan: $who: ffmpeg -ss failed" >&2
  secs_since "$t0" >>"$W/$who.seek"
  unmount_any
  echo "  $who: first $(tail -n1 "$W/$who.first") ms, warm $(tail -n1 "$W/$who.warm") ms, probe $(tail -n1 "$W/$who.probe") s, seek $(tail -n1 "$W/$who.seek") s"
}
who_list=(gotfs)
[ "$RUN_BTFS" = 1 ] && who_list+=(btfs)
for r in $(seq "$REPS"); do
  echo "bench-wan: run $r"
  for who in "${who_list[@]}"; do measure "$who"; done
done
# Cold cp from a fresh mount vs gotfs download of the same file, in turns.
for r in $(seq "$REPS"); do
  mount_gotfs
  t0=$(now)
  timeout 300 cp "$MP/movie.mp4" "$W/cp.out" || echo "bench-wan: cold cp failed" >&2
  secs_since "$t0" >>"$W/cp.secs"
  unmount_any
  cmp -s "$MEDIA" "$W/cp.out" || echo "bench-wan: the cold cp differs from the source" >&2
  rm -rf "$W/cp.out" "$W/dl" "$W/dlcache"
  t0=$(now)
  timeout 300 "$GOTFS" download "$W/movie.torrent" -o "$W/dl" --cache-dir "$W/dlcache" --no-dht \
    --listen 127.0.0.52:0 >"$W/dl.log" 2>&1 || echo "bench-wan: gotfs download failed" >&2
  secs_since "$t0" >>"$W/dl.secs"
  cmp -s "$MEDIA" "$W/dl/movie.mp4" || echo "bench-wan: the download differs from the source" >&2
  echo "  cold cp $(tail -n1 "$W/cp.secs") s, download $(tail -n1 "$W/dl.secs") s"
done
printf '\n%-8s %12s %10s %10s %10s\n' "" "first (ms)" "warm (ms)" "probe (s)" "seek (s)"
for who in "${who_list[@]}"; do
  printf '%-8s %12s %10s %10s %10s\n' "$who" "$(median <"$W/$who.first")" "$(median <"$W/$who.warm")" "$(median <"$W/$who.probe")" "$(median <"$W/$who.seek")"
done
if [ "$RUN_BTFS" = 1 ]; then
  ratio() { awk -v a="$(median <"$W/btfs.$1")" -v b="$(median <"$W/gotfs.$1")" 'BEGIN { if (b > 0) printf "%.1f", a/b; else print "-" }'; }
  printf '%-8s %12s %10s %10s %10s\n' "btfs/us" "$(ratio first)" "$(ratio warm)" "$(ratio probe)" "$(ratio seek)"
fi
cps=$(median <"$W/cp.secs") dls=$(median <"$W/dl.secs")
awk -v s="$SIZE" -v c="$cps" -v d="$dls" 'BEGIN { printf "\ncold cp from the mount %.1f MB/s, gotfs download %.1f MB/s (medians): cp/download %.2f (target >= 0.95)\n", s/1e6/c, s/1e6/d, d/c }'
