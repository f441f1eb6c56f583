#!/usr/bin/python3
"""A libtorrent peer that speaks uTP only (TCP disabled), for gotfs's uTP interop tests.

Usage:
  utp_peer.py seed TORRENT SAVE_DIR BIND_IP
      Seeds TORRENT from SAVE_DIR; prints "port N" once seeding, runs until stdin closes.
  utp_peer.py leech TORRENT SAVE_DIR BIND_IP PEER_IP PEER_PORT
      Connects to the peer (over uTP: TCP is off), prints "done" once every piece is
      verified, and exits 0; exits 1 after 30 s.
"""
import sys
import threading
import time

import libtorrent as lt


def session(ip):
    return lt.session({
        "listen_interfaces": ip + ":0",
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_tcp": False,
        "enable_incoming_tcp": False,
        "enable_outgoing_utp": True,
        "enable_incoming_utp": True,
        # gotfs speaks no MSE/PE yet: plain BitTorrent handshakes.
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.disabled),
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification,
    })


def log_alerts(ses):
    for a in ses.pop_alerts():
        print("libtorrent:", a.message(), file=sys.stderr)


def main():
    mode, torrent, save, ip = sys.argv[1:5]
    ses = session(ip)
    h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": save})
    deadline = time.monotonic() + 30
    if mode == "seed":
        while not h.status().is_seeding:
            log_alerts(ses)
            if time.monotonic() > deadline:
                sys.exit("libtorrent: never started seeding: %s" % h.status().state)
            time.sleep(0.05)
        print("port %d" % ses.listen_port(), flush=True)
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        while not done.wait(0.1):
            log_alerts(ses)
        return
    peer = (sys.argv[5], int(sys.argv[6]))
    while h.status().state in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data):
        time.sleep(0.05)
    h.connect_peer(peer)
    while not h.status().is_seeding:
        log_alerts(ses)
        if time.monotonic() > deadline:
            sys.exit("libtorrent: timed out at %.1f%%" % (h.status().progress * 100))
        time.sleep(0.05)
    print("done", flush=True)


if __name__ == "__main__":
    main()
