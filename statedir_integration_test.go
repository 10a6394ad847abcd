//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobodyIDs are the uid and gid of nobody: the other user of these tests.
func nobodyIDs(t *testing.T) (int, int) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		t.Fatalf("nobody: uid %q, gid %q", u.Uid, u.Gid)
	}
	return uid, gid
}

// plantPKI makes in dir, as another user would with the binary they can
// run too, a CA and a server certificate for localhost: theirs, so that
// a server trusting them would take their client certificates (admin
// ones included).
func plantPKI(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	for _, args := range [][]string{
		{"certs", "ca", "--out", dir},
		{"certs", "server", "--ca-dir", dir, "--out", dir, "--name", "localhost", "--ip", "127.0.0.1"},
		{"certs", "client", "--ca-dir", dir, "--out", dir, "--user", "admin", "--role", "admin"},
	} {
		if out, err := exec.Command(binary(t), args...).CombinedOutput(); err != nil {
			t.Fatalf("jobworker %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	err := filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// serveOnce runs `jobworker serve` with args until it exits, or until it
// serves (it prints its exports), when it is stopped: served says so.
func serveOnce(t *testing.T, args ...string) (code int, stderr string, served bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), append([]string{"serve"}, args...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "export JOBWORKER_SERVER=") && !served {
			served = true
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	io.Copy(io.Discard, out)
	cmd.Wait()
	return cmd.ProcessState.ExitCode(), errb.String(), served
}

// names lists a directory's entries, or nil when it cannot be read.
func names(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var ns []string
	for _, e := range ents {
		ns = append(ns, e.Name())
	}
	return ns
}

// TestE2EStateDirRefused: `serve --dev` refuses, with exit 1 and a line
// saying why and what to do, a state directory that is a symbolic link, is
// not root's or may be written by group or others, and a dev/ (or a file
// of it the server would trust) of the same kinds. Among them is the
// attack on a quick start under /tmp: another user makes the directory
// first, with a PKI of theirs in it. Nothing is made in, or chmod'ed
// through, a link's target or a state directory refused (one that passes
// gets only the server's lock before dev/ is refused).
func TestE2EStateDirRefused(t *testing.T) {
	uid, gid := nobodyIDs(t)
	mkdir := func(t *testing.T, dir string, mode os.FileMode) {
		t.Helper()
		if err := os.Mkdir(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	// rootPKI is a state directory of root's with a dev PKI the server
	// made, which tamper then changes.
	rootPKI := func(t *testing.T, state string) string {
		t.Helper()
		mkdir(t, state, 0o700)
		dev := filepath.Join(state, "dev")
		made, err := ensureDevPKI(dev)
		if err != nil || !made {
			t.Fatalf("ensureDevPKI(%s) = %v, %v", dev, made, err)
		}
		return dev
	}
	tests := []struct {
		name string
		// make makes the state directory and returns the message wanted,
		// and a directory whose mode and entries must not change (a
		// link's target), if any.
		make func(t *testing.T, base, state string) (msg, target string)
	}{
		{"a symlink to a directory of root's", func(t *testing.T, base, state string) (string, string) {
			etc := filepath.Join(base, "etc")
			mkdir(t, etc, 0o755)
			if err := os.WriteFile(filepath.Join(etc, "passwd"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(etc, state); err != nil {
				t.Fatal(err)
			}
			return "state directory " + state + " is a symbolic link", etc
		}},
		{"a symlink to nothing", func(t *testing.T, base, state string) (string, string) {
			if err := os.Symlink(filepath.Join(base, "absent"), state); err != nil {
				t.Fatal(err)
			}
			return "state directory " + state + " is a symbolic link", ""
		}},
		{"made by another user first, with their PKI", func(t *testing.T, base, state string) (string, string) {
			mkdir(t, state, 0o700)
			plantPKI(t, filepath.Join(state, "dev"), uid, gid)
			if err := os.Chown(state, uid, gid); err != nil {
				t.Fatal(err)
			}
			return "state directory " + state + " is not owned by root", ""
		}},
		{"0770", func(t *testing.T, base, state string) (string, string) {
			mkdir(t, state, 0o770)
			return "state directory " + state + " is writable by group or others", ""
		}},
		{"0707", func(t *testing.T, base, state string) (string, string) {
			mkdir(t, state, 0o707)
			return "state directory " + state + " is writable by group or others", ""
		}},
		{"dev/ a symlink to another user's PKI", func(t *testing.T, base, state string) (string, string) {
			mkdir(t, state, 0o700)
			theirs := filepath.Join(base, "theirs")
			mkdir(t, theirs, 0o755)
			plantPKI(t, theirs, uid, gid)
			dev := filepath.Join(state, "dev")
			if err := os.Symlink(theirs, dev); err != nil {
				t.Fatal(err)
			}
			return "development PKI directory " + dev + " is a symbolic link", theirs
		}},
		{"dev/ another user's", func(t *testing.T, base, state string) (string, string) {
			mkdir(t, state, 0o700)
			dev := filepath.Join(state, "dev")
			mkdir(t, dev, 0o700)
			plantPKI(t, dev, uid, gid)
			return "development PKI directory " + dev + " is not owned by root", ""
		}},
		{"dev/ 0777", func(t *testing.T, base, state string) (string, string) {
			dev := rootPKI(t, state)
			if err := os.Chmod(dev, 0o777); err != nil {
				t.Fatal(err)
			}
			return "development PKI directory " + dev + " is writable by group or others", ""
		}},
		{"dev/ca.crt another user's", func(t *testing.T, base, state string) (string, string) {
			ca := filepath.Join(rootPKI(t, state), "ca.crt")
			if err := os.Chown(ca, uid, gid); err != nil {
				t.Fatal(err)
			}
			return "development PKI file " + ca + " is not owned by root", ""
		}},
		{"dev/ca.crt a symlink", func(t *testing.T, base, state string) (string, string) {
			ca := filepath.Join(rootPKI(t, state), "ca.crt")
			theirs := filepath.Join(base, "theirs")
			mkdir(t, theirs, 0o755)
			plantPKI(t, theirs, uid, gid)
			if err := os.Remove(ca); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(theirs, "ca.crt"), ca); err != nil {
				t.Fatal(err)
			}
			return "development PKI file " + ca + " is a symbolic link", theirs
		}},
		{"dev/server.key 0666", func(t *testing.T, base, state string) (string, string) {
			key := filepath.Join(rootPKI(t, state), "server.key")
			if err := os.Chmod(key, 0o666); err != nil {
				t.Fatal(err)
			}
			return "development PKI file " + key + " is writable by group or others", ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			state := filepath.Join(base, "state")
			msg, target := tt.make(t, base, state)
			var before os.FileInfo
			var beforeNames []string
			if target != "" {
				var err error
				if before, err = os.Stat(target); err != nil {
					t.Fatal(err)
				}
				beforeNames = names(target)
			}
			stateNames := names(state)
			code, stderr, served := serveOnce(t, "--dev", "--state-dir", state, "--listen", "127.0.0.1:0")
			if served || code != exitError || !strings.Contains(stderr, msg) {
				t.Errorf("serve --dev --state-dir %s: served %v, exit %d, stderr:\n%s\nwant refused: exit 1, %q", state, served, code, stderr, msg)
			}
			if strings.Count(stderr, "\n") != 1 {
				t.Errorf("the refusal is %q, want one line", stderr)
			}
			now := names(state)
			if strings.HasPrefix(msg, "development PKI") {
				// The state directory passed: the server locks it
				// before it looks at dev/.
				now = slices.DeleteFunc(now, func(n string) bool { return n == "server.lock" })
			}
			if !slices.Equal(now, stateNames) {
				t.Errorf("the state directory held %v, now %v: the server made something there", stateNames, now)
			}
			if target != "" {
				after, err := os.Stat(target)
				if err != nil {
					t.Fatal(err)
				}
				if after.Mode() != before.Mode() {
					t.Errorf("the link's target %s: mode %v, was %v: chmod'ed through the link", target, after.Mode(), before.Mode())
				}
				if now := names(target); !slices.Equal(now, beforeNames) {
					t.Errorf("the link's target %s held %v, now %v", target, beforeNames, now)
				}
			}
			if _, err := os.Stat(filepath.Join(base, "absent")); err == nil {
				t.Errorf("the server made the directory a dangling link points to")
			}
		})
	}
}
