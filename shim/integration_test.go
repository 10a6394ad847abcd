//go:build integration

package shim_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/internal/testchild"
	"github.com/jobworker/jobworker/shim"
)

// TestMain makes the test binary the shim when the launcher starts it.
func TestMain(m *testing.M) {
	if err := shim.Main(); !errors.Is(err, shim.ErrNotShim) {
		os.Exit(126)
	}
	os.Exit(m.Run())
}

var launcher = shim.Launcher{Binary: os.Args[0]}

// setup makes a job cgroup under a fresh parent (a testchild.TempCgroup),
// undone at cleanup: the job cgroup is killed and removed, then the parent.
func setup(t *testing.T, jobID string) (*cgroupfs.Hierarchy, *cgroupfs.Group) {
	t.Helper()
	mount, parent := testchild.TempCgroup(t)
	h, err := cgroupfs.Setup(cgroupfs.Options{Mount: mount, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	g, err := h.Create("alice", jobID, cgroupfs.Limits{PidsMax: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Kill(ctx); err != nil {
			t.Error(err)
		}
		if err := g.Remove(ctx); err != nil {
			t.Error(err)
		}
	})
	return h, g
}

func nobody(t *testing.T) *shim.Credential {
	t.Helper()
	c, err := shim.LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run starts spec with the test's launcher and returns its output and
// exit code.
func run(t *testing.T, spec shim.Spec) (string, int, error) {
	t.Helper()
	return start(t, launcher, spec)
}

// TestFirstActSeesItsCgroup: the command's first instruction already runs
// in the job's cgroup. Without Isolate it sees the cgroup's whole path;
// isolated, its cgroup namespace is rooted there, so it sees /, and the
// cgroup mounted at /sys/fs/cgroup holds its process.
func TestFirstActSeesItsCgroup(t *testing.T) {
	_, g := setup(t, "cat-cgroup")
	mount, _ := cgroupfs.FindMount()
	out, code, err := run(t, shim.Spec{Command: "/bin/cat", Args: []string{"/proc/self/cgroup"}, Env: []string{"PATH=/bin"}, Cgroup: g.Dir(), Credential: nobody(t)})
	if err != nil || code != 0 {
		t.Fatalf("cat /proc/self/cgroup: %v, exit %d, %q", err, code, out)
	}
	if want := "0::" + strings.TrimPrefix(g.Dir(), mount) + "\n"; out != want {
		t.Errorf("the job saw itself in %q, want %q", out, want)
	}
	out, code, err = run(t, shim.Spec{Command: "/bin/sh", Args: []string{"-c", "cat /proc/self/cgroup; grep -x $$ /sys/fs/cgroup/cgroup.procs"}, Env: []string{"PATH=/bin"}, Cgroup: g.Dir(), Credential: nobody(t), Isolate: true})
	if err != nil || code != 0 {
		t.Fatalf("isolated: %v, exit %d, %q", err, code, out)
	}
	if lines := strings.Split(out, "\n"); len(lines) != 3 || lines[0] != "0::/" || lines[1] == "" {
		t.Errorf("isolated, the job saw itself in %q, want 0::/ and its pid in /sys/fs/cgroup/cgroup.procs", out)
	}
}

// TestUnprivilegedJob: the job runs as nobody, in a session of its own,
// with no_new_privs, only descriptors 0-2, and cannot write its cgroup's
// control files, which it sees at /sys/fs/cgroup (isolated, its cgroup is
// the root of its cgroup namespace, mounted there) and not at their path
// on the host.
func TestUnprivilegedJob(t *testing.T) {
	_, g := setup(t, "unpriv")
	script := `id -u; id -g; grep NoNewPrivs /proc/self/status; ` +
		`sid=$(cut -d" " -f6 /proc/$$/stat); [ "$sid" = "$$" ] && echo session-leader; ` +
		`ls /proc/self/fd | tr "\n" " "; echo; ` +
		`[ -e ` + g.Dir() + ` ] && echo sees-host-path; ` +
		`for f in cgroup.procs memory.max pids.max cgroup.kill; do if [ ! -e /sys/fs/cgroup/$f ]; then echo missing-$f; elif { echo 1 > /sys/fs/cgroup/$f; } 2>/dev/null; then echo wrote-$f; else echo denied-$f; fi; done`
	// A stray descriptor in the server must not reach the job.
	stray, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer stray.Close()
	out, code, err := run(t, shim.Spec{Command: "sh", Args: []string{"-c", script}, Env: []string{"PATH=/bin"}, Cgroup: g.Dir(), Credential: nobody(t), Isolate: true})
	if err != nil || code != 0 {
		t.Fatalf("job: %v, exit %d, %q", err, code, out)
	}
	want := "65534\n65534\nNoNewPrivs:\t1\nsession-leader\n0 1 2 3 \n" +
		"denied-cgroup.procs\ndenied-memory.max\ndenied-pids.max\ndenied-cgroup.kill\n"
	if out != want {
		t.Errorf("job output:\n%s\nwant:\n%s", out, want)
	}
}

// TestStartErrors: a command that cannot start is a typed error with its
// reason, and leaves nothing running in the cgroup.
func TestStartErrors(t *testing.T) {
	_, g := setup(t, "errors")
	dir := testchild.PublicDir(t)
	noExec := filepath.Join(dir, "script")
	if err := os.WriteFile(noExec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("\x00\x01\x02 not a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Root may execute it (root's own lookup, for a queued job, passes);
	// the job's user may not.
	rootOnly := filepath.Join(dir, "root-only")
	if err := os.WriteFile(rootOnly, []byte("#!/bin/sh\necho hi\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		command string
		path    string
		workdir string
		reason  shim.Reason
	}{
		{"missing absolute path", "/no/such/program", "/bin", "", shim.ReasonNotFound},
		{"not on PATH", "no-such-program", "/bin", "", shim.ReasonNotFound},
		{"no execute permission", noExec, "/bin", "", shim.ReasonPermissionDenied},
		{"no execute permission, on PATH", "script", dir + ":/bin", "", shim.ReasonPermissionDenied},
		{"only root may execute", rootOnly, "/bin", "", shim.ReasonPermissionDenied},
		{"only root may execute, on PATH", "root-only", "/bin:" + dir, "", shim.ReasonPermissionDenied},
		{"a directory", dir, "/bin", "", shim.ReasonNotExecutable},
		{"a directory, on PATH", "subdir", dir, "", shim.ReasonNotExecutable},
		{"not a program", garbage, "/bin", "", shim.ReasonNotExecutable},
		{"missing working directory", "/bin/true", "/bin", "/no/such/dir", shim.ReasonBadWorkdir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, shim.Spec{Command: tt.command, Env: []string{"PATH=" + tt.path}, Dir: tt.workdir, Cgroup: g.Dir(), Credential: nobody(t), Isolate: true})
			var se *shim.StartError
			if !errors.As(err, &se) || se.Reason != tt.reason {
				t.Fatalf("Start(%s) = %v, want a StartError with reason %q", tt.command, err, tt.reason)
			}
			if testchild.Populated(t, g.Dir()) {
				t.Errorf("after a failed start the cgroup %s is populated, want empty", g.Dir())
			}
		})
	}
	_, err := shim.LookupUser("no-such-user")
	var se *shim.StartError
	if !errors.As(err, &se) || se.Reason != shim.ReasonUnknownUser {
		t.Errorf("LookupUser(no-such-user) = %v, want reason %q", err, shim.ReasonUnknownUser)
	}
}

// TestExitStatusPassesThrough: the shim is the job's process after exec.
func TestExitStatusPassesThrough(t *testing.T) {
	_, g := setup(t, "exit")
	out, code, err := run(t, shim.Spec{Command: "sh", Args: []string{"-c", "printf 'a\\000b'; exit 3"}, Env: []string{"PATH=/bin"}, Cgroup: g.Dir(), Credential: nobody(t), Isolate: true})
	if err != nil || code != 3 || out != "a\x00b" {
		t.Errorf("job = %q, exit %d, %v; want %q, exit 3", out, code, err, "a\x00b")
	}
}
