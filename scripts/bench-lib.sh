# Helpers the benchmark scripts share; source it after `cd` to the repository.
. scripts/bench-vm.sh
# free_port IP: a port free on IP for TCP and for UDP (gotfs listens on both: TCP and uTP).
free_port() {
  python3 -c 'import socket,sys
while True:
    t = socket.socket(); t.bind((sys.argv[1], 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind((sys.argv[1], p)); print(p); break
    except OSError: pass
    finally: u.close(); t.close()' "$1"
}
now() { date +%s.%N; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { print b-a }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
median() { sort -g | awk '{a[NR]=$1} END { if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f", (a[NR/2]+a[NR/2+1])/2 }'; }
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { if (s+0 > 0) printf "%.0f\n", b/1e6/s; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2f", a/b; else print "-" }'; }

# bench_workdir NAME: W=$BENCH_DIR/NAME, emptied (BENCH_DIR is a new temporary folder when
# unset), and the VM's free page reporting held (bench-vm.sh; a no-op under make bench, which
# holds it once); on exit every pid in PIDS is stopped, W (and a temporary BENCH_DIR) removed
# and the reporting restored.
bench_workdir() {
  OWN_DIR=0
  if [ -z "${BENCH_DIR:-}" ]; then BENCH_DIR=$(mktemp -d /tmp/gotfs-bench.XXXXXX); OWN_DIR=1; fi
  W=$BENCH_DIR/$1
  rm -rf "$W" && mkdir -p "$W"
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  vm_hold_memory
}
bench_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
  if [ "$OWN_DIR" = 1 ]; then rm -rf "$BENCH_DIR"; fi
  vm_release_memory
}

# bench_file NAME MIB: prints $BENCH_DIR/data/NAME, a file of MIB MiB of random bytes that the
# sections share (written when missing or of another size).
bench_file() {
  local f=$BENCH_DIR/data/$1
  mkdir -p "$(dirname "$f")"
  if [ ! -f "$f" ] || [ "$(stat -c %s "$f")" != $(($2 << 20)) ]; then
    echo "bench: writing $2 MiB of random data to $f" >&2
    head -c $(($2 << 20)) /dev/urandom >"$f"
  fi
  echo "$f"
}

# bench_data NAME MIB: DATA=$(bench_file NAME MIB).
bench_data() { DATA=$(bench_file "$1" "$2"); }
