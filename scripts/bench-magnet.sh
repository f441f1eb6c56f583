#!/usr/bin/env bash
# Magnet time-to-first-byte benchmark: how long from `gotfs mount MAGNET MOUNTPOINT` to the first
# byte read from the mount, on a loopback swarm of 4 `gotfs seed` seeders (127.0.0.11-14) of a
# ~256 MiB single-file torrent. Two variants, BENCH_MAGNET_N runs each, every run with an empty
# cache:
#   tracker  the magnet carries tr= of a local opentracker; no DHT anywhere (--no-dht)
#   dht      no tracker: the seeders' DHT nodes bootstrap from seeder 1 (which has none), the
#            mount's from seeder 1 too; the magnet holds only the info hash and the name
# Each run is split into phases, all measured from the moment the script starts `gotfs mount`:
#   engine    "fetching the metadata of" on stderr (process start, flags, listener, DHT node)
#   peers     first "peers found for metadata" (-v info log)
#   metadata  "metadata of ... received" on stderr
#   visible   the file exists under the mount point (polled every 2 ms)
#   mounted   "gotfs: mounted ..." on stderr (printed just after the file shows; not a phase)
#   1st byte  return of a 64 KiB pread at offset 0, called as soon as the file is visible
# Every stderr line is stamped with the time it arrived (scripts/bench_fuse.py stamp). The
# moment the first piece is verified cannot be seen from outside: the 1st byte figure is the
# closest (verification of that piece + the FUSE reply).
#
# Env: GOTFS (binary), BENCH_DIR (work folder, default a new temp folder), BENCH_MAGNET_MIB
# (default 256), BENCH_MAGNET_N (runs per variant, default 5), BENCH_MAGNET_VARIANTS (default
# "tracker dht"), BENCH_TIMEOUT (seconds per run, default 120).
# Everything stays on 127.0.0.0/8; every process and mount the script starts is stopped on exit.
# Runs under flock /tmp/gotfs-bench.lock; a caller that holds it already sets GOTFS_BENCH_LOCKED=1.
set -euo pipefail
if [ "${GOTFS_BENCH_LOCKED:-0}" != 1 ]; then
  export GOTFS_BENCH_LOCKED=1
  exec flock /tmp/gotfs-bench.lock "$0" "$@"
fi
cd "$(dirname "$0")/.."
GOTFS=${GOTFS:-$PWD/bin/gotfs}
SIZE_MIB=${BENCH_MAGNET_MIB:-256}
RUNS=${BENCH_MAGNET_N:-5}
VARIANTS=${BENCH_MAGNET_VARIANTS:-"tracker dht"}
TIMEOUT=${BENCH_TIMEOUT:-120}
PY=/usr/bin/python3
H="$PY $PWD/scripts/bench_fuse.py"
SIZE=$((SIZE_MIB << 20))

command -v opentracker >/dev/null || { echo "bench-magnet: opentracker is missing (make bench installs it)" >&2; exit 1; }
[ -x "$GOTFS" ] || { echo "bench-magnet: $GOTFS is missing (make build)" >&2; exit 1; }

OWN_DIR=0
if [ -z "${BENCH_DIR:-}" ]; then BENCH_DIR=$(mktemp -d /tmp/gotfs-bench.XXXXXX); OWN_DIR=1; fi
mkdir -p "$BENCH_DIR"
W=$BENCH_DIR/magnet
rm -rf "$W" && mkdir -p "$W"
# A private copy: a rebuild of bin/gotfs during the run must not change what is measured.
cp "$GOTFS" "$W/gotfs" && GOTFS=$W/gotfs
echo "bench-magnet: $("$GOTFS" version 2>&1 | head -n 1)"
MP=$W/mnt
mkdir -p "$MP"

PIDS=() # seeders and tracker
MPID="" SPID=""
stop_pids() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  if mountpoint -q "$MP" 2>/dev/null; then
    "$GOTFS" unmount --lazy "$MP" >/dev/null 2>&1 || fusermount3 -uz "$MP" 2>/dev/null || true
  fi
  if [ -n "$MPID" ]; then kill "$MPID" 2>/dev/null || true; wait "$MPID" 2>/dev/null || true; fi
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
  stop_pids
  rm -rf "$W"
  if [ "$OWN_DIR" = 1 ]; then rm -rf "$BENCH_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # free_port IP [udp]: a port free for TCP (and UDP with "udp") on IP
  $PY -c 'import socket,sys
