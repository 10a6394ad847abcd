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
// testchild.ModeEnv set it does that child's work instead of the tests.
func TestMain(m *testing.M) {
	testchild.Dispatch(map[string]func(){
		"alloc100m": testchild.Alloc100M,
		"shm-make":  shmMake,
		"shm-look":  shmLook,
		"abort":     abortSelf,
		"orphan":    leaveOrphan,
		"dial":      dialAddr,
	})
	os.Exit(m.Run())
}

// TestCgroupV2OOMKill proves the integration stage runs under a real cgroup
// v2 with the memory controller: a process that allocates 100 MiB in a cgroup
// with memory.max 32M is killed by the OOM killer, and memory.events counts it.
func TestCgroupV2OOMKill(t *testing.T) {
	testchild.RequireCgroup2(t, "memory")
	_, dir := testchild.TempCgroup(t)
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

	cmd := testchild.Command("alloc100m")
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
