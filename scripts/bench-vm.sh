# Sourced by the benchmark scripts (bash). Keeps a virtual machine's free memory from skewing
# comparisons.
#
# Under a hypervisor with free page reporting (virtio-balloon; this project's machines run
# Firecracker/PVM with page_reporting), memory the guest frees is handed back to the host soon
# after, and the next process to touch it pays host page faults: about 1.3 s per GiB here, which
# is more than a whole 1 GiB download over loopback. Every run of a benchmark frees the page cache
# of the run before, so whichever of two compared runs allocates next looks up to twice as slow,
# by luck. vm_hold_memory makes the guest keep freed pages for the benchmark: it raises
# page_reporting.page_reporting_order above the largest free block (11: nothing is reported),
# and, in case that is refused, min_free_ms and max_waiting_mib (how much freed memory may wait
# unreported, 1 GiB by default: less than one run of bench-mount frees); then it touches
# BENCH_WARM_GIB GiB (default 6) once, so that every run finds warm pages. vm_release_memory
# restores the settings and says how much memory was reported to the host meanwhile (each GiB
# of it costs a later run about a second). Both do nothing without root or
# without page reporting, and BENCH_VM_AS_IS=1 leaves the machine as it is.

VM_REPORT_PARAM=/sys/module/page_reporting/parameters/min_free_ms
VM_WAITING_PARAM=/sys/module/page_reporting/parameters/max_waiting_mib
VM_ORDER_PARAM=/sys/module/page_reporting/parameters/page_reporting_order
VM_REPORTED_PARAM=/sys/module/page_reporting/parameters/reported_kib
VM_REPORT_SAVED=""
VM_WAITING_SAVED=""
VM_ORDER_SAVED=""
VM_REPORTED_START=""

vm_hold_memory() {
  [ "${BENCH_VM_AS_IS:-0}" = 1 ] && { echo "bench: BENCH_VM_AS_IS=1: free page reporting left as it is"; return 0; }
  [ -w "$VM_REPORT_PARAM" ] || return 0
  [ -n "${GOTFS_BENCH_VM_HELD:-}" ] && return 0 # a calling script holds it already
  VM_REPORT_SAVED=$(cat "$VM_REPORT_PARAM")
  local v
  for v in 600000 300000 120000 60000; do
    if echo "$v" >"$VM_REPORT_PARAM" 2>/dev/null; then break; fi
  done
  if [ -w "$VM_ORDER_PARAM" ]; then
    VM_ORDER_SAVED=$(cat "$VM_ORDER_PARAM")
    echo 11 >"$VM_ORDER_PARAM" 2>/dev/null || VM_ORDER_SAVED=""
  fi
  if [ -w "$VM_WAITING_PARAM" ]; then
    VM_WAITING_SAVED=$(cat "$VM_WAITING_PARAM")
    echo 65536 >"$VM_WAITING_PARAM" 2>/dev/null || VM_WAITING_SAVED=""
  fi
  export GOTFS_BENCH_VM_HELD=1
  local gib=${BENCH_WARM_GIB:-6}
  echo "bench: free page reporting: freed pages now stay in the guest for $(($(cat "$VM_REPORT_PARAM") / 1000)) s (was ${VM_REPORT_SAVED} ms), up to $(cat "$VM_WAITING_PARAM" 2>/dev/null || echo ?) MiB of them (was ${VM_WAITING_SAVED:-?}), only blocks of order $(cat "$VM_ORDER_PARAM" 2>/dev/null || echo ?) reported (was ${VM_ORDER_SAVED:-?}); touching ${gib} GiB once so every run finds warm memory"
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
  VM_REPORTED_START=$(cat "$VM_REPORTED_PARAM" 2>/dev/null || true)
}

vm_release_memory() {
  if [ -n "$VM_REPORTED_START" ] && [ -r "$VM_REPORTED_PARAM" ]; then
    echo "bench: memory reported to the host during the run: $(awk -v a="$VM_REPORTED_START" -v b="$(cat "$VM_REPORTED_PARAM")" 'BEGIN { printf "%.1f", (b-a)/1048576 }') GiB"
    VM_REPORTED_START=""
  fi
  if [ -n "$VM_WAITING_SAVED" ]; then
    echo "$VM_WAITING_SAVED" >"$VM_WAITING_PARAM" 2>/dev/null || true
    VM_WAITING_SAVED=""
  fi
  if [ -n "$VM_ORDER_SAVED" ]; then
    echo "$VM_ORDER_SAVED" >"$VM_ORDER_PARAM" 2>/dev/null || true
    VM_ORDER_SAVED=""
  fi
  if [ -n "$VM_REPORT_SAVED" ]; then
    echo "$VM_REPORT_SAVED" >"$VM_REPORT_PARAM" 2>/dev/null || true
    VM_REPORT_SAVED=""
  fi
}
