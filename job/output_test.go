//go:build !integration

package job

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSpliceOnceDeadline: a pipe that stays empty past its deadline is the
// poller's deadline error, to wait again, never a *writeError, which would
// have the job killed as if its output could not be stored (seen in the
// test VM, where a job's pipe stays empty for longer than busyPoll).
func TestSpliceOnceDeadline(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	r.SetReadDeadline(time.Now().Add(busyPoll))
	calls := 0
	n, err := spliceOnce(rc, func(int) (int, error) { calls++; return 0, unix.EAGAIN })
	var werr *writeError
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &werr) || calls == 0 {
		t.Fatalf("spliceOnce on an empty pipe past its deadline = %d, %v (%d calls); want 0 and the deadline's error", n, err, calls)
	}
	// Readable again: what splice moved, and its error as the log's.
	r.SetReadDeadline(time.Time{})
	w.WriteString("x")
	n, err = spliceOnce(rc, func(int) (int, error) { return 1, unix.ENOSPC })
	if n != 1 || !errors.As(err, &werr) || !errors.Is(werr.err, unix.ENOSPC) {
		t.Fatalf("spliceOnce with a failing log = %d, %v; want 1 and a *writeError of ENOSPC", n, err)
	}
}
