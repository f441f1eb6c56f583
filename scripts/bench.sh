#!/usr/bin/env bash
# Every gotfs benchmark, one section after another. `make bench` builds bin/gotfs and installs
# the dependencies first. The sections share BENCH_DIR (and its 1 GiB data file).
# Add a section: one line `section NAME scripts/bench-NAME.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-vm.sh
export GOTFS=${GOTFS:-$PWD/bin/gotfs}
OWN_DIR=0
if [ -z "${BENCH_DIR:-}" ]; then export BENCH_DIR; BENCH_DIR=$(mktemp -d /tmp/gotfs-bench.XXXXXX); OWN_DIR=1; fi
trap 'vm_release_memory; [ "$OWN_DIR" = 1 ] && rm -rf "$BENCH_DIR"' EXIT
# Once for every section (see scripts/bench-vm.sh).
vm_hold_memory
failed=()
section() { # section NAME SCRIPT
  echo "=== $1"
  if ! "$2"; then failed+=("$1"); fi
  echo
}

section create scripts/bench-create.sh
section download scripts/bench-download.sh
section mount scripts/bench-mount.sh
section magnet scripts/bench-magnet.sh
section http scripts/bench-http.sh
section webseed scripts/bench-webseed.sh
section wan scripts/bench-wan.sh
section mse scripts/bench-mse.sh
section utp scripts/bench-utp.sh

if ((${#failed[@]})); then echo "failed sections: ${failed[*]}" >&2; exit 1; fi
