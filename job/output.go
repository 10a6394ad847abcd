package job

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// copyOutput moves the job's output into its log. If the log cannot store
// it (the disk is full, and nothing is left to free: writeOutput), the job
// is killed: its output would be lost.
func (m *Manager) copyOutput(j *job, out *os.File) {
	rc, err := out.SyscallConn()
	if err != nil {
		m.report(err)
		io.Copy(j.log, out)
		return
	}
	for {
		n, err := readPooled(rc, m.copyBuffers, func(b []byte) error {
			return m.writeOutput(j, b)
		})
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
			io.Copy(io.Discard, out)
			return
		}
		if err != nil || n == 0 {
			return
		}
	}
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
