// Package testchild holds what a test binary does when it stands in for a
// job's process (its TestMain picks the mode from JOBWORKER_TEST_CHILD,
// through Dispatch), what tests need to hand a job files, and the
// temporary cgroup a test works in (TempCgroup).
//
// It imports cgroupfs, so cgroupfs's own tests that use it are in package
// cgroupfs_test: an in-package test of cgroupfs importing it would be an
// import cycle.
package testchild

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// ModeEnv names the mode a test binary started as a child runs.
const ModeEnv = "JOBWORKER_TEST_CHILD"

// Dispatch is the first thing a TestMain does. With ModeEnv unset it
// returns, and TestMain runs the tests. Set, the binary is a child: it runs
// modes[mode] and exits 0 when that returns (a mode may exit with a code
// of its own), or exits 3 for a mode it does not know.
func Dispatch(modes map[string]func()) {
	mode := os.Getenv(ModeEnv)
	if mode == "" {
		return
	}
	run, ok := modes[mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s=%s: no such child mode in this test binary\n", ModeEnv, mode)
		os.Exit(3)
	}
	run()
	os.Exit(0)
}

// Command returns the command that starts this test binary as a child in
// mode, running no test, with the test's environment and ModeEnv.
func Command(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), ModeEnv+"="+mode)
	return cmd
}

// PublicDir makes a temporary directory that a job, running as an
// unprivileged user, can enter and read (t.TempDir's are private to root),
// and removes it when the test ends. It is under /var/tmp, not /tmp: a job
// has a /tmp of its own.
func PublicDir(t testing.TB) string {
	t.Helper()
	if err := os.MkdirAll(publicRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(publicRoot, "jobworker-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// publicRoot holds the PublicDir directories.
const publicRoot = "/var/tmp"

// Alloc100M touches every page of 100 MiB, so that all of it is charged to
// the process's memory cgroup, and exits 0.
func Alloc100M() {
	b := make([]byte, 100<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	os.Exit(0)
}
