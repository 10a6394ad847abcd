package testchild

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"golang.org/x/sys/unix"
)

// TempCgroup makes a fresh cgroup under the test's own (the cgroup2 mount
// is mount, the new cgroup's absolute directory dir) and, when the test
// ends, moves the test process back to its own cgroup, kills whatever still
// runs in dir or below it, and removes dir with everything below. A test
// may move itself into dir (cgroupfs.Setup does, into a supervisor below
// it) and make cgroups of its own there. It fails the test where there is
// no cgroup v2 to work in: integration tests run only where there is one.
func TempCgroup(t testing.TB) (mount, dir string) {
	t.Helper()
	mount, err := cgroupfs.FindMount()
	if err != nil {
		t.Fatal(err)
	}
	own, err := cgroupfs.OwnCgroup()
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(mount, own)
	dir, err = os.MkdirTemp(home, "cgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cgroupfs.AddProc(home, 0); err != nil {
			t.Errorf("move the test back to %s: %v", home, err)
		}
		if err := killTree(dir, 30*time.Second); err != nil {
			t.Errorf("clean up %s: %v", dir, err)
		}
		if err := cgroupfs.RemoveTree(dir); err != nil {
			t.Errorf("clean up: %v", err)
		}
	})
	return mount, dir
}

// killTree kills every process in dir and below it with cgroup.kill,
// which reaches the whole subtree at once (cgroup-v2.rst, "cgroup.kill",
// Linux 5.14+), and waits until dir is empty. cgroupfs kills only the
// groups it made, so the harness writes the file itself.
func killTree(dir string, timeout time.Duration) error {
	populated, err := eventsHave(dir, "populated 1")
	if errors.Is(err, fs.ErrNotExist) || err == nil && !populated {
		return nil
	}
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.kill"), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("kill what is left in %s: %w", dir, err)
	}
	_, err = f.WriteString("1")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("kill what is left in %s: %w", dir, err)
	}
	return waitFor(dir, "cgroup.events", func(s string) bool { return hasLine(s, "populated 0") }, timeout)
}

// Populated reports whether any process is in the cgroup dir or below it
// (cgroup.events' "populated 1").
func Populated(t testing.TB, dir string) bool {
	t.Helper()
	populated, err := eventsHave(dir, "populated 1")
	if err != nil {
		t.Fatal(err)
	}
	return populated
}

// eventsHave reports whether dir's cgroup.events has line.
func eventsHave(dir, line string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false, err
	}
	return hasLine(string(b), line), nil
}

func hasLine(s, line string) bool {
	for l := range strings.Lines(s) {
		if strings.TrimSuffix(l, "\n") == line {
			return true
		}
	}
	return false
}

// WaitFile waits until pred holds for the contents of dir/file, woken by
// the kernel's file-modified events on it (cgroup.events, pids.events and
// the like send one at each change), not by polling; it fails the test
// after a minute.
func WaitFile(t testing.TB, dir, file string, pred func(string) bool) {
	t.Helper()
	if err := waitFor(dir, file, pred, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// waitFor is WaitFile that returns its error.
func waitFor(dir, file string, pred func(string) bool, timeout time.Duration) error {
	path := filepath.Join(dir, file)
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	f.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	for {
		// Read after the watch is in place, so no change is missed.
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if pred(string(b)) {
			return nil
		}
		if _, err := f.Read(buf); err != nil {
			return fmt.Errorf("wait on %s (now %q): %w", path, b, err)
		}
	}
}

// RequireCgroup2 fails the test unless it runs as root on a host whose
// cgroup v2 is mounted at /sys/fs/cgroup, with no v1 hierarchy beside it
// (/proc/self/cgroup is a single "0::" line), and whose cgroup for the
// test enables each of controllers for its children (its
// cgroup.subtree_control), so that a TempCgroup has them. It never skips:
// the integration stage runs only where all that holds.
func RequireCgroup2(t testing.TB, controllers ...string) {
	t.Helper()
	if err := requireCgroup2(os.Geteuid(), "/sys/fs/cgroup", controllers); err != nil {
		t.Fatal(err)
	}
}

// requireCgroup2 is RequireCgroup2's check for a process of user euid with
// the cgroup2 mount expected at mount; it returns what fails.
func requireCgroup2(euid int, mount string, controllers []string) error {
	if euid != 0 {
		return errors.New("integration tests run as root")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mount, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("%s is not cgroup2 (statfs: %v)", mount, err)
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	own, err := soleCgroup2(string(b))
	if err != nil {
		return err
	}
	dir := filepath.Join(mount, own)
	ctrl, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	if missing := missingControllers(string(ctrl), controllers); len(missing) > 0 {
		return fmt.Errorf("%s/cgroup.subtree_control = %q: %s not enabled for children", dir, ctrl, strings.Join(missing, ", "))
	}
	return nil
}

// soleCgroup2 is the cgroup of a /proc/PID/cgroup that is a single cgroup
// v2 line, "0::/path".
func soleCgroup2(procCgroup string) (string, error) {
	own, ok := strings.CutPrefix(strings.TrimSpace(procCgroup), "0::")
	if !ok || strings.Contains(own, "\n") || !strings.HasPrefix(own, "/") {
		return "", fmt.Errorf("/proc/self/cgroup = %q, want a single cgroup v2 line", procCgroup)
	}
	return own, nil
}

// missingControllers lists those of want that subtreeControl (the contents
// of a cgroup.subtree_control) does not enable.
func missingControllers(subtreeControl string, want []string) []string {
	on := strings.Fields(subtreeControl)
	var missing []string
	for _, c := range want {
		if !slices.Contains(on, c) {
			missing = append(missing, c)
		}
	}
	return missing
}

// FakeHierarchy is the real cgroupfs.Setup over a temporary directory
// standing in for a cgroup2 mount with no controllers: enough for a job
// manager that starts no job, with neither root nor cgroups.
func FakeHierarchy(t testing.TB) *cgroupfs.Hierarchy {
	t.Helper()
	mount := t.TempDir()
	parent := filepath.Join(mount, "jobworker")
	for _, d := range []string{"supervisor", "jobs"} {
		if err := os.MkdirAll(filepath.Join(parent, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"cgroup.controllers", "cgroup.subtree_control", "supervisor/cgroup.procs", "jobs/cgroup.controllers", "jobs/cgroup.subtree_control"} {
		if err := os.WriteFile(filepath.Join(parent, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := cgroupfs.Setup(cgroupfs.Options{Mount: mount, Parent: "/jobworker"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
