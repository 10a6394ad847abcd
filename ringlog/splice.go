package ringlog

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// ErrNoSplice is returned by SpliceFrom when the kernel cannot splice from
// that descriptor into the log's files (not a pipe, or a file system
// without splice): the caller reads and calls Write instead.
var ErrNoSplice = errors.New("ringlog: cannot splice into this log")

// SpliceFrom moves up to max bytes from the pipe pipeFD into the log with
// splice(2), without waiting: the bytes go from the pipe's pages to the
// segment file's in the kernel, never through a buffer of ours, which is a
// copy fewer than a read and a Write. The ring gets the newest of them as
// Write would have left it, read back from the page cache: a copy of at
// most RingSize bytes a call, where Write copies every byte into it.
//
// It returns the bytes moved. At the pipe's end it returns 0 and nil; when
// the pipe holds nothing yet, unix.EAGAIN; when nothing can be spliced
// here, ErrNoSplice (nothing was moved). A file error is returned as
// Write returns it, and what the pipe still holds stays there.
func (l *Log) SpliceFrom(pipeFD int, max int) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.isClosed() {
		return 0, ErrClosed
	}
	t := l.now()
	if err := l.ensureSegment(); err != nil {
		l.publish(nil)
		return 0, err
	}
	l.mu.Lock()
	last := l.segs[len(l.segs)-1]
	l.mu.Unlock()
	want := int(min(int64(max), l.opts.SegmentSize-last.size))
	// cur is a regular file: Fd leaves its mode alone.
	n, err := unix.Splice(pipeFD, nil, int(l.cur.Fd()), nil, want, unix.SPLICE_F_NONBLOCK)
	switch {
	case err == unix.EINVAL && n <= 0:
		return 0, ErrNoSplice
	case err == unix.EAGAIN || err == unix.EINTR:
		return 0, err
	case n <= 0 && err == nil:
		return 0, nil // the pipe's end
	}
	if n > 0 {
		// The entry before the bytes are published, as Write has it: a
		// reader never sees bytes whose time is still to come.
		l.noteTime(last.base+last.size, t, last.size == 0)
		l.lastWrite = t
		l.publishSpliced(last.size, n)
	}
	if err != nil {
		return int(n), fmt.Errorf("ringlog: write %s at offset %d: %w", l.cur.Name(), last.base+last.size+n, err)
	}
	return int(n), nil
}

// publishSpliced is publish for the n bytes that splice put at fileOff in
// the open segment: the ring gets its share of them from the file.
func (l *Log) publishSpliced(fileOff, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fd := int(l.cur.Fd())
	l.fillRing(n, func(dst []byte, from int64) error {
		for len(dst) > 0 {
			k, err := unix.Pread(fd, dst, fileOff+from)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			if k == 0 {
				return io.ErrUnexpectedEOF
			}
			dst, from = dst[k:], from+int64(k)
		}
		return nil
	})
	l.segs[len(l.segs)-1].size += n
	l.size += n
	l.dropOldest()
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}
