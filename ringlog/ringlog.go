// Package ringlog keeps one job's output: every byte, in order, readable from
// any absolute offset by any number of readers at their own pace, while the
// writer never waits for them.
//
// A Log holds the newest bytes in a bounded in-memory ring (allocated as it
// fills, so an idle log costs a few hundred bytes) and all of them in
// append-only segment files in its directory. A read at an offset still in
// the ring is served from memory; an older one from the files. A disk cap
// drops whole segments from the oldest end; reading before the oldest kept
// byte returns a *DroppedError that says where the kept output starts, never
// silently fewer bytes.
//
// Readers are offsets held by their callers: the log has no goroutine and no
// buffer per reader. A reader at the end asks Wait for a channel that is
// closed when more bytes arrive or the log is closed, so it can select on its
// own context at the same time. The writer closes one channel per write, no
// matter how many readers wait. A Reader holds such an offset and follows
// the log with it: Reader.Wait, Reader.ReadChunk and Reader.ReadFollow.
//
// Segment files are named by the offset of their first byte
// (%020d.seg), so a log reopened after a restart has the same offsets. A
// full segment is fsynced, with the directory that names it, before the log
// moves to the next one, and the last one at Close: after a power cut the
// output of a job that ended is all on disk, and that of a running job up
// to its last full segment. Open serves what it finds: a segment missing or
// cut short between two others is a gap that reads as a *DroppedError with
// Missing set, and Open's *DamageError says what it found.
//
// Benchmarks are in BENCHMARKS.md at the top of the repository.
package ringlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Defaults for Options fields left zero.
const (
	DefaultRingSize    = 256 << 10
	DefaultSegmentSize = 64 << 20
	minSegmentSize     = 4 << 10
	minRingAlloc       = 4 << 10
	segmentSuffix      = ".seg"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("ringlog: log is closed")

// ErrPastEnd is returned by a read at an offset beyond the bytes written.
var ErrPastEnd = errors.New("ringlog: offset is past the end of the output")

// DroppedError is returned by a read at an offset whose bytes the disk cap
// has dropped, or, with Missing, whose bytes are missing from a damaged
// log's files (see Open). Start is the offset of the next byte available.
type DroppedError struct {
	Offset  int64 // the offset asked for
	Start   int64 // the first offset available from Offset on
	Missing bool  // the bytes are missing from disk (a gap Open found), not dropped by the cap
}

// Dropped is how many bytes were dropped from the offset asked for to the
// first one kept.
func (e *DroppedError) Dropped() int64 { return e.Start - e.Offset }

func (e *DroppedError) Error() string {
	if e.Missing {
		return fmt.Sprintf("ringlog: output from offset %d to %d is missing from the log's files, which are damaged", e.Offset, e.Start)
	}
	return fmt.Sprintf("ringlog: output before offset %d was dropped by the disk cap (asked for offset %d)", e.Start, e.Offset)
}

// Options configure a Log.
type Options struct {
	// RingSize is how many of the newest bytes are kept in memory
	// (default DefaultRingSize). The ring grows to it as output arrives.
	RingSize int
	// DiskCap bounds the bytes kept on disk; past it whole segments are
	// dropped from the oldest end, so between DiskCap-SegmentSize and
	// DiskCap bytes stay. Zero keeps everything.
	DiskCap int64
	// SegmentSize is the size of one segment file; default DiskCap/8
	// (at least 4 KiB), or DefaultSegmentSize without a cap.
	SegmentSize int64

	// noTimeIndex leaves the time index out (the benchmarks' baseline).
	noTimeIndex bool
}

func (o Options) withDefaults() Options {
	if o.RingSize <= 0 {
		o.RingSize = DefaultRingSize
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
		if o.DiskCap > 0 {
			o.SegmentSize = max(o.DiskCap/8, minSegmentSize)
		}
	}
	if o.DiskCap > 0 && o.SegmentSize > o.DiskCap {
		o.SegmentSize = o.DiskCap
	}
	return o
}

// segment is one file of the log: bytes [base, base+size).
type segment struct {
	base int64
	size int64
	// entries is how many entries its time index holds; first the time
	// of the first (Unix nanoseconds). See timeindex.go.
	entries int64
	first   int64
}

// Log is one job's output. Write and Close are for the single producer;
// every other method may be called from any goroutine.
type Log struct {
	dir  string
	opts Options

	// wmu serialises writers, so that file writes happen outside mu.
	wmu sync.Mutex
	cur *os.File // open segment, the last of segs; nil until the first write
	idx *os.File // its time index; nil when it could not be made
	// lastWrite and lastEntry are the times of the last write and of the
	// last index entry (timeindex.go).
	lastWrite, lastEntry time.Time
	now                  func() time.Time

	mu       sync.Mutex
	segs     []segment // kept segments, oldest first
	size     int64     // offset of the next byte to be written
	start    int64     // offset of the oldest byte kept
	ring     []byte    // ring[o % RingSize] holds byte o while o >= size-ringHeld
	ringHeld int64     // how many of the newest bytes the ring holds
	closed   bool
	removed  bool          // by Remove: every read returns ErrRemoved
	wake     chan struct{} // closed at the next write or Close; nil when nobody waits
	slots    chan struct{} // read slots; made at the first read
	tail     timeEntry     // the newest entry of the time index this Log wrote

	// fsync makes a file durable: (*os.File).Sync, or a test's recorder.
	fsync func(*os.File) error
}

// Create makes a new, empty log in dir, creating dir if needed. It refuses a
// dir that already holds segments.
func Create(dir string, opts Options) (*Log, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ringlog: create %s: %w", dir, err)
	}
	segs, problems, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("ringlog: create %s: %w", dir, err)
	}
	if len(segs) > 0 || len(problems) > 0 {
		return nil, fmt.Errorf("ringlog: create %s: directory already holds a log", dir)
	}
	return &Log{dir: dir, opts: opts.withDefaults(), fsync: (*os.File).Sync, now: time.Now}, nil
}

