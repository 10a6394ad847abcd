//go:build !integration

package cgroupfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestLowestLimit: the budget of a parent is the lowest bound of it and
// its ancestors below the mount; "max" and a level without the file bound
// nothing, and the mount itself (the root cgroup) is never read.
func TestLowestLimit(t *testing.T) {
	mount := t.TempDir()
	dir := filepath.Join(mount, "a", "b", "c")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(rel, v string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(mount, rel, "pids.max"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := func() uint64 {
		t.Helper()
		v, err := lowestLimit(mount, dir, "pids.max")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := got(); v != ^uint64(0) {
		t.Errorf("no level with a bound: %d, want no bound", v)
	}
	write("", "5") // the root cgroup's, which the kernel never has: ignored
	write("a/b/c", "max")
	if v := got(); v != ^uint64(0) {
		t.Errorf("the parent at max, the mount at 5: %d, want no bound", v)
	}
	write("a", "300")
	write("a/b", "700")
	if v := got(); v != 300 {
		t.Errorf("a grandparent at 300 below a parent at 700: %d, want 300", v)
	}
	write("a/b/c", "120")
	if v := got(); v != 120 {
		t.Errorf("the parent at 120: %d, want 120", v)
	}
	write("a/b", "junk")
	if _, err := lowestLimit(mount, dir, "pids.max"); err == nil {
		t.Error("a malformed bound was taken for a number")
	}
}

// TestLeave: the jobs get the budget less the reserve; a reserve as large
// as the budget is refused with what it needed.
func TestLeave(t *testing.T) {
	if v, err := leave(300, 150, "pids"); v != 150 || err != nil {
		t.Errorf("leave(300, 150) = %d, %v; want 150", v, err)
	}
	if v, err := leave(300, 0, "pids"); v != 300 || err != nil {
		t.Errorf("leave(300, 0) = %d, %v; want 300", v, err)
	}
	_, err := leave(256<<20, 256<<20, "memory")
	var re *ReserveError
	if !errors.As(err, &re) || re.What != "memory" || re.Budget != 256<<20 || re.Reserve != 256<<20 {
		t.Errorf("leave(256M, 256M) = %v, want a ReserveError of memory", err)
	}
}