while True:
    s=socket.socket(); s.bind((sys.argv[1],0)); p=s.getsockname()[1]
    if len(sys.argv) < 3: break
    u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try: u.bind((sys.argv[1],p)); u.close(); break
    except OSError: s.close()
print(p)' "$@"
}

# The data (its own size: not the 1 GiB file of the other sections).
DATA=$W/data/magnet.bin
NAME=$(basename "$DATA")
mkdir -p "$(dirname "$DATA")"
head -c "$SIZE" /dev/urandom >"$DATA"

OT=$W/tracker
mkdir -p "$OT" && chmod 755 "$OT" && : >"$OT/whitelist" && chmod 644 "$OT/whitelist"
OT_PORT=$(free_port 127.0.0.1)
ANNOUNCE=http://127.0.0.1:$OT_PORT/announce
TORRENT=$W/magnet.torrent
"$GOTFS" create "$DATA" -t "$ANNOUNCE" -o "$TORRENT" --progress=false >/dev/null
read -r HASH PLEN < <("$GOTFS" parse --json "$TORRENT" | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["info_hash"], d.get("piece_length", "?"))')
echo "$HASH" >>"$OT/whitelist"

start_tracker() {
  opentracker -i 127.0.0.1 -p "$OT_PORT" -P "$OT_PORT" -d "$OT" -w whitelist >"$W/opentracker.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    $PY -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2)' "$OT_PORT" 2>/dev/null && break
    sleep 0.05
  done
}

