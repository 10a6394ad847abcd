//go:build !integration

package main

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jobworker/jobworker/internal/testchild"
	"github.com/jobworker/jobworker/job"
	"github.com/jobworker/jobworker/shim"
)

// nobodyUID is the uid of the user nobody, the owner these tests give a
// directory that root must not trust. They run as root (as hack/test runs
// them here and in CI): only root can give a file away.
func nobodyUID(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test makes files owned by another user and root-owned ones: run it as root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

// chmod sets a mode past the umask.
func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestPrepareStateDir: the state directory is used only when it is a real
// directory of root's that group and others cannot write, and is made
// 0700 when it is missing. Nothing is created or chmod'ed through a link.
func TestPrepareStateDir(t *testing.T) {
	nobody := nobodyUID(t)
	tests := []struct {
		name string
		// make makes the state directory at dir (nothing: missing) and
		// returns the directory a link points to, if any.
		make func(t *testing.T, dir string) (target string)
		want error // nil: accepted
	}{
		{"missing", nil, nil},
		{"missing with its parent", func(t *testing.T, dir string) string {
			// dir's parent is removed: MkdirAll makes both.
			if err := os.Remove(filepath.Dir(dir)); err != nil {
				t.Fatal(err)
			}
			return ""
		}, nil},
		{"0700", mkdirMode(0o700), nil},
		{"0755", mkdirMode(0o755), nil}, // readable is not writable
		{"0750", mkdirMode(0o750), nil},
		{"0711", mkdirMode(0o711), nil},
		{"0770", mkdirMode(0o770), errOthersWrite},
		{"0720", mkdirMode(0o720), errOthersWrite},
		{"0707", mkdirMode(0o707), errOthersWrite},
		{"0702", mkdirMode(0o702), errOthersWrite},
		{"1777 like /tmp", mkdirMode(0o1777), errOthersWrite},
		{"owned by nobody", func(t *testing.T, dir string) string {
			mkdirMode(0o700)(t, dir)
			if err := os.Chown(dir, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return ""
		}, errNotRootOwned},
		{"owned by root, group nobody", func(t *testing.T, dir string) string {
			mkdirMode(0o750)(t, dir)
			if err := os.Chown(dir, 0, nobody); err != nil {
				t.Fatal(err)
			}
			return ""
		}, nil},
		{"symlink to a directory", func(t *testing.T, dir string) string {
			target := filepath.Join(t.TempDir(), "etc")
			mkdirMode(0o755)(t, target)
			if err := os.Symlink(target, dir); err != nil {
				t.Fatal(err)
			}
			return target
		}, errSymlink},
		{"symlink to nothing", func(t *testing.T, dir string) string {
			target := filepath.Join(t.TempDir(), "absent")
			if err := os.Symlink(target, dir); err != nil {
				t.Fatal(err)
			}
			return target
		}, errSymlink},
		{"regular file", func(t *testing.T, dir string) string {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return ""
		}, errNotDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "parent", "state")
			if err := os.Mkdir(filepath.Dir(dir), 0o755); err != nil {
				t.Fatal(err)
			}
			missing := tt.make == nil || strings.HasPrefix(tt.name, "missing")
			target := ""
			if tt.make != nil {
				target = tt.make(t, dir)
			}
			var before os.FileInfo
			if target != "" {
				before, _ = os.Stat(target)
			}
			err := prepareStateDir(dir)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("prepareStateDir(%s) = %v, want %v", dir, err, tt.want)
			}
			if err != nil {
				// The message names the directory and what to do.
				if msg := err.Error(); !strings.Contains(msg, "state directory "+dir+" "+tt.want.Error()) || !strings.Contains(msg, "install -d -m 0700") {
					t.Errorf("message %q: want it to name %s, say why and what to do", msg, dir)
				}
			}
			if target != "" {
				after, err := os.Stat(target)
				switch {
				case before == nil && err == nil:
					t.Errorf("the link's target %s was created", target)
				case before != nil && (err != nil || after.Mode() != before.Mode()):
					t.Errorf("the link's target %s: mode %v, was %v", target, after.Mode(), before.Mode())
				}
				if before != nil {
					if ns := dirNames(target); len(ns) != 0 {
						t.Errorf("something was made in the link's target: %v", ns)
					}
				}
			}
			if tt.want != nil {
				return
			}
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
				t.Errorf("the state directory after prepareStateDir: %v", fi.Mode())
			}
			if missing && fi.Mode().Perm() != 0o700 {
				t.Errorf("a state directory made by prepareStateDir has mode %v, want drwx------", fi.Mode())
			}
		})
	}
}

