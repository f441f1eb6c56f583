#!/usr/bin/python3
"""Small timing helpers for scripts/bench-mount.sh and scripts/bench-magnet.sh (stdlib only).

  bench_fuse.py pread FILE OFFSET LENGTH [REFERENCE]
      open FILE, then time one pread(LENGTH at OFFSET) from the call to its return; print the
      milliseconds (3 decimals). With REFERENCE, the bytes must equal REFERENCE's at OFFSET.
  bench_fuse.py offsets N SIZE ALIGN SEED
      N distinct random offsets in [0, SIZE-ALIGN], multiples of ALIGN, one per line.
  bench_fuse.py waitfile PATH TIMEOUT_S
      poll (every 2 ms) until PATH exists; print the epoch seconds when it did; exit 1 on timeout.
  bench_fuse.py waitread FILE OFFSET LENGTH TIMEOUT_S
      poll (every 2 ms) until FILE exists, then open it and pread(LENGTH at OFFSET); print the
      epoch seconds when FILE appeared, when the read was called and when it returned.
  bench_fuse.py stamp [FIFO READY]
      copy stdin (or, given FIFO and READY, the named pipe FIFO, opened after creating the file
      READY so that the caller can start the writer once the interpreter is up) to stdout, each
      line prefixed with the epoch seconds it arrived ("%.3f ").
"""
import os
import random
import sys
import time


def pread(path, off, n, ref=None):
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        b = os.pread(fd, n, off)
        t1 = time.perf_counter()
    finally:
        os.close(fd)
    if len(b) != n:
        sys.exit("short read: %d of %d bytes at %d" % (len(b), n, off))
    if ref:
        with open(ref, "rb") as f:
            f.seek(off)
            if f.read(n) != b:
                sys.exit("read at %d differs from the reference" % off)
    print("%.3f" % ((t1 - t0) * 1000))


def offsets(n, size, align, seed):
    rnd = random.Random(seed)
    slots = (size - align) // align + 1
    for s in rnd.sample(range(slots), min(n, slots)):
        print(s * align)


def waitfile(path, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            print("%.3f" % time.time())
            return
        time.sleep(0.002)
    sys.exit(1)


def waitread(path, off, n, timeout):
    end = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > end:
            sys.exit("%s did not appear within %g s" % (path, timeout))
        time.sleep(0.002)
    seen = time.time()
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.time()
        b = os.pread(fd, n, off)
        t1 = time.time()
    finally:
        os.close(fd)
    if len(b) != n:
        sys.exit("short read: %d of %d bytes at %d" % (len(b), n, off))
    print("%.3f %.3f %.3f" % (seen, t0, t1))


def stamp(fifo=None, ready=None):
    out = sys.stdout.buffer
    src = sys.stdin.buffer
    if fifo:
        open(ready, "w").close()
        src = open(fifo, "rb", buffering=0)
    for line in iter(src.readline, b""):
        out.write(b"%.3f " % time.time() + line)
        out.flush()


def main():
    a = sys.argv[1:]
    if a[:1] == ["pread"] and len(a) in (4, 5):
        pread(a[1], int(a[2]), int(a[3]), a[4] if len(a) == 5 else None)
    elif a[:1] == ["offsets"] and len(a) == 5:
        offsets(int(a[1]), int(a[2]), int(a[3]), int(a[4]))
    elif a[:1] == ["waitfile"] and len(a) == 3:
        waitfile(a[1], float(a[2]))
    elif a[:1] == ["waitread"] and len(a) == 5:
        waitread(a[1], int(a[2]), int(a[3]), float(a[4]))
    elif a[:1] == ["stamp"] and len(a) in (1, 3):
        stamp(*a[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
