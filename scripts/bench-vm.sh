# Sourced by the benchmark scripts (bash). Keeps a virtual machine's free memory from skewing
# comparisons.
#
# Under a hypervisor with free page reporting (virtio-balloon; this project's machines run
# Firecracker/PVM with page_reporting), memory the guest frees is handed back to the host soon
# after, and the next process to touch it pays host page faults: about a second per GiB here,
# which is half a 1 GiB download over loopback. Every run of a benchmark frees the page cache of
# the run before, so whichever of two compared runs allocates next looks slower, by luck.
# vm_hold_memory stops the reporting for the benchmark: page_reporting_order 11 (above the
# largest free block: nothing is reported) and, should that be refused, min_free_ms (how long a
# freed page waits) and max_waiting_mib (how much may wait; 1 GiB by default, less than one run
# of bench-mount frees). Then it touches BENCH_WARM_GIB GiB (default 6) once, so that every run
# finds warm pages. vm_release_memory restores the settings and says how much memory was
# reported to the host meanwhile. Both do nothing without root or without page reporting, and
# BENCH_VM_AS_IS=1 leaves the machine as it is.

VM_PARAMS=/sys/module/page_reporting/parameters
VM_SAVED=()          # "NAME=VALUE" of each setting changed, to restore
VM_REPORTED_START="" # reported_kib when the benchmark started

# vm_set NAME VALUE...: sets parameter NAME to the first VALUE the kernel accepts and remembers
# the old value; says nothing when the parameter is missing or every value is refused.
vm_set() {
  local name=$1 p=$VM_PARAMS/$1 old v
  shift
  [ -w "$p" ] || return 0
  old=$(cat "$p")
  for v in "$@"; do
    if echo "$v" >"$p" 2>/dev/null; then
      VM_SAVED+=("$name=$old")
      return 0
    fi
  done
}

vm_hold_memory() {
  [ "${BENCH_VM_AS_IS:-0}" = 1 ] && { echo "bench: BENCH_VM_AS_IS=1: free page reporting left as it is"; return 0; }
  [ -d "$VM_PARAMS" ] && [ -w "$VM_PARAMS/page_reporting_order" ] || return 0
  [ -n "${GOTFS_BENCH_VM_HELD:-}" ] && return 0 # a calling script holds it already
  export GOTFS_BENCH_VM_HELD=1
  vm_set page_reporting_order 11
  vm_set min_free_ms 600000 300000 120000 60000
  vm_set max_waiting_mib 65536
  local gib=${BENCH_WARM_GIB:-6} s
  s=${VM_SAVED[*]}
  echo "bench: free page reporting held for the run (was ${s:-unchanged}); touching ${gib} GiB once so every run finds warm memory"
  /usr/bin/python3 - "$gib" <<'PY'
import mmap, sys, time
t0 = time.time()
maps = []
for _ in range(int(sys.argv[1])):
    m = mmap.mmap(-1, 1 << 30)
    for off in range(0, 1 << 30, 4096):
        m[off] = 1
    maps.append(m)
for m in maps:
    m.close()
print("bench: warmed %s GiB in %.1f s" % (sys.argv[1], time.time() - t0))
PY
  VM_REPORTED_START=$(cat "$VM_PARAMS/reported_kib" 2>/dev/null || true)
}

vm_release_memory() {
  if [ -n "$VM_REPORTED_START" ] && [ -r "$VM_PARAMS/reported_kib" ]; then
    echo "bench: memory reported to the host during the run: $(awk -v a="$VM_REPORTED_START" -v b="$(cat "$VM_PARAMS/reported_kib")" 'BEGIN { printf "%.1f", (b-a)/1048576 }') GiB"
    VM_REPORTED_START=""
  fi
  local kv
  for kv in ${VM_SAVED[@]+"${VM_SAVED[@]}"}; do
    echo "${kv#*=}" >"$VM_PARAMS/${kv%%=*}" 2>/dev/null || true
  done
  VM_SAVED=()
}
