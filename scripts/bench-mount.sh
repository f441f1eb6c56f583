#!/usr/bin/env bash
# FUSE mount benchmark: a 1 GiB single-file torrent of random data served on loopback by 4
# `gotfs seed` seeders (127.0.0.11-14, each with its own cache) found through opentracker, with
# 1 MiB and with 16 MiB pieces (issue 12). For each piece size:
#   cold   `cp` of the file from a fresh mount (empty cache) to a file beside the data vs
#          `gotfs download` (fresh folder and cache; its time includes the process's start and
#          its final fsync): BENCH_REPS runs of each, interleaved; median MB/s each and the ratio
#          of the medians (target >= 0.95, issue 12); also a cold `cat` to /dev/null, the mount's part
#          without cp's own 1 GiB write
#   bound  `gotfs download` with an independent `cp` of a second 1 GiB file (from the page
#          cache, no FUSE) running beside it, timed until both end, vs the download alone: the
#          work a copy out of any mount adds at the least (cp's own read and write of every
#          byte), so its ratio is the most a cold cp / download can reach on this machine
#   capped the same cold cp vs download with each seeder's upload capped (BENCH_SEED_RATE), so
#          that both are bound by the network, not by the 2 cores shared with seeders and cp
#   rss    peak RSS of the `gotfs mount` process during that cold cp, default settings (<= 48 MiB, issue 12)
#   ttfb   one 64 KiB pread at N random offsets, each on a fresh mount with an empty cache, timed
#          from the read call to its return once the file is visible: median and worst
#          (targets <= 100 ms and <= 500 ms)
#   btfs   Debian's btfs on the same swarm (peers from the tracker): cold cp MB/s and first byte
#   warm   everything verified, seeders stopped, a fresh mount on the same cache: `cat` of the
#          file vs `cat` of the cache's own file, page cache dropped before each, BENCH_REPS
#          runs, medians (ratio >= 0.8); also `cat` with --no-passthrough (every read through
#          gotfs, spliced from the cache file) for the read path's own figure
# then a table of figures and ratios. MB/s are 10^6 bytes per second. scripts/bench-vm.sh keeps
# the VM's free page reporting from charging host page faults to whichever run comes next.
#
# Env: GOTFS (binary, default bin/gotfs), BENCH_DIR (work folder, default a new temp folder; the
# data file is shared with the other sections), BENCH_SIZE_MIB (default 1024), BENCH_PIECES
# (default "1MiB 16MiB"), BENCH_REPS (default 3), BENCH_TTFB_N (default 10), BENCH_BTFS (1 = run btfs, default 1),
# BENCH_SEED_RATE (each seeder's upload cap for the capped cold cp/download, default 50MiB; empty = skip),
# BENCH_BTFS_TTFB_N (default 3), BENCH_TIMEOUT (seconds per transfer, default 600), BENCH_SEED
# (offsets, default 1).
# Everything stays on 127.0.0.0/8 (but btfs itself binds 0.0.0.0 and may try its DHT routers: it
# has no option against that). Every process and mount the script starts is stopped on exit.
# Runs under flock /tmp/gotfs-bench.lock so that no two benchmarks run at once; a caller that
# already holds the lock sets GOTFS_BENCH_LOCKED=1.
set -euo pipefail
if [ "${GOTFS_BENCH_LOCKED:-0}" != 1 ]; then
  export GOTFS_BENCH_LOCKED=1
  exec flock /tmp/gotfs-bench.lock "$0" "$@"
fi
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
GOTFS=${GOTFS:-$PWD/bin/gotfs}
REPS=${BENCH_REPS:-3}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
PIECES=${BENCH_PIECES:-"1MiB 16MiB"}
TTFB_N=${BENCH_TTFB_N:-10}
SEED_RATE=${BENCH_SEED_RATE-50MiB}
RUN_BTFS=${BENCH_BTFS:-1}
BTFS_TTFB_N=${BENCH_BTFS_TTFB_N:-3}
TIMEOUT=${BENCH_TIMEOUT:-600}
SEED=${BENCH_SEED:-1}
PY=/usr/bin/python3
H="$PY $PWD/scripts/bench_fuse.py"
SIZE=$((SIZE_MIB << 20))