func (l *Log) segmentPath(base int64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%020d%s", base, segmentSuffix))
}

// syncDir fsyncs the log's directory, which makes the names of its
// segments durable.
func (l *Log) syncDir() error {
	d, err := os.Open(l.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return l.fsync(d)
}

// Write appends p. It never waits for readers: it writes the bytes to the
// open segment file and copies them into the ring, then wakes every waiting
// reader at once. On a file error the bytes written before it are kept and
// readable, and the error says how far the write got.
func (l *Log) Write(p []byte) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	// The time the bytes arrived, for the time index.
	t := l.now()
	defer func() { l.lastWrite = t }()
	written := 0
	for written < len(p) {
		if err := l.ensureSegment(); err != nil {
			l.publish(nil)
			return written, err
		}
		l.mu.Lock()
		last := l.segs[len(l.segs)-1]
		l.mu.Unlock()
		if written == 0 || last.size == 0 {
			l.noteTime(last.base+last.size, t, last.size == 0)
		}
		chunk := p[written:]
		if room := l.opts.SegmentSize - last.size; int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		n, err := l.cur.Write(chunk)
		l.publish(chunk[:n])
		written += n
		if err != nil {
			return written, fmt.Errorf("ringlog: write %s at offset %d: %w", l.cur.Name(), last.base+last.size, err)
		}
	}
	return written, nil
}

