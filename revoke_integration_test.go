//go:build integration

package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRevokedClient: a server with --crl refuses a revoked certificate at
// the handshake; a certificate revoked while its `logs -f` is open has
// that stream ended at SIGHUP and is refused from then on; another
// client's stream goes on to the end of its job.
func TestRevokedClient(t *testing.T) {
	state := t.TempDir()
	first := startDevServer(t, state) // makes the development PKI
	first.stop()
	bin := binary(t)
	dev := filepath.Join(state, "dev")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("%q: %v: %s", args, err, out)
		}
	}
	carol := filepath.Join(state, "carol")
	run("certs", "client", "--ca-dir", dev, "--out", carol, "--user", "carol", "--role", "user")
	run("certs", "revoke", "--ca-dir", dev, filepath.Join(carol, "carol.crt"))
	crl := filepath.Join(dev, "ca.crl")
	s := startDevServer(t, state, "--crl", crl)

	// carol, revoked before the start, is refused at the handshake. (At
	// the server's IP address: for localhost the CLI's error may be that
	// of [::1], where nothing listens.)
	_, port, _ := strings.Cut(s.addr, ":")
	ip := "127.0.0.1:" + port
	env := []string{"PATH=/bin", "JOBWORKER_SERVER=" + ip, "JOBWORKER_CA=" + filepath.Join(dev, "ca.crt"),
		"JOBWORKER_CERT=" + filepath.Join(carol, "carol.crt"), "JOBWORKER_KEY=" + filepath.Join(carol, "carol.key")}
	cmd := exec.Command(bin, "list")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "refused the client certificate") {
		t.Errorf("list as revoked carol: %v, %s; want refused at the handshake", err, out)
	}

	// bob and dev-user follow jobs of their own.
	ticker := []string{"sh", "-c", "i=0; while [ $i -lt 600 ]; do echo tick $i; i=$((i+1)); sleep 0.05; done"}
	bobJob := s.detach("bob", ticker...)
	userJob := s.detach("user", ticker...)
	bob := s.follow("bob", bobJob, 10)
	user := s.follow("user", userJob, 10)
	run("certs", "revoke", "--ca-dir", dev, filepath.Join(state, "bob", "bob.crt"))
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the reload's log line", func() bool {
		return strings.Contains(s.serverLog(), "revoked_connections_closed=1")
	})
	_, code := bob.end(t, 30*time.Second)
	if code == 0 {
		t.Errorf("bob's logs -f exited 0 after his revocation, want a failure; stderr %s", bob.stderr())
	}
	if r := s.cliAt(ip, "bob", "list"); r.code == 0 || !strings.Contains(r.err, "refused the client certificate") {
		t.Errorf("list as bob after the revocation: exit %d, %s; want refused at the handshake", r.code, r.err)
	}
	out, code := user.end(t, 2*time.Minute)
	if code != 0 || !strings.HasSuffix(string(out), "tick 599\n") || strings.Count(string(out), "\n") != 600 {
		t.Errorf("dev-user's logs -f across bob's revocation: exit %d, %d lines; want 0 and all 600; stderr %s", code, strings.Count(string(out), "\n"), user.stderr())
	}
}
