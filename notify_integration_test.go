//go:build integration

package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotify: with $NOTIFY_SOCKET, as systemd starts a Type=notify
// unit, the server sends READY=1 once it serves, RELOADING=1 with
// MONOTONIC_USEC and then READY=1 around a SIGHUP reload, and STOPPING=1
// when it shuts down; a reload it refuses ends with READY=1 as well.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next := func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(time.Minute))
		b := make([]byte, 4096)
		n, err := c.Read(b)
		if err != nil {
			t.Fatalf("waiting for a notification: %v", err)
		}
		return string(b[:n])
	}
	t.Setenv("NOTIFY_SOCKET", sock)
	s := startDevServer(t, t.TempDir())
	if got := next(); got != "READY=1\n" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// It serves by then.
	s.runJob("user", 0, "--", "true")
	if err := syscall.Kill(s.pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	got := next()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("notification at SIGHUP %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	if _, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64); err != nil {
		t.Errorf("MONOTONIC_USEC: %v", err)
	}
	if got := next(); got != "READY=1\n" {
		t.Errorf("after the reload %q, want READY=1", got)
	}
	// A reload the server refuses (a client CA file that is not one) ends
	// with READY=1 too: it serves on with what it had, and systemd,
	// told of a reload, waits for READY=1 to end it.
	caFile := filepath.Join(s.state, "dev", "ca.crt")
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := next(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("notification at the second SIGHUP %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	if got := next(); got != "READY=1\n" {
		t.Errorf("after a refused reload %q, want READY=1", got)
	}
	eventually(t, time.Minute, "the server logging the refusal", func() bool {
		return strings.Contains(s.serverLog(), "reload on SIGHUP refused")
	})
	// (The CLI verifies the server with the same file.)
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	s.runJob("user", 0, "--", "true")
	s.stop()
	if got := next(); got != "STOPPING=1\n" {
		t.Errorf("at shutdown %q, want STOPPING=1", got)
	}
}
