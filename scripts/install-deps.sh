#!/usr/bin/env bash
# Installs the Debian packages gotfs's tests, demo and benchmarks use: real BitTorrent software to
# interoperate with, a web server for web seeds (nginx), and FUSE tools. Skips the install when
# everything is already there.
set -euo pipefail
need=()
for pair in opentracker:opentracker mktorrent:mktorrent aria2c:aria2 transmission-cli:transmission-cli \
  transmission-daemon:transmission-daemon ffmpeg:ffmpeg ffprobe:ffmpeg fusermount3:fuse3 nginx:nginx \
  curl:curl chromium:chromium mount.fuse3:fuse3 mount:mount umount:mount \
  runuser:util-linux unshare:util-linux sha256sum:coreutils nft:nftables miniupnpd:miniupnpd-nftables; do
  bin=${pair%%:*} pkg=${pair#*:}
  # nginx is in /usr/sbin, which a user's PATH may lack.
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
# miniupnpd (the port mapping tests' router) in its nftables build, Debian's default firewall
# backend; the iptables build would need iptables rules instead of the test's nftables ruleset.
# libtorrent's Python binding: the uTP interop tests (p2p/utp) and the benchmarks.
python3 -c 'import libtorrent' 2>/dev/null || /usr/bin/python3 -c 'import libtorrent' 2>/dev/null || need+=(python3-libtorrent)
if [ "${WITH_BENCH_DEPS:-0}" = 1 ]; then
  command -v btfs >/dev/null 2>&1 || need+=(btfs)
fi
if ((${#need[@]})); then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
