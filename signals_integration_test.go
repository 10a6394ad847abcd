//go:build integration

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/internal/testchild"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// What the server does on its signals, sent as an operator sends them.

// TestE2EReloadOnSIGHUP: SIGHUP makes the server load its client CA anew.
// A client of a CA added to the file gets in on a new connection after the
// signal and not before; a file that does not load is refused with a log
// line and the CA in use stays; the server serves on throughout.
func TestE2EReloadOnSIGHUP(t *testing.T) {
	state := t.TempDir()
	s := startDevServer(t, state)
	bin := binary(t)
	other := filepath.Join(t.TempDir(), "other-ca")
	carolDir := filepath.Join(t.TempDir(), "carol")
	for _, args := range [][]string{
		{"certs", "ca", "--out", other},
		{"certs", "client", "--ca-dir", other, "--out", carolDir, "--user", "carol", "--role", "user"},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("jobworker %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	clientCA := filepath.Join(state, "dev", "ca.crt")
	carol := func() result {
		t.Helper()
		cmd := exec.Command(bin, "list")
		cmd.Env = []string{"PATH=/bin", "JOBWORKER_SERVER=" + s.addr,
			"JOBWORKER_CA=" + clientCA,
			"JOBWORKER_CERT=" + filepath.Join(carolDir, "carol.crt"),
			"JOBWORKER_KEY=" + filepath.Join(carolDir, "carol.key")}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{out.String(), errb.String(), code}
	}
	hup := func(logged string) {
		t.Helper()
		before := strings.Count(s.serverLog(), logged)
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "the server logging "+logged, func() bool {
			return strings.Count(s.serverLog(), logged) > before
		})
	}

	if r := carol(); r.code != 1 {
		t.Fatalf("a client of another CA before the reload: exit %d, %q %q; want refused", r.code, r.out, r.err)
	}
	caFile := filepath.Join(state, "dev", "ca.crt")
	devCA, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := os.ReadFile(filepath.Join(other, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, append(devCA, otherCA...), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := carol(); r.code != 1 {
		t.Fatalf("a client of the added CA before SIGHUP: exit %d, %q %q; want refused (the file is read at the signal)", r.code, r.out, r.err)
	}
	hup("reloaded the server certificate, key and client CA")
	if r := carol(); r.code != 0 || !strings.HasPrefix(r.out, "ID") {
		t.Errorf("a client of the added CA after SIGHUP: exit %d, %q %q; want let in", r.code, r.out, r.err)
	}

	// The clients verify the server with the dev CA from here on: the
	// server's file is about to be broken.
	clientCA = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(clientCA, devCA, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup("reload on SIGHUP refused; the certificates in use stay")
	if r := carol(); r.code != 0 {
		t.Errorf("after a refused reload, a client of the CA in use: exit %d, %q %q; want let in", r.code, r.out, r.err)
	}
	if err := os.WriteFile(caFile, devCA, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.cli("user", "run", "--", "echo", "still serving"); r.out != "still serving\n" {
		t.Errorf("a job after the reloads: %q %q", r.out, r.err)
	}
}

// TestE2EGracefulShutdown: on SIGTERM or SIGINT the server accepts no new
// RPC, gives a running job its whole grace to handle SIGTERM, records it as
// stopped, ends the streams that follow it once its output ends, and exits
// 0; restarted, it has the job and every byte of its output.
func TestE2EGracefulShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			state := t.TempDir()
			s := startDevServer(t, state, "--stop-grace", "1m")
			g := newGate(t)
			id := s.detach("user", "sh", "-c", `trap 'echo got TERM; `+g.wait()+`; echo cleaned; exit 0' TERM; sh -c "echo ready; exec sleep 1000"`)

			follow := exec.Command(binary(t), "logs", "-f", id)
			follow.Env = s.cliEnv(s.addr, "user")
			var followErr bytes.Buffer
			follow.Stderr = &followErr
			out, err := follow.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := follow.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { follow.Process.Kill() })
			var got []byte
			readUntil := func(want string) {
				t.Helper()
				buf := make([]byte, 4096)
				for !bytes.Contains(got, []byte(want)) {
					n, err := out.Read(buf)
					got = append(got, buf[:n]...)
					if err != nil {
						t.Fatalf("the follower ended waiting for %q (got %q): %v; stderr %q", want, got, err, followErr.String())
					}
				}
			}
			readUntil("ready\n")
			admin := s.client("admin") // a connection open before the signal

			s.ended.Store(true)
			if err := s.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			readUntil("got TERM\n")
			// The job now waits in its handler; the server is shutting down.
			eventually(t, time.Minute, "a new connection refused", func() bool {
				return s.cli("admin", "status").code != 0
			})
			if r := s.cli("user", "run", "--", "true"); r.code != 125 {
				t.Errorf("run during the shutdown: exit %d, %q %q; want refused (125)", r.code, r.out, r.err)
			}
			if _, err := admin.GetServerStatus(context.Background(), &jobworkerv1.GetServerStatusRequest{}); status.Code(err) != codes.Unavailable {
				t.Errorf("a new call on a connection open before the signal: %v, want Unavailable", err)
			}
			g.open(t)

			select {
			case <-s.done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("the server did not exit within two minutes of the job's end; log:\n%s", s.serverLog())
			}
			if code := s.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("the server exited %d after %v, want 0; log:\n%s", code, sig, s.serverLog())
			}
			rest := make([]byte, 0, 64)
			buf := make([]byte, 4096)
			for {
				n, err := out.Read(buf)
				rest = append(rest, buf[:n]...)
				if err != nil {
					break
				}
			}
			got = append(got, rest...)
			// The sleep the shell waits on (it says ready) dies of the
			// SIGTERM to the job's process group, and the shell says so.
			const want = "ready\nTerminated\ngot TERM\ncleaned\n"
			if err := follow.Wait(); err != nil || string(got) != want {
				t.Errorf("the follower: %v, %q (stderr %q); want the whole output and exit 0", err, got, followErr.String())
			}

			s2 := startDevServer(t, state)
			j := s2.job(id)
			if j.GetState() != jobworkerv1.JobState_JOB_STATE_STOPPED || j.GetExitCode() != 0 {
				t.Errorf("the job after the restart: %v exit %d, want STOPPED after exiting 0 in its handler", j.GetState(), j.GetExitCode())
			}
			if r := s2.cli("user", "logs", id); r.out != want {
				t.Errorf("its output after the restart: %q %q", r.out, r.err)
			}
		})
	}
}

// TestE2ENoCgroup2Refused: without any cgroup2 mount the server refuses to
// start and says so. The server runs in a mount namespace of its own where
// /sys/fs/cgroup is unmounted; the test's own mounts are untouched.
func TestE2ENoCgroup2Refused(t *testing.T) {
	testchild.RequireCgroup2(t, "memory")
	const mount = "/sys/fs/cgroup"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `umount -l "$1" && exec "$2" serve --dev --state-dir "$3" --listen 127.0.0.1:0`,
		"sh", mount, binary(t), t.TempDir())
	// Go makes the new mount namespace's mounts private before the exec.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "no cgroup2 file system is mounted; jobworker needs cgroup v2") {
		t.Errorf("serve without cgroup2: %v, output:\n%s\nwant exit 1 saying there is no cgroup2 mount", err, out)
	}
	if _, err := os.Stat(filepath.Join(mount, "cgroup.controllers")); err != nil {
		t.Errorf("the test's own cgroup2 mount after the test: %v", err)
	}
}