// dirNames lists the names in dir.
func dirNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var ns []string
	for _, e := range ents {
		ns = append(ns, e.Name())
	}
	return ns
}

// mkdirMode makes dir with mode (past the umask).
func mkdirMode(mode os.FileMode) func(*testing.T, string) string {
	return func(t *testing.T, dir string) string {
		t.Helper()
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		chmod(t, dir, mode)
		return ""
	}
}

// TestDevPKIUntrusted: a development PKI is used only when its directory
// and the files the server takes from it (the client CA, the server's
// certificate and key) are real, root's, and not writable by group or
// others; one that is not is refused, and left as it is.
func TestDevPKIUntrusted(t *testing.T) {
	nobody := nobodyUID(t)
	chown := func(t *testing.T, path string) {
		t.Helper()
		if err := os.Lchown(path, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	// replace puts a link to a copy of the file (or directory) in its
	// place.
	replace := func(t *testing.T, path string) {
		t.Helper()
		moved := filepath.Join(t.TempDir(), filepath.Base(path))
		if err := os.Rename(path, moved); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(moved, path); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, dev string)
		want   error
	}{
		{"as made", func(*testing.T, string) {}, nil},
		{"dev a symlink", func(t *testing.T, dev string) { replace(t, dev) }, errSymlink},
		{"dev owned by nobody", func(t *testing.T, dev string) { chown(t, dev) }, errNotRootOwned},
		{"dev 0770", func(t *testing.T, dev string) { chmod(t, dev, 0o770) }, errOthersWrite},
		{"dev 0707", func(t *testing.T, dev string) { chmod(t, dev, 0o707) }, errOthersWrite},
		{"dev 0755", func(t *testing.T, dev string) { chmod(t, dev, 0o755) }, nil},
		{"ca.crt a symlink", func(t *testing.T, dev string) { replace(t, filepath.Join(dev, "ca.crt")) }, errSymlink},
		{"ca.crt owned by nobody", func(t *testing.T, dev string) { chown(t, filepath.Join(dev, "ca.crt")) }, errNotRootOwned},
		{"ca.crt 0664", func(t *testing.T, dev string) { chmod(t, filepath.Join(dev, "ca.crt"), 0o664) }, errOthersWrite},
		{"ca.crt 0646", func(t *testing.T, dev string) { chmod(t, filepath.Join(dev, "ca.crt"), 0o646) }, errOthersWrite},
		{"server.crt a symlink", func(t *testing.T, dev string) { replace(t, filepath.Join(dev, "server.crt")) }, errSymlink},
		{"server.key owned by nobody", func(t *testing.T, dev string) { chown(t, filepath.Join(dev, "server.key")) }, errNotRootOwned},
		{"server.key 0666", func(t *testing.T, dev string) { chmod(t, filepath.Join(dev, "server.key"), 0o666) }, errOthersWrite},
		{"server.key a directory", func(t *testing.T, dev string) {
			key := filepath.Join(dev, "server.key")
			if err := os.Remove(key); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(key, 0o700); err != nil {
				t.Fatal(err)
			}
		}, errNotFile},
		// A client's files are not the server's to trust.
		{"admin.crt owned by nobody", func(t *testing.T, dev string) { chown(t, filepath.Join(dev, "admin.crt")) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := filepath.Join(t.TempDir(), "dev")
			if made, err := ensureDevPKI(dev); err != nil || !made {
				t.Fatalf("ensureDevPKI = %v, %v; want true, nil", made, err)
			}
			tt.tamper(t, dev)
			ca, err := os.ReadFile(filepath.Join(dev, "ca.crt"))
			if err != nil {
				t.Fatal(err)
			}
			made, err := ensureDevPKI(dev)
			if made || !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("ensureDevPKI = %v, %v; want false, %v", made, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "delete "+dev) {
				t.Errorf("message %q: want it to say what to do", err)
			}
			if now, err := os.ReadFile(filepath.Join(dev, "ca.crt")); err != nil || string(now) != string(ca) {
				t.Errorf("ca.crt was changed: %v", err)
			}
		})
	}
	t.Run("empty dev owned by nobody", func(t *testing.T) {
		dev := filepath.Join(t.TempDir(), "dev")
		if err := os.Mkdir(dev, 0o700); err != nil {
			t.Fatal(err)
		}
		chown(t, dev)
		if made, err := ensureDevPKI(dev); !errors.Is(err, errNotRootOwned) || made {
			t.Fatalf("ensureDevPKI in an empty dev/ of nobody's = %v, %v; want false, %v", made, err, errNotRootOwned)
		}
	})
}

// TestOpenNoFollow: job.Open makes the state directory private without
// following a symbolic link in its place: the link's target keeps its
// mode, and nothing is made in it.
func TestOpenNoFollow(t *testing.T) {
	target := t.TempDir()
	chmod(t, target, 0o755)
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
	m, err := job.Open(job.Config{StateDir: dir, Cgroups: testchild.FakeHierarchy(t)})
	if err == nil {
		m.Close(context.Background())
		t.Errorf("job.Open(%s), a link to %s: no error", dir, target)
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("the link's target has mode %v after job.Open, want drwxr-xr-x", fi.Mode())
	}
	if ns := dirNames(target); len(ns) != 0 {
		t.Errorf("job.Open made %v in the link's target", ns)
	}
}

// TestRunAsCredential: jobs run as root only when --run-as says root; any
// other name for uid 0 is refused.
func TestRunAsCredential(t *testing.T) {
	users := map[string]*shim.Credential{
		"root":   {UID: 0, GID: 0},
		"toor":   {UID: 0, GID: 0},
		"0":      {UID: 0, GID: 0},
		"admin0": {UID: 0, GID: 1000},
		"daemon": {UID: 1, GID: 1},
		"nobody": {UID: 65534, GID: 65534},
		"wheel0": {UID: 1000, GID: 0},
	}
	errUnknown := errors.New("no such user")
	lookup := func(name string) (*shim.Credential, error) {
		if name == "root" {
			t.Errorf("--run-as root was looked up")
		}
		if c, ok := users[name]; ok {
			return c, nil
		}
		return nil, errUnknown
	}
	tests := []struct {
		name    string
		want    *shim.Credential // nil with no error: root
		wantErr error
	}{
		{"root", nil, nil},
		{"toor", nil, errRootAlias},
		{"0", nil, errRootAlias},
		{"admin0", nil, errRootAlias},
		{"daemon", users["daemon"], nil}, // uid 1: the first that is not root
		{"nobody", users["nobody"], nil},
		{"wheel0", users["wheel0"], nil}, // gid 0 is not uid 0
		{"ghost", nil, errUnknown},
		{"Root", nil, errUnknown}, // spelled root means exactly that
	}
	for _, tt := range tests {
		got, err := runAsCredential(tt.name, lookup)
		if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("runAsCredential(%q) = %+v, %v; want %+v, %v", tt.name, got, err, tt.want, tt.wantErr)
		}
		if errors.Is(err, errRootAlias) && !strings.Contains(err.Error(), "--run-as root") {
			t.Errorf("runAsCredential(%q): message %q does not say how to ask for root", tt.name, err)
		}
	}
	// The real lookup: the number 0 is root's uid, and not spelled root.
	if _, err := runAsCredential("0", shim.LookupUser); !errors.Is(err, errRootAlias) {
		t.Errorf("runAsCredential(\"0\", shim.LookupUser) = %v, want %v", err, errRootAlias)
	}
}
