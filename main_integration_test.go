//go:build integration

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jobworker/jobworker/internal/testchild"
	"golang.org/x/sys/unix"
)

// TestMain lets the test binary stand in for a job's process: with
// JOBWORKER_TEST_CHILD set it does that child's work instead of the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("JOBWORKER_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "alloc100m":
		testchild.Alloc100M()
	default:
		os.Exit(3)
	}
}

// requireCgroup2 returns the cgroup v2 directory this test process runs in,
// and fails (never skips) when there is none with the memory controller:
// the integration stage only runs where there is one.
func requireCgroup2(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("integration tests run as root")
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Fatalf("/sys/fs/cgroup is not cgroup2 (statfs: %v)", err)
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	own, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "0::")
	if !ok {
		t.Fatalf("/proc/self/cgroup = %q, want a single cgroup v2 line", b)
	}
	dir := filepath.Join("/sys/fs/cgroup", own)
	ctrl, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ctrl), "memory") {
		t.Fatalf("%s/cgroup.subtree_control = %q: the memory controller is not enabled for children", dir, ctrl)
	}
	return dir
}

// TestCgroupV2OOMKill proves the integration stage runs under a real cgroup
// v2 with the memory controller: a process that allocates 100 MiB in a cgroup
// with memory.max 32M is killed by the OOM killer, and memory.events counts it.
func TestCgroupV2OOMKill(t *testing.T) {
	parent := requireCgroup2(t)
	dir, err := os.MkdirTemp(parent, "oomtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove test cgroup: %v", err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte("32M"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "JOBWORKER_TEST_CHILD=alloc100m")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child allocating 100 MiB under memory.max 32M: err = %v, want it killed", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child status = %v, want killed by SIGKILL (stderr: %s)", ws, stderr.String())
	}
	events, err := os.ReadFile(filepath.Join(dir, "memory.events"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\n"+string(events), "\noom_kill 1\n") {
		t.Fatalf("memory.events = %q, want oom_kill 1", events)
	}
}
