#!/usr/bin/python3
"""Download one torrent with libtorrent-rasterbar (Debian's python3-libtorrent) and exit, or seed it.

Usage: bench_libtorrent.py TORRENT SAVE_DIR BIND_IP [TIMEOUT_SECONDS]
       bench_libtorrent.py --seed TORRENT DATA_DIR BIND_IP PORT

The benchmark's libtorrent leecher: no DHT, LSD, UPnP or NAT-PMP, every socket bound to
BIND_IP (so a loopback tracker sees that address), peers from the torrent's tracker only.
Exits 0 once every piece is verified, 1 on error or timeout.

With --seed, a seeder of the files in DATA_DIR (checked first) on BIND_IP:PORT, announced to
the torrent's tracker once the check is done, until it is killed.
"""
import sys
import time

import libtorrent as lt


def settings(ip, port):
    return {
        "listen_interfaces": "%s:%d" % (ip, port),
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "alert_mask": lt.alert.category_t.error_notification,
    }


def seed(torrent, data, ip, port):
    ses = lt.session(settings(ip, port))
    # Not seed_mode: that hashes each piece when it is first requested, which would charge
    # the first leecher of a benchmark for it. The check runs before the first announce.
    h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": data})
    while not h.status().is_seeding:
        time.sleep(0.1)
    print("libtorrent: seeding on %s:%d" % (ip, port), flush=True)
    while True:
        for a in ses.pop_alerts():
            print("libtorrent:", a.message(), file=sys.stderr, flush=True)
        time.sleep(0.5)


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--seed":
        seed(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    torrent, save, ip = sys.argv[1], sys.argv[2], sys.argv[3]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 600
    ses = lt.session(settings(ip, 0))
    h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": save})
    deadline = time.monotonic() + timeout
    while True:
        s = h.status()
        if s.is_seeding or s.state == lt.torrent_status.seeding:
            break
        for a in ses.pop_alerts():
            print("libtorrent:", a.message(), file=sys.stderr)
        if time.monotonic() > deadline:
            print("libtorrent: timed out at %.1f%%" % (s.progress * 100), file=sys.stderr)
            sys.exit(1)
        time.sleep(0.05)
    h.flush_cache()
    ses.remove_torrent(h)
    print("libtorrent: done")


if __name__ == "__main__":
    main()
