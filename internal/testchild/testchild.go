// Package testchild holds what a test binary does when it stands in for a
// job's process (its TestMain picks the mode from JOBWORKER_TEST_CHILD),
// and what tests need to hand a job files.
package testchild

import (
	"os"
	"testing"
)

// PublicDir makes a temporary directory that a job, running as an
// unprivileged user, can enter and read (t.TempDir's are private to root),
// and removes it when the test ends.
func PublicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "jobworker-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Alloc100M touches every page of 100 MiB, so that all of it is charged to
// the process's memory cgroup, and exits 0.
func Alloc100M() {
	b := make([]byte, 100<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	os.Exit(0)
}
