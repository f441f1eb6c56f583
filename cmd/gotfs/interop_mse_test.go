package main

// Protocol encryption (MSE/PE) against real clients that refuse plaintext: transmission-daemon
// with "encryption": 2 (required) and aria2c with --bt-require-crypto=true, each way.

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gotfs/gotfs/internal/testenv"
)

// transmissionRequired are the settings.json entries that make transmission refuse plaintext
// peers, incoming and outgoing.
var transmissionRequired = map[string]any{"encryption": 2}

// aria2RequireCrypto makes aria2c accept and make only encrypted connections, with RC4 (not
// MSE's plaintext method).
var aria2RequireCrypto = []string{"--bt-require-crypto=true", "--bt-min-crypto-level=arc4"}

// wantRC4Peer checks that gotfs logged (at -vv) a peer connected over RC4.
func wantRC4Peer(t *testing.T, out string) {
	t.Helper()
	if !strings.Contains(out, "encryption=rc4") {
		t.Errorf("gotfs logged no peer connected with RC4; output:\n%s", out)
	}
}

// TestInteropEncryptedDownloadFromTransmission: gotfs, with the default --encryption prefer,
// downloads from a transmission seeder that requires encryption.
func TestInteropEncryptedDownloadFromTransmission(t *testing.T) {
	t.Parallel()
	testenv.RequireBinary(t, "transmission-remote")
	daemon := testenv.RequireBinary(t, "transmission-daemon")
	bin := interopGotfs(t)
	ot := testenv.StartOpentracker(t)
	data := t.TempDir()
	src := filepath.Join(data, "enc.bin")
	interopWrite(t, data, interopLayout{"enc.bin": 2<<20 + 12_345}, 21)
	torrent, hash := interopCreate(t, bin, src, ot.UDPAnnounceURL(), "64KiB")
	ot.Allow(t, hash)

	tr := startTransmissionWith(t, daemon, "127.0.0.16", transmissionRequired)
	tr.add(t, torrent, data)
	tr.waitPercent(t, 100, 20*time.Second)
	tr.waitAnnounced(t, 20*time.Second)
	wantRC4Peer(t, interopGotfsDownload(t, bin, torrent, src, "127.0.0.45", "-v"))
}

// TestInteropTransmissionDownloadsEncryptedFromGotfs: a transmission that requires encryption
// downloads from `gotfs seed --encryption require`. Transmission never dials 127.0.0.0/8, so
// gotfs dials it (found through the tracker), as in TestInteropTransmissionDownloadsFromGotfs.
func TestInteropTransmissionDownloadsEncryptedFromGotfs(t *testing.T) {
	t.Parallel()
	testenv.RequireBinary(t, "transmission-remote")
	daemon := testenv.RequireBinary(t, "transmission-daemon")
	bin := interopGotfs(t)
	ot := testenv.StartOpentracker(t)
	data := t.TempDir()
	src := filepath.Join(data, "Enc Album")
	interopWrite(t, src, oddLayout, 22)
	torrent, hash := interopCreate(t, bin, src, ot.UDPAnnounceURL(), "32KiB")
	ot.Allow(t, hash)

	out := t.TempDir()
	tr := startTransmissionWith(t, daemon, "127.0.0.17", transmissionRequired)
	tr.add(t, torrent, out)
	tr.waitAnnounced(t, 20*time.Second)
	seeder := interopGotfsSeed(t, bin, torrent, src, "127.0.0.46", "--encryption", "require", "-v")
	tr.waitPercent(t, 100, 60*time.Second)
	tr.waitInfo(t, "-i", 10*time.Second, func(out string) bool { return strings.Contains(out, "Date finished:") })
	interopCompare(t, src, filepath.Join(out, filepath.Base(src)), true)
	wantRC4Peer(t, seeder.out.String())
}

// TestInteropEncryptedDownloadFromAria2: gotfs, with the default --encryption prefer,
// downloads from an aria2c seeder that requires encryption.
func TestInteropEncryptedDownloadFromAria2(t *testing.T) {
	t.Parallel()
	aria := testenv.RequireBinary(t, "aria2c")
	bin := interopGotfs(t)
	ot := testenv.StartOpentracker(t)
	data := t.TempDir()
	src := filepath.Join(data, "Enc Odd Album")
	interopWrite(t, src, oddLayout, 23)
	torrent, hash := interopCreate(t, bin, src, ot.HTTPAnnounceURL(), "32KiB")
	ot.Allow(t, hash)

	seeder := interopStart(t, data, aria, append(append(aria2Args("127.0.0.18", interopPort(t, "127.0.0.18")), aria2RequireCrypto...),
		"-V", "--seed-ratio=0.0", "-d", data, torrent)...)
	interopWaitOutput(t, seeder, "Verification finished successfully", 20*time.Second)
	wantRC4Peer(t, interopGotfsDownload(t, bin, torrent, src, "127.0.0.47", "-v"))
}

// TestInteropAria2DownloadsEncryptedFromGotfs: an aria2c that requires encryption downloads
// from `gotfs seed --encryption require`.
func TestInteropAria2DownloadsEncryptedFromGotfs(t *testing.T) {
	t.Parallel()
	aria := testenv.RequireBinary(t, "aria2c")
	bin := interopGotfs(t)
	ot := testenv.StartOpentracker(t)
	data := t.TempDir()
	src := filepath.Join(data, "enc2.bin")
	interopWrite(t, data, interopLayout{"enc2.bin": 1<<20 + 999}, 24)
	torrent, hash := interopCreate(t, bin, src, ot.HTTPAnnounceURL(), "32KiB")
	ot.Allow(t, hash)
	seeder := interopGotfsSeed(t, bin, torrent, src, "127.0.0.48", "--encryption", "require", "-v")

	out := t.TempDir()
	leecher := interopStart(t, out, aria, append(append(aria2Args("127.0.0.19", interopPort(t, "127.0.0.19")), aria2RequireCrypto...),
		"--seed-time=0", "-d", out, torrent)...)
	if err := leecher.wait(t, 60*time.Second); err != nil {
		t.Fatalf("aria2c: %v\n%s", err, leecher.out.String())
	}
	interopSame(t, src, filepath.Join(out, filepath.Base(src)))
	wantRC4Peer(t, seeder.out.String())
}
