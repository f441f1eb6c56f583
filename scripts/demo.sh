#!/usr/bin/env bash
# The main job on an embedded default: a local swarm on loopback (opentracker plus two
# `gotfs seed` processes serving generated sample data), a FUSE mount of the torrent, a slice
# read from the middle of a file, a full cp, `gotfs status`, and an unmount.
set -euo pipefail
cd "$(dirname "$0")/.."
GOTFS=$PWD/bin/gotfs
work=$(mktemp -d /tmp/gotfs-demo.XXXXXX)
pids=()
cleanup() {
  set +e
  mountpoint -q "$work/mnt" 2>/dev/null && "$GOTFS" unmount --lazy "$work/mnt" >/dev/null 2>&1
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "sample data: a 64 MiB video-like file, a 5 MiB log and a text file"
mkdir -p "$work/src/Sample/extras" "$work/mnt"
if command -v ffmpeg >/dev/null 2>&1; then
  ffmpeg -v error -f lavfi -i testsrc=duration=20:size=640x360:rate=25 -c:v libx264 -preset ultrafast \
    -pix_fmt yuv420p "$work/src/Sample/clip.mp4"
fi
head -c $((64 << 20)) /dev/urandom >"$work/src/Sample/movie.bin"
seq 1 600000 >"$work/src/Sample/extras/numbers.log"
echo "gotfs demo: files from a swarm that has not been downloaded yet" >"$work/src/Sample/extras/notes.txt"
ls -lR "$work/src/Sample" | sed 's/^/  /'

step "a local tracker (opentracker on 127.0.0.1) and the torrent"
port=$((20000 + RANDOM % 20000))
"$GOTFS" create "$work/src/Sample" -t "http://127.0.0.1:$port/announce" --piece-length 256KiB -o "$work/sample.torrent"
hash=$("$GOTFS" parse --json "$work/sample.torrent" | sed -n 's/.*"info_hash": "\([0-9a-f]*\)".*/\1/p')
mkdir -p "$work/tracker" && chmod 755 "$work" "$work/tracker"
echo "$hash" >"$work/tracker/whitelist.txt" && chmod 644 "$work/tracker/whitelist.txt"
(cd "$work/tracker" && exec opentracker -i 127.0.0.1 -p "$port" -P "$port" -d "$work/tracker" -w whitelist.txt) \
  >"$work/tracker.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
"$GOTFS" parse "$work/sample.torrent" | sed 's/^/  /'

step "two seeders (gotfs seed) on 127.0.0.11 and 127.0.0.12"
for i in 11 12; do
  XDG_CACHE_HOME="$work/cache-seed$i" "$GOTFS" seed --no-dht "$work/sample.torrent" "$work/src" --listen "127.0.0.$i:0" \
    >"$work/seed$i.log" 2>&1 &
  pids+=($!)
done
sleep 1
"$GOTFS" peers "$work/sample.torrent" | sed 's/^/  /'

step "mount: gotfs mount sample.torrent mnt (files appear at once, nothing downloaded yet)"
"$GOTFS" mount --no-dht "$work/sample.torrent" "$work/mnt" --cache-dir "$work/cache" --listen 127.0.0.20:0 \
  >"$work/mount.log" 2>&1 &
mountpid=$!
pids+=($mountpid)
for _ in $(seq 100); do [ -e "$work/mnt/Sample" ] && break; sleep 0.1; done
ls -lR "$work/mnt" | sed 's/^/  /'

step "stream: 1 MiB from the middle of movie.bin (only those pieces are fetched)"
start=$(date +%s.%N)
dd if="$work/mnt/Sample/movie.bin" of="$work/slice" bs=1M skip=40 count=1 status=none
end=$(date +%s.%N)
cmp "$work/slice" <(dd if="$work/src/Sample/movie.bin" bs=1M skip=40 count=1 status=none) &&
  printf '  slice correct, read in %.3f s\n' "$(awk "BEGIN{print $end - $start}")"
"$GOTFS" status "$work/mnt" --cache-dir "$work/cache" | sed 's/^/  /'

if [ -f "$work/src/Sample/clip.mp4" ] && command -v ffprobe >/dev/null 2>&1; then
  step "media: ffprobe reads the clip's duration straight from the mount"
  echo "  duration: $(ffprobe -v error -show_entries format=duration -of csv=p=0 "$work/mnt/Sample/clip.mp4") s"
fi

step "copy: cp -r of the whole torrent out of the mount, checked against the source"
start=$(date +%s.%N)
cp -r "$work/mnt/Sample" "$work/copy"
end=$(date +%s.%N)
diff -r "$work/src/Sample" "$work/copy" && printf '  %s copied and identical, %.2f s\n' "$(du -sh "$work/copy" | cut -f1)" "$(awk "BEGIN{print $end - $start}")"
"$GOTFS" status "$work/mnt" --cache-dir "$work/cache" | sed 's/^/  /'

step "unmount"
"$GOTFS" unmount "$work/mnt"
wait "$mountpid" 2>/dev/null || true
echo "  done; the cache keeps every verified piece for the next mount:"
"$GOTFS" cache ls --cache-dir "$work/cache" | sed 's/^/  /'
