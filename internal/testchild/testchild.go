// Package testchild holds what a test binary does when it stands in for a
// job's process (its TestMain picks the mode from JOBWORKER_TEST_CHILD).
package testchild

import "os"

// Alloc100M touches every page of 100 MiB, so that all of it is charged to
// the process's memory cgroup, and exits 0.
func Alloc100M() {
	b := make([]byte, 100<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	os.Exit(0)
}
