package job

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/jobworker/jobworker/ringlog"
	"golang.org/x/sys/unix"
)

// copyOutput moves the job's output into its log: spliced from the pipe
// into the log's files (ringlog's SpliceFrom), or, where the kernel cannot
// splice there, read into a pooled buffer and written. If the log cannot
// store it (the disk is full, and nothing is left to free: storeOutput),
// the job is killed: its output would be lost.
func (m *Manager) copyOutput(j *job, out *os.File) {
	rc, err := out.SyscallConn()
	if err != nil {
		m.report(err)
		io.Copy(j.log, out)
		return
	}
	splice := true
	var lastFull time.Time
	poll := time.Duration(0) // the deadline's interval; 0: none
	for {
		// While the job fills its pipe, the pipe is waited on with a
		// deadline as well (busyPoll).
		if time.Since(lastFull) < busyWindow {
			poll = min(max(2*poll, busyPoll), busyWindow)
			out.SetReadDeadline(time.Now().Add(poll))
		} else if poll != 0 {
			poll = 0
			out.SetReadDeadline(time.Time{})
		}
		var n int
		var err error
		if splice {
			n, err = spliceOnce(rc, func(fd int) (int, error) {
				return m.storeOutput(j, func() (int, error) { return j.log.SpliceFrom(fd, outputPipeSize) })
			})
			if errors.Is(err, ringlog.ErrNoSplice) {
				splice = false
				continue
			}
		} else {
			n, err = readPooled(rc, m.copyBuffers, func(b []byte) error {
				_, err := m.storeOutput(j, func() (int, error) {
					n, err := j.log.Write(b)
					b = b[n:]
					return n, err
				})
				return err
			})
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if n >= busyBytes {
			lastFull, poll = time.Now(), 0
		}
		m.wroteOutput(j, n)
		var werr *writeError
		if errors.As(err, &werr) {
			m.mu.Lock()
			lost := j.lostErr == nil
			if lost {
				j.lostErr = werr.err
			}
			m.mu.Unlock()
			if lost {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				m.report(j.group.Kill(ctx))
				cancel()
			}
			out.SetReadDeadline(time.Time{}) // drained to the end
			io.Copy(io.Discard, out)
			return
		}
		if err != nil || n == 0 {
			return
		}
	}
}

// A job that fills its pipe faster than the server drains it (a read of
// busyBytes or more) has the pipe waited on with a deadline as well as in
// the poller, for busyWindow after such a read: first busyPoll, doubling
// while the pipe stays empty. A server whose every CPU is busy (serving a
// thousand followers) looks at the poller's readiness only when a CPU runs
// out of work, or every 10 ms, while the job waits on its full pipe; a
// deadline is a timer, which the scheduler runs at its next turn, and
// whose goroutine runs next. A job that writes a line now and then waits
// in the poller alone, at no cost.
const (
	busyBytes  = 64 << 10
	busyPoll   = 500 * time.Microsecond
	busyWindow = 10 * time.Millisecond
)

// spliceOnce waits until the pipe is readable, then has splice move what
// it holds. It returns 0 and nil at EOF; the poller's error (the pipe's
// deadline) and ringlog.ErrNoSplice as they are; any other failure as a
// *writeError: splice's errors are the log's, the pipe being ours.
func spliceOnce(rc syscall.RawConn, splice func(fd int) (int, error)) (int, error) {
	var n int
	var serr error
	err := rc.Read(func(fd uintptr) bool {
		n, serr = splice(int(fd))
		return serr != unix.EAGAIN && serr != unix.EINTR // not yet: wait in the poller
	})
	switch {
	case err != nil:
		// The poller's (a deadline): splice's last answer was "not yet".
		return 0, err
	case serr == ringlog.ErrNoSplice:
		return 0, serr
	case serr != nil:
		return n, &writeError{serr}
	}
	return n, nil
}

// outputPipeSize is the capacity asked for a job's output pipe. The pipe
// lets a job write ahead while the server is busy elsewhere (serving a
// thousand followers, say); it is kernel memory only while it holds output.
const outputPipeSize = 1 << 20

// growPipe raises the capacity of a job's output pipe to outputPipeSize;
// where the kernel refuses, the default stays, which is only slower.
func growPipe(p *os.File) {
	rc, err := p.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.FcntlInt(fd, unix.F_SETPIPE_SZ, outputPipeSize)
	})
}

// newCopyBuffers is the pool of the buffers that hold output on its way
// from a job's pipe to its log, only while it is there: an idle job holds
// no buffer. One read takes what the pipe holds, up to all of it.
func newCopyBuffers() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, outputPipeSize); return &b }}
}

type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// readPooled waits until the pipe is readable, then reads into a pooled
// buffer and passes what it read to write. It returns 0 and nil at EOF.
func readPooled(rc syscall.RawConn, buffers *sync.Pool, write func([]byte) error) (int, error) {
	var n int
	var rerr, werr error
	err := rc.Read(func(fd uintptr) bool {
		bp := buffers.Get().(*[]byte)
		defer buffers.Put(bp)
		n, rerr = unix.Read(int(fd), *bp)
		if rerr == unix.EAGAIN {
			return false // not readable yet: wait in the poller
		}
		if rerr == unix.EINTR {
			return false
		}
		if n > 0 {
			werr = write((*bp)[:n])
		}
		return true
	})
	switch {
	case werr != nil:
		return n, &writeError{werr}
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	}
	return n, nil
}