for b in opentracker flock; do
  command -v "$b" >/dev/null || { echo "bench-mount: $b is missing (make bench installs it)" >&2; exit 1; }
done
[ -x "$GOTFS" ] || { echo "bench-mount: $GOTFS is missing (make build)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-mount: run as root (it drops the page cache)" >&2; exit 1; }
if [ ! -x /usr/bin/time ]; then apt-get install -y -qq time >/dev/null; fi
if [ "$RUN_BTFS" = 1 ] && ! command -v btfs >/dev/null; then
  echo "bench-mount: btfs is missing (WITH_BENCH_DEPS=1 scripts/install-deps.sh); skipping it" >&2
  RUN_BTFS=0
fi

OWN_DIR=0
if [ -z "${BENCH_DIR:-}" ]; then BENCH_DIR=$(mktemp -d /tmp/gotfs-bench.XXXXXX); OWN_DIR=1; fi
mkdir -p "$BENCH_DIR"
W=$BENCH_DIR/mount
rm -rf "$W" && mkdir -p "$W"
# A private copy: a rebuild of bin/gotfs during the run must not change what is measured.
cp "$GOTFS" "$W/gotfs" && GOTFS=$W/gotfs
echo "bench-mount: $("$GOTFS" version 2>&1 | head -n 1)"

PIDS=()   # background processes (seeders, tracker)
MOUNTS=() # mount points in use
stop_pids() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  local m
  for m in "${MOUNTS[@]}"; do
    if mountpoint -q "$m"; then
      "$GOTFS" unmount --lazy "$m" >/dev/null 2>&1 || fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    fi
  done
  [ -n "${MPID:-}" ] && { kill "$MPID" 2>/dev/null || true; wait "$MPID" 2>/dev/null || true; }
  stop_pids
  rm -rf "$W"
  if [ "$OWN_DIR" = 1 ]; then rm -rf "$BENCH_DIR"; fi
  vm_release_memory
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b-a)*1000 }'; }

# The data: random bytes, shared with the other sections through BENCH_DIR.
DATA=$(bench_file bench.bin "$SIZE_MIB")
NAME=$(basename "$DATA")
sync # no writeback of the data file under the first measurement

vm_hold_memory

# The tracker: whitelist inside its folder, world-readable (it chroots and drops to nobody).
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
opentracker -i 127.0.0.1 -p "$OT_PORT" -P "$OT_PORT" -d "$OT" -w whitelist >"$W/opentracker.log" 2>&1 &
OT_PID=$!
PIDS+=("$OT_PID") # stopped by cleanup, also when the script ends early
for _ in $(seq 100); do
  $PY -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2)' "$OT_PORT" 2>/dev/null && break
  sleep 0.05
done

