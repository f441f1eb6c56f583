package main

// Protocol encryption (MSE/PE) against real clients that refuse plaintext: transmission-daemon
// with "encryption": 2 (required) and aria2c with --bt-require-crypto=true, each way. The
// scenarios are those of interop_test.go; gotfs runs at -vv and must log an RC4 peer.

import (
	"strings"
	"testing"
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
	wantRC4Peer(t, interopDownloadFromTransmission(t, 21, "127.0.0.16", "127.0.0.45", transmissionRequired, "-v"))
}

// TestInteropTransmissionDownloadsEncryptedFromGotfs: a transmission that requires encryption
// downloads from `gotfs seed --encryption require` (gotfs dials it: transmission never dials
// 127.0.0.0/8).
func TestInteropTransmissionDownloadsEncryptedFromGotfs(t *testing.T) {
	t.Parallel()
	seeder := interopTransmissionDownloadsFromGotfs(t, 22, "127.0.0.17", "127.0.0.46", transmissionRequired, "--encryption", "require", "-v")
	wantRC4Peer(t, seeder.out.String())
}

// TestInteropEncryptedDownloadFromAria2: gotfs, with the default --encryption prefer,
// downloads from an aria2c seeder that requires encryption.
func TestInteropEncryptedDownloadFromAria2(t *testing.T) {
	t.Parallel()
	wantRC4Peer(t, interopDownloadFromAria2(t, 23, "127.0.0.18", "127.0.0.47", aria2RequireCrypto, "-v"))
}

// TestInteropAria2DownloadsEncryptedFromGotfs: an aria2c that requires encryption downloads
// from `gotfs seed --encryption require`.
func TestInteropAria2DownloadsEncryptedFromGotfs(t *testing.T) {
	t.Parallel()
	seeder := interopAria2DownloadsFromGotfs(t, 24, "127.0.0.48", "127.0.0.19", aria2RequireCrypto, "--encryption", "require", "-v")
	wantRC4Peer(t, seeder.out.String())
}
