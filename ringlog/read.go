package ringlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
)

// ReadAt copies bytes starting at the absolute offset off into p and
// returns how many. It never waits: at the end it returns 0 and nil while
// the log is open, and 0 and io.EOF once it is closed. A read may return
// fewer bytes than are available (it stops at the end of a segment file);
// read again from off+n. Reading before the oldest kept byte returns a
// *DroppedError, and so does reading in a gap of a damaged log (Missing
// set); past the end, ErrPastEnd. A Reader is cheaper for many
// reads (it keeps its segment file open), and follows the log.
func (l *Log) ReadAt(p []byte, off int64) (int, error) {
	return l.readAt(p, off, nil)
}

// segFile is a segment file a reader keeps open between reads.
type segFile struct {
	base int64
	f    *os.File
}

func (s *segFile) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// readAt is ReadAt with an optional cached segment file.
//
// Readers copy in at most GOMAXPROCS-1 read slots at once (one at least).
// Every reader must copy every byte, so a thousand followers copy a
// thousand times what the writer writes; without a bound they would take
// every CPU and starve the writer, which then falls behind the job it
// drains. With the bound the writer always has a CPU, and readers that
// fall behind catch up from the ring or the files.
func (l *Log) readAt(p []byte, off int64, cache *segFile) (int, error) {
	return l.readAtCtx(context.Background(), p, off, cache)
}

// readAtCtx is readAt that gives up waiting for a read slot when ctx is
// done.
func (l *Log) readAtCtx(ctx context.Context, p []byte, off int64, cache *segFile) (int, error) {
	slots := l.readSlots()
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-slots }()
	l.mu.Lock()
	if l.removed {
		l.mu.Unlock()
		return 0, ErrRemoved
	}
	if off < l.start {
		start := l.start
		l.mu.Unlock()
		return 0, &DroppedError{Offset: off, Start: start}
	}
	if off > l.size {
		l.mu.Unlock()
		return 0, ErrPastEnd
	}
	if off == l.size {
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		return 0, nil
	}
	if len(p) == 0 {
		l.mu.Unlock()
		return 0, nil
	}
	if off >= l.size-l.ringHeld {
		n := l.copyFromRing(p, off)
		l.mu.Unlock()
		return n, nil
	}
	// Older than the ring: from the segment file that holds off, outside
	// the lock so the writer never waits on a reader's disk read. A file
	// that the disk cap unlinks meanwhile still reads correctly through an
	// open descriptor; the bytes were kept when the read began.
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base+l.segs[i].size > off })
	seg := l.segs[i]
	l.mu.Unlock()
	if off < seg.base {
		// In a gap Open found: the bytes up to the next segment are gone.
		return 0, &DroppedError{Offset: off, Start: seg.base, Missing: true}
	}
	if limit := seg.base + seg.size - off; int64(len(p)) > limit {
		p = p[:limit]
	}
	var tmp segFile
	if cache == nil {
		cache = &tmp
		defer tmp.close()
	}
	if cache.f == nil || cache.base != seg.base {
		cache.close()
		f, err := os.Open(l.segmentPath(seg.base))
		if errors.Is(err, os.ErrNotExist) {
			// Dropped by the disk cap since we looked, or removed.
			return 0, l.vanished(off, seg)
		}
		if err != nil {
			return 0, fmt.Errorf("ringlog: read at offset %d: %w", off, err)
		}
		cache.base, cache.f = seg.base, f
	}
	n, err := cache.f.ReadAt(p, off-seg.base)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, fmt.Errorf("ringlog: read %s at offset %d: %w", cache.f.Name(), off, err)
	}
	return n, nil
}

// readSlots returns the log's read-slot semaphore, making it on first use.
func (l *Log) readSlots() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.slots == nil {
		l.slots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))
	}
	return l.slots
}

// copyFromRing copies from the ring at off, which it holds. Called with mu held.
func (l *Log) copyFromRing(p []byte, off int64) int {
	rs := int64(l.opts.RingSize)
	avail := l.size - off
	if int64(len(p)) > avail {
		p = p[:avail]
	}
	n := 0
	for n < len(p) {
		pos := (off + int64(n)) % rs
		n += copy(p[n:], l.ring[pos:])
	}
	return n
}
