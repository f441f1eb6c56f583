#!/usr/bin/env python3
"""Known answers for package mse, computed independently of the Go code.

Writes vectors.json next to this script: whole MSE handshakes (both directions, byte for
byte) given each side's random bytes, with the intermediate values (public keys, S, the
hashes, the RC4 keys and key streams). It uses hashlib, Python's integers for the modular
exponentiation and its own RC4, and follows the specification's text, not the Go code.

Each side consumes its random bytes in this order, as mse's Initiate and Receive do:
  initiator A: private key (20 bytes), len(PadA) (2 bytes, big-endian, mod 513), PadA,
               len(PadC) (2 bytes, mod 513; PadC itself is zeros)
  receiver  B: private key (20 bytes), len(PadB) (2 bytes, mod 513), PadB,
               len(PadD) (2 bytes, mod 513; PadD itself is zeros)

Run: python3 gen_vectors.py (the output is committed; rerunning it gives the same file).
"""
import hashlib
import json
import os

P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E"
    "3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000"
    "000000090563",
    16,
)
G = 2


def sha1(*parts):
    h = hashlib.sha1()
    for p in parts:
        h.update(p)
    return h.digest()


class RC4:
    def __init__(self, key, discard=0):
        s = list(range(256))
        j = 0
        for i in range(256):
            j = (j + s[i] + key[i % len(key)]) & 0xFF
            s[i], s[j] = s[j], s[i]
        self.s, self.i, self.j = s, 0, 0
        self.crypt(bytes(discard))

    def crypt(self, data):
        s, i, j = self.s, self.i, self.j
        out = bytearray()
        for b in data:
            i = (i + 1) & 0xFF
            j = (j + s[i]) & 0xFF
            s[i], s[j] = s[j], s[i]
            out.append(b ^ s[(s[i] + s[j]) & 0xFF])
        self.i, self.j = i, j
        return bytes(out)


class Rand:
    """Deterministic random bytes: SHA-1 of (label, counter), concatenated."""

    def __init__(self, label, n):
        out = b""
        c = 0
        while len(out) < n:
            out += sha1(label.encode(), c.to_bytes(4, "big"))
            c += 1
        self.data = out[:n]
        self.pos = 0

    def read(self, n):
        b = self.data[self.pos : self.pos + n]
        assert len(b) == n
        self.pos += n
        return b


def pad_len(r):
    return int.from_bytes(r.read(2), "big") % 513


def handshake(name, skey, provide, allowed, ia, payload_a, payload_b):
    ra, rb = Rand(name + "/A", 2048), Rand(name + "/B", 2048)
    # Step 1 (A).
    xa = int.from_bytes(ra.read(20), "big")
    ya = pow(G, xa, P).to_bytes(96, "big")
    pad_a = ra.read(pad_len(ra))
    a_sends = ya + pad_a
    # Step 2 (B).
    xb = int.from_bytes(rb.read(20), "big")
    yb = pow(G, xb, P).to_bytes(96, "big")
    pad_b = rb.read(pad_len(rb))
    b_sends = yb + pad_b
    s_a = pow(int.from_bytes(yb, "big"), xa, P).to_bytes(96, "big")
    s_b = pow(int.from_bytes(ya, "big"), xb, P).to_bytes(96, "big")
    assert s_a == s_b
    s = s_a
    key_a, key_b = sha1(b"keyA", s, skey), sha1(b"keyB", s, skey)
    enc_a, enc_b = RC4(key_a, 1024), RC4(key_b, 1024)
    # Step 3 (A).
    req1 = sha1(b"req1", s)
    req23 = bytes(x ^ y for x, y in zip(sha1(b"req2", skey), sha1(b"req3", s)))
    n_pad_c = pad_len(ra)
    plain3 = bytes(8) + provide.to_bytes(4, "big") + n_pad_c.to_bytes(2, "big") + bytes(n_pad_c)
    plain3 += len(ia).to_bytes(2, "big") + ia
    a_sends += req1 + req23 + enc_a.crypt(plain3)
    # Step 4 (B): plaintext preferred over RC4 when both are allowed and provided.
    common = provide & allowed
    select = 1 if common & 1 else 2
    n_pad_d = pad_len(rb)
    b_sends += enc_b.crypt(bytes(8) + select.to_bytes(4, "big") + n_pad_d.to_bytes(2, "big") + bytes(n_pad_d))
    # Payload (ENCRYPT2).
    if select == 2:
        b_sends += enc_b.crypt(payload_b)
        a_sends += enc_a.crypt(payload_a)
    else:
        b_sends += payload_b
        a_sends += payload_a
    return {
        "name": name,
        "rand_a": ra.data.hex(),
        "rand_b": rb.data.hex(),
        "skey": skey.hex(),
        "provide": provide,
        "allowed": allowed,
        "select": select,
        "ia": ia.hex(),
        "payload_a": payload_a.hex(),
        "payload_b": payload_b.hex(),
        "xa": "%x" % xa,
        "ya": ya.hex(),
        "yb": yb.hex(),
        "s": s.hex(),
        "req1": req1.hex(),
        "req2": sha1(b"req2", skey).hex(),
        "req2_xor_req3": req23.hex(),
        "key_a": key_a.hex(),
        "key_b": key_b.hex(),
        "len_pad_a": len(pad_a),
        "len_pad_b": len(pad_b),
        "len_pad_c": n_pad_c,
        "len_pad_d": n_pad_d,
        "a_sends": a_sends.hex(),
        "b_sends": b_sends.hex(),
    }


def bt_handshake(info_hash, peer_id):
    return bytes([19]) + b"BitTorrent protocol" + bytes(8) + info_hash + peer_id


def main():
    skey = sha1(b"gotfs mse test torrent")
    ia = bt_handshake(skey, b"-GT0001-mse-vectors1")
    out = {
        # RC4 with its first 1024 bytes discarded: the first 32 bytes of key stream.
        "rc4_discard": [
            {"key": k.hex(), "stream": RC4(k, 1024).crypt(bytes(32)).hex()}
            for k in (b"Key", sha1(b"keyA", bytes(96), skey), bytes(range(20)))
        ],
        "handshakes": [
            handshake("rc4", skey, 0x03, 0x02, ia, b"payload from A " * 5, b"payload from B " * 7),
            handshake("plaintext", skey, 0x03, 0x01, ia, b"plain A", b"plain B bytes"),
            handshake("rc4-only-no-ia", skey, 0x02, 0x03, b"", b"after the handshake", b"x"),
        ],
    }
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "vectors.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    # Fuzz seeds: the first transcript of each direction (the fuzz targets replay the other
    # side's random bytes of that handshake, so these go all the way), cut short, and junk.
    h = out["handshakes"][0]
    a, b = bytes.fromhex(h["a_sends"]), bytes.fromhex(h["b_sends"])
    seeds = {
        "FuzzReceive": {"transcript": a, "cut-after-key": a[:96], "cut-in-step3": a[: 96 + h["len_pad_a"] + 45],
                        "zero-key": bytes(96) + bytes(40), "plaintext-handshake": bt_handshake(skey, b"x" * 20)},
        "FuzzInitiate": {"transcript": b, "cut-after-key": b[:96], "no-vc": b[:96] + bytes(600),
                         "key-is-p": P.to_bytes(96, "big")},
    }
    for target, files in seeds.items():
        d = os.path.join(here, "fuzz", target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write('go test fuzz v1\n[]byte("' + "".join("\\x%02x" % c for c in data) + '")\n')


if __name__ == "__main__":
    main()