SEED_PIDS=()
start_seeders() { # start_seeders TORRENT
  local i ip
  for i in 1 2 3 4; do
    ip=127.0.0.$((10 + i))
    # shellcheck disable=SC2086
    XDG_CACHE_HOME=$W/seed$i "$GOTFS" seed "$1" "$DATA" --listen "$ip:$(free_port "$ip")" --no-dht \
      --cache-dir "$W/seed$i/gotfs" ${SEED_EXTRA:-} >"$W/seed$i.log" 2>&1 &
    SEED_PIDS+=($!)
  done
  local want=4 n=0
  for _ in $(seq 600); do
    n=$("$GOTFS" peers --json "$1" 2>/dev/null | $PY -c 'import json,sys
d=json.load(sys.stdin); print(sum(1 for p in d.get("peers") or [] if p["addr"].rsplit(":",1)[0] in ("127.0.0.11","127.0.0.12","127.0.0.13","127.0.0.14")))' 2>/dev/null || echo 0)
    [ "$n" -ge "$want" ] && break
    sleep 0.2
  done
  [ "$n" -ge "$want" ] || { echo "bench-mount: only $n of $want seeders announced" >&2; tail -n 5 "$W"/seed*.log >&2; exit 1; }
}
stop_seeders() {
  local p
  for p in "${SEED_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SEED_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SEED_PIDS=()
}
trap 'stop_seeders; cleanup' EXIT

MP=$W/mnt
mkdir -p "$MP"
MOUNTS+=("$MP")
MPID=""
CLIENT_IP=127.0.0.31

# mount_gotfs TORRENT CACHE LOG [TIMEFILE]: mounts in the background and waits for the file;
# sets MPID and MOUNT_MS (start to file visible).
mount_gotfs() {
  local t=$1 c=$2 log=$3 tv=${4:-} t0
  t0=$(now)
  if [ -n "$tv" ]; then
    XDG_CACHE_HOME=$c /usr/bin/time -v -o "$tv" "$GOTFS" mount "$t" "$MP" --cache-dir "$c/gotfs" \
      --listen "$CLIENT_IP:$(free_port $CLIENT_IP)" --no-dht ${MOUNT_EXTRA:-} >"$log" 2>&1 &
  else
    XDG_CACHE_HOME=$c "$GOTFS" mount "$t" "$MP" --cache-dir "$c/gotfs" \
      --listen "$CLIENT_IP:$(free_port $CLIENT_IP)" --no-dht ${MOUNT_EXTRA:-} >"$log" 2>&1 &
  fi
  MPID=$!
  if ! $H waitfile "$MP/$NAME" 30 >/dev/null; then
    echo "bench-mount: the mount did not show $NAME within 30 s" >&2; tail -n 20 "$log" >&2; exit 1
  fi
  MOUNT_MS=$(ms_since "$t0")
}
unmount_gotfs() {
  "$GOTFS" unmount "$MP" >/dev/null 2>&1 || "$GOTFS" unmount --lazy "$MP" >/dev/null 2>&1 || true
  wait "$MPID" 2>/dev/null || true
  MPID=""
}
worst() { sort -g | tail -n 1; }
rss_of() { awk -F': ' '/Maximum resident set size/ {printf "%.0f\n", $2/1024}' "$1"; }
elapsed() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$1"; }

declare -A R # results, keyed "figure-piecelength"
for pl in $PIECES; do
  t=${TORRENT[$pl]}
  hash=${HASH[$pl]}
  echo "bench-mount: $pl pieces: starting 4 gotfs seeders"
  start_seeders "$t"
  cat "$DATA" >/dev/null # the seeders read from the page cache in every run

  # Cold cp from a fresh mount (empty cache), the mount under /usr/bin/time for its peak RSS,
  # and gotfs download of the same torrent (fresh folder and cache), REPS times each, in turns.
  : >"$W/samples-cp-$pl" && : >"$W/samples-cat-$pl" && : >"$W/samples-dl-$pl" && : >"$W/samples-rss-$pl" && : >"$W/samples-dlrss-$pl"
  C1=$W/cache-cold-$pl
  cold_read() { # cold_read cp|cat: a fresh mount (empty cache), then cp of the file beside the
    # data (checked), or cat of it to /dev/null: the mount's part without cp's own 1 GiB write.
    # The cp's mount runs under /usr/bin/time for its peak RSS.
    local how=$1
    echo "bench-mount: $pl: cold $how from a fresh mount ($rep/$REPS)"
    rm -rf "$C1"
    sync # nothing left to write back from the run before
    if [ "$how" = cp ]; then
      mount_gotfs "$t" "$C1" "$W/mount-cold-$pl.log" "$W/mount-cold-$pl.time"
      R[mountms-$pl]=$MOUNT_MS
    else
      mount_gotfs "$t" "$C1" "$W/mount-cat-$pl.log"
    fi
    local dst=/dev/null ok=1
    [ "$how" = cp ] && dst=$W/cp.out
    t0=$(now)
    if [ "$how" = cp ]; then timeout "$TIMEOUT" cp "$MP/$NAME" "$dst" || ok=0
    else timeout "$TIMEOUT" cat "$MP/$NAME" >"$dst" || ok=0; fi
    s=$(secs_since "$t0")
    if [ "$ok" = 1 ] && { [ "$how" = cat ] || cmp -s "$DATA" "$dst"; }; then
      echo "  $how: $(printf %.2f "$s") s, $(mbs "$SIZE" "$s") MB/s"
      mbs "$SIZE" "$s" >>"$W/samples-$how${TAG:-}-$pl"
    else
      echo "bench-mount: cold $how failed or its copy differs from the source" >&2; R[${how}bad-$pl]=1
    fi
    rm -f "$W/cp.out"
    unmount_gotfs
    if [ "$how" = cp ]; then rss_of "$W/mount-cold-$pl.time" >>"$W/samples-rss-$pl"; fi
  }
  # The bound's cp copies a second file of the same size, from the page cache to the bench
  # folder (the cold cp's destination).
  OTHER=$(bench_file bench-other.bin "$SIZE_MIB")
  : >"$W/samples-bound-$pl"
  # gotfs_download [beside]: gotfs download of the torrent (fresh folder and cache), timed by
  # /usr/bin/time. With beside (the bound), cp of OTHER starts with it, and the time runs
  # until both have ended.
  gotfs_download() {
    local beside=${1:-} kind=dl what="gotfs download" port t0 cppid="" ok=1
    if [ -n "$beside" ]; then kind=bound what="gotfs download beside a cp of another ${SIZE_MIB} MiB"; fi
    echo "bench-mount: $pl: $what ($rep/$REPS)"
    out=$W/dl-$pl
    rm -rf "$out" "$W/cache-dl" "$W/other.out"
    if [ -n "$beside" ]; then cat "$OTHER" >/dev/null; fi
    sync
    port=$(free_port $CLIENT_IP)
    t0=$(now)
    if [ -n "$beside" ]; then cp "$OTHER" "$W/other.out" & cppid=$!; fi
    XDG_CACHE_HOME=$W/cache-dl timeout "$TIMEOUT" /usr/bin/time -v -o "$W/dl-$pl.time" "$GOTFS" download "$t" -o "$out" \
      --cache-dir "$W/cache-dl/gotfs" --listen "$CLIENT_IP:$port" --no-dht --json >"$W/dl-$pl.log" 2>&1 || ok=0
    if [ -n "$cppid" ]; then
      wait "$cppid" || ok=0
      s=$(secs_since "$t0")
    else
      s=$(elapsed "$W/dl-$pl.time")
    fi
    if [ "$ok" = 1 ] && cmp -s "$DATA" "$out/$NAME"; then
      echo "  $what: $(printf %.2f "$s") s, $(mbs "$SIZE" "$s") MB/s"
      mbs "$SIZE" "$s" >>"$W/samples-$kind${TAG:-}-$pl"
      if [ -z "$beside" ]; then rss_of "$W/dl-$pl.time" >>"$W/samples-dlrss-$pl"; fi
    else
      echo "bench-mount: $what failed or its copy differs from the source" >&2; tail -n 5 "$W/dl-$pl.log" >&2
      R[${kind}bad-$pl]=1
    fi
    rm -rf "$out" "$W/cache-dl" "$W/other.out"
  }
  # Turn about, so that neither always runs first after the seeders started.
  for rep in $(seq "$REPS"); do
    if ((rep % 2)); then cold_read cp; cold_read cat; gotfs_download; gotfs_download beside
    else gotfs_download beside; gotfs_download; cold_read cat; cold_read cp; fi
  done
  for k in cp cat dl bound; do
    R[$k-$pl]=$(median <"$W/samples-$k-$pl")
    R[${k}all-$pl]=$(sort -g "$W/samples-$k-$pl" | paste -sd/)
    if [ -n "${R[${k}bad-$pl]:-}" ]; then R[$k-$pl]=fail; fi
  done
  R[rss-$pl]=$(worst <"$W/samples-rss-$pl")
  R[dlrss-$pl]=$(worst <"$W/samples-dlrss-$pl")

  # The same cold cp and download with each seeder's upload capped (SEED_RATE), so that both
  # are bound by the network rather than by the cores they share with the seeders and cp: on
  # loopback the cp pays for two more copies of every byte (the FUSE reply, cp's read) that
  # the download does not make.
  if [ -n "$SEED_RATE" ]; then
    stop_seeders
    SEED_EXTRA="--max-upload-rate $SEED_RATE" start_seeders "$t"
    : >"$W/samples-cp-cap-$pl" && : >"$W/samples-dl-cap-$pl"
    TAG=-cap
    for rep in $(seq "$REPS"); do
      echo "bench-mount: $pl: seeders capped at $SEED_RATE each"
      if ((rep % 2)); then cold_read cp; gotfs_download; else gotfs_download; cold_read cp; fi
    done
    TAG=""
    R[cpcap-$pl]=$(median <"$W/samples-cp-cap-$pl")
    R[dlcap-$pl]=$(median <"$W/samples-dl-cap-$pl")
    R[cpcapall-$pl]=$(sort -g "$W/samples-cp-cap-$pl" | paste -sd/)
    R[dlcapall-$pl]=$(sort -g "$W/samples-dl-cap-$pl" | paste -sd/)
    stop_seeders
    start_seeders "$t"
  fi

  # Time to first byte: one 64 KiB pread at random offsets, each on a fresh mount, empty cache.
  echo "bench-mount: $pl: first byte at $TTFB_N random offsets"
  : >"$W/ttfb-$pl" && : >"$W/ttfb-mount-$pl"
  for off in $($H offsets "$TTFB_N" "$SIZE" 65536 "$SEED"); do
    C=$W/cache-ttfb
    rm -rf "$C"
    mount_gotfs "$t" "$C" "$W/mount-ttfb.log"
    echo "$MOUNT_MS" >>"$W/ttfb-mount-$pl"
    if ms=$($H pread "$MP/$NAME" "$off" 65536 "$DATA"); then
      echo "$ms" >>"$W/ttfb-$pl"
      echo "  offset $off: ${ms} ms (mount visible after ${MOUNT_MS} ms)"
    else
      echo "bench-mount: pread at $off failed" >&2; echo 99999 >>"$W/ttfb-$pl"
    fi
    unmount_gotfs
  done
  rm -rf "$W/cache-ttfb"
  R[ttfbmed-$pl]=$(median <"$W/ttfb-$pl")
  R[ttfbmax-$pl]=$(worst <"$W/ttfb-$pl")
  R[mountmed-$pl]=$(median <"$W/ttfb-mount-$pl")

  # btfs: peers from the tracker in the torrent.
  if [ "$RUN_BTFS" = 1 ]; then
    echo "bench-mount: $pl: btfs cold cp and first byte"
    bport=$(free_port 127.0.0.1)
    run_btfs() { # run_btfs DATADIR LOG: sets MPID, MOUNT_MS
      local t0
      t0=$(now)
      btfs -f --data-directory="$1" --min-port="$bport" --max-port="$bport" "$t" "$MP" >"$2" 2>&1 &
      MPID=$!
      if ! $H waitfile "$MP/$NAME" 30 >/dev/null; then
        echo "bench-mount: btfs did not show $NAME within 30 s" >&2; tail -n 20 "$2" >&2; return 1
      fi
      MOUNT_MS=$(ms_since "$t0")
    }
    stop_btfs() {
      fusermount3 -u "$MP" 2>/dev/null || fusermount3 -uz "$MP" 2>/dev/null || true
      kill "$MPID" 2>/dev/null || true
      wait "$MPID" 2>/dev/null || true
      MPID=""
    }
    rm -rf "$W/btfs" && mkdir -p "$W/btfs"
    if run_btfs "$W/btfs" "$W/btfs-cold-$pl.log"; then
      t0=$(now)
      if timeout "$TIMEOUT" cp "$MP/$NAME" "$W/cp.out"; then
        s=$(secs_since "$t0")
        R[btcp-$pl]=$(mbs "$SIZE" "$s")
        cmp -s "$DATA" "$W/cp.out" || { echo "bench-mount: btfs's copy differs from the source" >&2; R[btcp-$pl]=bad; }
      else
        got=$(stat -c %s "$W/cp.out" 2>/dev/null || echo 0)
        echo "bench-mount: btfs cold cp did not finish in $TIMEOUT s ($got bytes)" >&2
        R[btcp-$pl]="<$(mbs "$((got + 1))" "$TIMEOUT")"
      fi
      rm -f "$W/cp.out"
      stop_btfs
    fi
    rm -rf "$W/btfs"
    : >"$W/btttfb-$pl"
    for off in $($H offsets "$BTFS_TTFB_N" "$SIZE" 65536 "$SEED"); do
      mkdir -p "$W/btfs"
      if run_btfs "$W/btfs" "$W/btfs-ttfb.log"; then
        if ms=$(timeout 60 $H pread "$MP/$NAME" "$off" 65536 "$DATA"); then
          echo "$ms" >>"$W/btttfb-$pl"
          echo "  btfs offset $off: ${ms} ms (mount visible after ${MOUNT_MS} ms)"
        else
          echo "bench-mount: btfs pread at $off failed or took over 60 s" >&2; echo 60000 >>"$W/btttfb-$pl"
        fi
        stop_btfs
      fi
      rm -rf "$W/btfs"
    done
    R[btttfbmed-$pl]=$(median <"$W/btttfb-$pl")
    R[btttfbmax-$pl]=$(worst <"$W/btttfb-$pl")
  fi

  # Warm: every piece verified by the last cold cp; no seeders; a fresh mount on the same cache
  # for each read, with passthrough (the default) and without; the cache file itself for scale.
  stop_seeders
  CF=$C1/gotfs/$hash/data/$NAME
  [ -f "$CF" ] || { echo "bench-mount: no cache file at $CF" >&2; ls -R "$C1" >&2; exit 1; }
  : >"$W/samples-warm-$pl" && : >"$W/samples-warmfuse-$pl" && : >"$W/samples-raw-$pl"
  for rep in $(seq "$REPS"); do
    echo "bench-mount: $pl: warm read from the cache ($rep/$REPS)"
    for mode in warm warmfuse raw; do
      if [ "$mode" != raw ]; then
        extra=""
        [ "$mode" = warmfuse ] && extra=--no-passthrough
        MOUNT_EXTRA=$extra mount_gotfs "$t" "$C1" "$W/mount-$mode-$pl.log"
        src=$MP/$NAME
      else
        src=$CF
      fi
      drop_caches
      t0=$(now)
      cat "$src" >/dev/null
      s=$(secs_since "$t0")
      mbs "$SIZE" "$s" >>"$W/samples-$mode-$pl"
      echo "  $mode: $(mbs "$SIZE" "$s") MB/s"
      if [ "$mode" != raw ]; then unmount_gotfs; fi
    done
  done
  R[warm-$pl]=$(median <"$W/samples-warm-$pl")
  R[warmfuse-$pl]=$(median <"$W/samples-warmfuse-$pl")
  R[raw-$pl]=$(median <"$W/samples-raw-$pl")
  rm -rf "$C1"
done
kill "$OT_PID" 2>/dev/null || true
wait "$OT_PID" 2>/dev/null || true

verdict() { # verdict VALUE OP LIMIT
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { if (v == "-" || v == "" || v+0 != v) { print "?"; exit }
    ok = (op == ">=") ? (v+0 >= l+0) : (v+0 <= l+0); print ok ? "met" : "MISSED" }'
}
echo
echo "FUSE mount of a ${SIZE_MIB} MiB torrent, 4 gotfs seeders on loopback via opentracker ($(nproc) cores, $REPS runs of cold and warm)"
printf '%-8s %-40s %10s %10s  %-10s %s\n' pieces figure value ratio target verdict
for pl in $PIECES; do
  row() { printf '%-8s %-40s %10s %10s  %-10s %s\n' "$pl" "$@"; }
  r=$(ratio "${R[cp-$pl]}" "${R[dl-$pl]}")
  row "cold cp from mount, MB/s (median)" "${R[cp-$pl]}" "" "" "(${R[cpall-$pl]})"
  row "gotfs download, MB/s (median)" "${R[dl-$pl]}" "" "" "(${R[dlall-$pl]})"
  row "cold cp / download" "" "$r" ">= 0.95" "$(verdict "$r" '>=' 0.95)"
  row "download beside a cp of another file, MB/s" "${R[bound-$pl]}" "" "" "(${R[boundall-$pl]})"
  row "  / download alone: the most cp can reach" "" "$(ratio "${R[bound-$pl]}" "${R[dl-$pl]}")" "" ""
  if [ -n "$SEED_RATE" ]; then
    row "capped: cold cp, MB/s (median)" "${R[cpcap-$pl]}" "" "" "(${R[cpcapall-$pl]}; seeders $SEED_RATE/s each)"
    row "capped: download, MB/s (median)" "${R[dlcap-$pl]}" "" "" "(${R[dlcapall-$pl]})"
    r=$(ratio "${R[cpcap-$pl]}" "${R[dlcap-$pl]}")
    row "capped: cold cp / download" "" "$r" ">= 0.95" "$(verdict "$r" '>=' 0.95)"
  fi
  row "cold cat > /dev/null from mount, MB/s" "${R[cat-$pl]}" "" "" "(${R[catall-$pl]})"
  row "cold cat / download (no cp writes)" "" "$(ratio "${R[cat-$pl]}" "${R[dl-$pl]}")" "" ""
  row "warm cat from mount, MB/s (median)" "${R[warm-$pl]}" "" "" ""
  row "warm cat, --no-passthrough, MB/s" "${R[warmfuse-$pl]}" "" "" ""
  row "cat of the cache file, MB/s (median)" "${R[raw-$pl]}" "" "" ""
  r=$(ratio "${R[warm-$pl]}" "${R[raw-$pl]}")
  row "warm mount / cache file" "" "$r" ">= 0.8" "$(verdict "$r" '>=' 0.8)"
  row "warm --no-passthrough / cache file" "" "$(ratio "${R[warmfuse-$pl]}" "${R[raw-$pl]}")" "" ""
  row "first 64 KiB, median ms (n=$TTFB_N)" "${R[ttfbmed-$pl]}" "" "<= 100" "$(verdict "${R[ttfbmed-$pl]}" '<=' 100)"
  row "first 64 KiB, worst ms" "${R[ttfbmax-$pl]}" "" "<= 500" "$(verdict "${R[ttfbmax-$pl]}" '<=' 500)"
  row "mount start to file visible, median ms" "${R[mountmed-$pl]}" "" "" ""
  row "peak RSS of mount during cold cp, MiB" "${R[rss-$pl]}" "" "<= 48" "$(verdict "${R[rss-$pl]}" '<=' 48)"
  row "peak RSS of gotfs download, MiB" "${R[dlrss-$pl]:--}" "" "" ""
  if [ "$RUN_BTFS" = 1 ]; then
    row "btfs cold cp, MB/s" "${R[btcp-$pl]:--}" "" "" ""
    row "gotfs cold cp / btfs" "" "$(ratio "${R[cp-$pl]}" "${R[btcp-$pl]:--}")" "" ""
    row "btfs first 64 KiB, median ms (n=$BTFS_TTFB_N)" "${R[btttfbmed-$pl]:--}" "" "" ""
    row "btfs first 64 KiB, worst ms" "${R[btttfbmax-$pl]:--}" "" "" ""
    row "btfs / gotfs first byte (median)" "" "$(ratio "${R[btttfbmed-$pl]:--}" "${R[ttfbmed-$pl]}")" "" ""
  fi
done
