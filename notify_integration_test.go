//go:build integration

package main

import (
	"net"
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
// when it shuts down.
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
	s.stop()
	if got := next(); got != "STOPPING=1\n" {
		t.Errorf("at shutdown %q, want STOPPING=1", got)
	}
}
