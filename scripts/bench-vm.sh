# Sourced by the benchmark scripts (bash). Keeps a virtual machine's free memory from skewing
# comparisons.
#
# Under a hypervisor with free page reporting (virtio-balloon; this project's machines run
# Firecracker/PVM with page_reporting), memory the guest frees is handed back to the host soon
# after, and the next process to touch it pays host page faults: about 1.3 s per GiB here, which
# is more than a whole 1 GiB download over loopback. Every run of a benchmark frees the page cache
# of the run before, so whichever of two compared runs allocates next looks up to twice as slow,
# by luck. vm_hold_memory makes the guest keep freed pages for the benchmark
# (page_reporting.min_free_ms) and touches BENCH_WARM_GIB GiB (default 6) once, so that every run
# finds warm pages; vm_release_memory restores the setting. Both do nothing without root or
# without page reporting, and BENCH_VM_AS_IS=1 leaves the machine as it is.

VM_REPORT_PARAM=/sys/module/page_reporting/parameters/min_free_ms
VM_REPORT_SAVED=""

vm_hold_memory() {
  [ "${BENCH_VM_AS_IS:-0}" = 1 ] && { echo "bench: BENCH_VM_AS_IS=1: free page reporting left as it is"; return 0; }
  [ -w "$VM_REPORT_PARAM" ] || return 0
  [ -n "${GOTFS_BENCH_VM_HELD:-}" ] && return 0 # a calling script holds it already
  VM_REPORT_SAVED=$(cat "$VM_REPORT_PARAM")
  local v
  for v in 600000 300000 120000 60000; do
    if echo "$v" >"$VM_REPORT_PARAM" 2>/dev/null; then break; fi
  done
  export GOTFS_BENCH_VM_HELD=1
  local gib=${BENCH_WARM_GIB:-6}
  echo "bench: free page reporting: freed pages now stay in the guest for $(($(cat "$VM_REPORT_PARAM") / 1000)) s (was ${VM_REPORT_SAVED} ms); touching ${gib} GiB once so every run finds warm memory"
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
}

vm_release_memory() {
  if [ -n "$VM_REPORT_SAVED" ]; then
    echo "$VM_REPORT_SAVED" >"$VM_REPORT_PARAM" 2>/dev/null || true
    VM_REPORT_SAVED=""
  fi
}