# start_seeders VARIANT: 4 seeders; sets SEED1 (seeder 1's address, its DHT node's too).
start_seeders() {
  local v=$1 i ip port dht
  SEED1=""
  for i in 1 2 3 4; do
    ip=127.0.0.$((10 + i))
    port=$(free_port "$ip" udp)
    if [ "$v" = tracker ]; then
      dht=(--no-dht)
    elif [ "$i" = 1 ]; then
      dht=(--dht-bootstrap=)
      SEED1=$ip:$port
    else
      dht=(--dht-bootstrap "$SEED1")
    fi
    XDG_CACHE_HOME=$W/seed$i "$GOTFS" seed "$TORRENT" "$DATA" --listen "$ip:$port" "${dht[@]}" \
      --cache-dir "$W/seed$i/gotfs" -vv >"$W/seed$i-$v.log" 2>&1 &
    PIDS+=($!)
    [ "$i" = 1 ] || continue
    # Seeder 1 first: the others bootstrap from it.
    for _ in $(seq 300); do grep -q "pieces verified" "$W/seed1-$v.log" && break; sleep 0.1; done
  done
  local n=0
  for _ in $(seq 600); do
    if [ "$v" = tracker ]; then
      n=$("$GOTFS" peers --json "$TORRENT" 2>/dev/null | $PY -c 'import json,sys
d=json.load(sys.stdin); print(sum(1 for p in d.get("peers") or [] if p["addr"].rsplit(":",1)[0] in ("127.0.0.11","127.0.0.12","127.0.0.13","127.0.0.14")))' 2>/dev/null || echo 0)
    else
      # Seeders 2-4 have announced to the DHT (seeder 1 answers get_peers with itself).
      n=$(( $(cat "$W"/seed[234]-dht.log 2>/dev/null | grep -c "dht announce done" || true) + 1 ))
    fi
    [ "$n" -ge 4 ] && break
    sleep 0.2
  done
  [ "$n" -ge 4 ] || { echo "bench-magnet: only $n of 4 seeders ready ($v)" >&2; tail -n 5 "$W"/seed*-"$v".log >&2; exit 1; }
}

# stamp_of LOG PATTERN T0: ms from T0 to the first stamped stderr line matching PATTERN.
stamp_of() {
  awk -v t0="$3" -v pat="$2" 'index($0, pat) { printf "%.0f", ($1 - t0) * 1000; found=1; exit } END { if (!found) print "-" }' "$1"
}

PHASES="engine peers metadata visible mounted first"
SPLIT="engine peers metadata visible first" # "mounted" is printed after the file shows
declare -A R
for v in $VARIANTS; do
  echo "bench-magnet: $v: starting 4 gotfs seeders"
  if [ "$v" = tracker ]; then
    start_tracker
    MAGNET="magnet:?xt=urn:btih:$HASH&dn=$NAME&tr=$(printf %s "$ANNOUNCE" | $PY -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=""))')"
  else
    MAGNET="magnet:?xt=urn:btih:$HASH&dn=$NAME"
  fi
  start_seeders "$v"
  for p in $PHASES; do : >"$W/$v-$p"; done
  for run in $(seq "$RUNS"); do
    C=$W/cache-mount
    rm -rf "$C"
    log=$W/mount-$v-$run.log
    ip=127.0.0.31
    port=$(free_port $ip udp)
    if [ "$v" = tracker ]; then dht=(--no-dht); else dht=(--dht-bootstrap "$SEED1"); fi
    # The stamper is up (interpreter started) before gotfs starts writing to it.
    rm -f "$W/fifo" "$W/ready" && mkfifo "$W/fifo"
    $H stamp "$W/fifo" "$W/ready" >"$log" &
    SPID=$!
    for _ in $(seq 500); do [ -e "$W/ready" ] && break; sleep 0.01; done
    t0=$(date +%s.%N)
    XDG_CACHE_HOME=$C "$GOTFS" mount -v "$MAGNET" "$MP" --cache-dir "$C/gotfs" --listen "$ip:$port" "${dht[@]}" 2>"$W/fifo" &
    MPID=$!
    if ! times=$(timeout "$TIMEOUT" $H waitread "$MP/$NAME" 0 65536 "$TIMEOUT"); then
      echo "bench-magnet: $v run $run: no first byte within $TIMEOUT s" >&2; tail -n 20 "$log" >&2
      times="- - -"
    fi
    read -r t_vis _ t_first <<<"$times"
    "$GOTFS" unmount "$MP" >/dev/null 2>&1 || "$GOTFS" unmount --lazy "$MP" >/dev/null 2>&1 || true
    wait "$MPID" 2>/dev/null || true
    MPID=""
    wait "$SPID" 2>/dev/null || true
    SPID=""
    e=$(stamp_of "$log" "fetching the metadata of" "$t0")
    pe=$(stamp_of "$log" "peers found for metadata" "$t0")
    me=$(stamp_of "$log" "metadata of $NAME received" "$t0")
    mo=$(stamp_of "$log" "gotfs: mounted" "$t0")
    vi=$(awk -v a="$t0" -v b="$t_vis" 'BEGIN { if (b == "-") print "-"; else printf "%.0f", (b-a)*1000 }')
    fb=$(awk -v a="$t0" -v b="$t_first" 'BEGIN { if (b == "-") print "-"; else printf "%.0f", (b-a)*1000 }')
    echo "  run $run: engine $e, peers $pe, metadata $me, mounted $mo, visible $vi, 1st byte $fb ms"
    for p in engine:$e peers:$pe metadata:$me mounted:$mo visible:$vi first:$fb; do
      [ "${p#*:}" = - ] || echo "${p#*:}" >>"$W/$v-${p%%:*}"
    done
  done
  for p in $PHASES; do
    R[$v-$p]=$(sort -g "$W/$v-$p" | awk '{a[NR]=$1} END { if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.0f", (a[NR/2]+a[NR/2+1])/2 }')
    R[$v-$p-max]=$(sort -g "$W/$v-$p" | tail -n 1)
    R[$v-$p-n]=$(wc -l <"$W/$v-$p")
  done
  stop_pids
done

echo
echo "Magnet mount to first byte: ${SIZE_MIB} MiB torrent ($PLEN-byte pieces), 4 gotfs seeders on loopback ($(nproc) cores)"
echo "ms from starting gotfs mount, median (worst) of $RUNS runs each, empty cache every run"
printf '%-10s' phase
for v in $VARIANTS; do printf '%22s' "$v"; done
echo
for p in $PHASES; do
  printf '%-10s' "$p"
  for v in $VARIANTS; do
    c="${R[$v-$p]} (${R[$v-$p-max]:--})"
    [ "${R[$v-$p-n]}" = "$RUNS" ] || c="$c n=${R[$v-$p-n]}"
    printf '%22s' "$c"
  done
  echo
done
echo
echo "phase splits (median of each phase minus the previous median):"
for v in $VARIANTS; do
  prev=0 line=""
  for p in $SPLIT; do
    x=${R[$v-$p]}
    if [ "$x" = - ]; then line="$line $p=?"; continue; fi
    line="$line $p=+$((x - prev))"
    prev=$x
  done
  echo "  $v:$line ms"
done
if [[ " $VARIANTS " == *" tracker "* && " $VARIANTS " == *" dht "* ]]; then
  awk -v a="${R[dht-first]}" -v b="${R[tracker-first]}" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "dht / tracker time to first byte: %.2f\n", a/b }'
fi
