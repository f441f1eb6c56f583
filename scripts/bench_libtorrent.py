#!/usr/bin/python3
"""Download one torrent with libtorrent-rasterbar (Debian's python3-libtorrent) and exit, or seed it.

Usage: bench_libtorrent.py [OPTIONS] TORRENT SAVE_DIR BIND_IP [TIMEOUT_SECONDS]
       bench_libtorrent.py [OPTIONS] --seed TORRENT DATA_DIR BIND_IP PORT

The benchmark's libtorrent leecher: no DHT, LSD, UPnP or NAT-PMP, every socket bound to
BIND_IP (so a loopback tracker sees that address), peers from the torrent's tracker (and
--peer). Exits 0 once every piece is verified, 1 on error or timeout.

With --seed, a seeder of the files in DATA_DIR (checked first) on BIND_IP:PORT, announced to
the torrent's tracker once the check is done, until it is killed.

Options (before the other arguments):
  --transport tcp|utp   the only transport used, both ways (default tcp)
  --peer IP:PORT        connect to this peer too (repeatable; the leecher only)
"""
import sys
import time

import libtorrent as lt


def settings(ip, port, transport):
    utp = transport == "utp"
    return {
        "listen_interfaces": "%s:%d" % (ip, port),
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": utp,
        "enable_outgoing_utp": utp,
        "enable_incoming_tcp": not utp,
        "enable_outgoing_tcp": not utp,
        "alert_mask": lt.alert.category_t.error_notification,
    }


def seed(torrent, data, ip, port, transport):
    ses = lt.session(settings(ip, port, transport))
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
    args, transport, peers = sys.argv[1:], "tcp", []
    while len(args) >= 2 and args[0] in ("--transport", "--peer"):
        if args[0] == "--transport":
            transport = args[1]
        else:
            host, _, port = args[1].rpartition(":")
            peers.append((host, int(port)))
        args = args[2:]
    if transport not in ("tcp", "utp"):
        sys.exit(__doc__)
    if len(args) == 5 and args[0] == "--seed":
        seed(args[1], args[2], args[3], int(args[4]), transport)
        return
    if len(args) < 3:
        sys.exit(__doc__)
    torrent, save, ip = args[0], args[1], args[2]
    timeout = float(args[3]) if len(args) > 3 else 600
    ses = lt.session(settings(ip, 0, transport))
    h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": save})
    for peer in peers:
        h.connect_peer(peer)
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