// ensureSegment makes sure cur is an open segment with room left, rotating
// to a new file when the last one is full. Called with wmu held.
func (l *Log) ensureSegment() error {
	l.mu.Lock()
	full := len(l.segs) == 0 || l.segs[len(l.segs)-1].size >= l.opts.SegmentSize
	base := l.size
	l.mu.Unlock()
	if l.cur != nil && !full {
		return nil
	}
	old := l.cur
	if old != nil {
		// The full segment reaches the disk before the log moves on; a
		// failure says its bytes may not have.
		if err := l.fsync(old); err != nil {
			return fmt.Errorf("ringlog: sync %s: %w", old.Name(), err)
		}
		if l.idx != nil {
			// Its index too; one that fails loses times, not output.
			_ = l.fsync(l.idx)
			_ = l.idx.Close()
			l.idx = nil
		}
	}
	f, err := os.OpenFile(l.segmentPath(base), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ringlog: new segment at offset %d: %w", base, err)
	}
	if old != nil {
		// A close error loses nothing: every write already returned, and
		// the file is synced.
		_ = old.Close()
	}
	l.cur = f
	if !l.opts.noTimeIndex {
		// A time index that cannot be made leaves the segment without
		// times, not without output.
		l.idx, _ = os.OpenFile(l.indexPath(base), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	}
	l.mu.Lock()
	l.segs = append(l.segs, segment{base: base})
	l.mu.Unlock()
	if old != nil {
		// The names of the synced segment and of the new one. The first
		// segment's name is synced at the next rotation or at Close.
		if err := l.syncDir(); err != nil {
			return fmt.Errorf("ringlog: sync %s: %w", l.dir, err)
		}
	}
	return nil
}

// publish makes b (just written to the open segment) visible to readers:
// ring, sizes, the disk cap, and a wake-up for whoever waits.
func (l *Log) publish(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(b) > 0 {
		l.toRing(b)
		l.segs[len(l.segs)-1].size += int64(len(b))
		l.size += int64(len(b))
		l.dropOldest()
	}
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}

// toRing copies b, the bytes at offsets [size, size+len(b)), into the ring,
// growing it up to RingSize while the log is still smaller than that.
// Called with mu held, before size is advanced.
func (l *Log) toRing(b []byte) {
	rs := int64(l.opts.RingSize)
	off := l.size
	end := l.size + int64(len(b))
	if n := int64(len(b)); n > rs {
		off += n - rs
		b = b[n-rs:]
	}
	if int64(len(l.ring)) < rs && end > int64(len(l.ring)) {
		grow := min(rs, max(2*int64(len(l.ring)), end, minRingAlloc))
		if end > rs {
			grow = rs
		}
		ring := make([]byte, grow)
		copy(ring, l.ring)
		l.ring = ring
	}
	for len(b) > 0 {
		pos := off % rs
		n := copy(l.ring[pos:], b)
		b = b[n:]
		off += int64(n)
	}
	l.ringHeld = min(l.ringHeld+(end-l.size), rs)
}

// dropOldest removes the oldest segments while the kept bytes exceed the
// disk cap; the open segment always stays. Called with mu held.
func (l *Log) dropOldest() {
	if l.opts.DiskCap <= 0 {
		return
	}
	for len(l.segs) > 1 && l.size-l.start > l.opts.DiskCap {
		old := l.segs[0]
		// A segment that cannot be removed is still dropped from the log:
		// the cap bounds what readers are served, and the file is retried
		// by nobody; its error is not the writer's to handle.
		_ = os.Remove(l.segmentPath(old.base))
		_ = os.Remove(l.indexPath(old.base))
		l.segs = l.segs[1:]
		l.start = l.segs[0].base
	}
}

// Close ends the log: Write returns ErrClosed from now on, and readers at
// the end get io.EOF instead of waiting. It fsyncs the open segment, then
// the directory, so that all the output is on disk when Close returns nil.
// It lets go of the ring, so that a closed log kept for its readers holds
// no output in memory; they read it from its files. Close may be called
// more than once.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	var err error
	if l.cur != nil {
		if serr := l.fsync(l.cur); serr != nil {
			err = fmt.Errorf("ringlog: sync %s: %w", l.cur.Name(), serr)
		}
		if cerr := l.cur.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("ringlog: close %s: %w", l.cur.Name(), cerr)
		}
		if l.idx != nil {
			_ = l.fsync(l.idx)
			_ = l.idx.Close()
			l.idx = nil
		}
		if derr := l.syncDir(); derr != nil && err == nil {
			err = fmt.Errorf("ringlog: sync %s: %w", l.dir, derr)
		}
		l.cur = nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.ring, l.ringHeld = nil, 0
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
	return err
}

// Size is the offset the next byte will have: the number of bytes written.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// Start is the offset of the oldest byte still kept.
func (l *Log) Start() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start
}

// Resolve turns an offset as a client gives it into an absolute one: a
// negative offset counts back from the current end, like tail -c, and one
// that reaches back past the oldest kept byte starts there.
func (l *Log) Resolve(off int64) int64 {
	if off >= 0 {
		return off
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if off < l.start-l.size {
		return l.start
	}
	return l.size + off
}

// Wait returns a channel that is closed once the log holds a byte at off or
// is closed. A reader at the end selects on it and on its own context.
func (l *Log) Wait(off int64) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if off < l.size || l.closed {
		return closedChan
	}
	if l.wake == nil {
		l.wake = make(chan struct{})
	}
	return l.wake
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()
