package ringlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// The time index: beside each segment file, <base>.idx holds entries of 16
// bytes, each the offset of a write's first byte and the time it arrived
// (Unix nanoseconds), both little-endian int64, in offset order. It is
// append-only, written with the segment, fsynced with it, and dropped with
// it by the disk cap, so a log reopened after a restart has its times.
//
// A write gets an entry when it follows a pause (quietGap since the last
// write: every write of a quiet job), when the last entry is busyInterval
// old (one a second of a busy job), and always at the start of a segment.
// A segment's index is at most indexAllowance larger than the segment's
// bytes: past its first 4096 entries, a job of tiny writes gets an entry
// for every 16 bytes at most, so the index never holds much more than the
// output it times, and the disk cap that drops the output drops it too.
const (
	indexSuffix  = ".idx"
	entrySize    = 16
	quietGap     = 100 * time.Millisecond
	busyInterval = time.Second
	// indexAllowance is the index a segment may have beyond its size.
	indexAllowance = 4096 * entrySize
)

// timeEntry is an entry of the index: a write's first offset and its time
// (Unix nanoseconds); ok says it is one.
type timeEntry struct {
	off, t int64
	ok     bool
}

func (l *Log) indexPath(base int64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%020d%s", base, indexSuffix))
}

// noteTime records that the bytes written from off on, in the last
// segment, arrived at t, if the rules above want an entry. Called with wmu
// held, before those bytes are published.
func (l *Log) noteTime(off int64, t time.Time, segStart bool) {
	if l.opts.noTimeIndex || l.idx == nil {
		return
	}
	if !segStart && !l.lastWrite.IsZero() && t.Sub(l.lastWrite) < quietGap && t.Sub(l.lastEntry) < busyInterval {
		return
	}
	l.mu.Lock()
	seg := l.segs[len(l.segs)-1]
	l.mu.Unlock()
	if seg.entries*entrySize >= seg.size+indexAllowance {
		return
	}
	var b [entrySize]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(off))
	binary.LittleEndian.PutUint64(b[8:], uint64(t.UnixNano()))
	// An entry that cannot be written loses a time, never output: the
	// bytes are still written, and read with the time of an entry before.
	if _, err := l.idx.Write(b[:]); err != nil {
		return
	}
	l.lastEntry = t
	l.mu.Lock()
	s := &l.segs[len(l.segs)-1]
	if s.entries == 0 {
		s.first = t.UnixNano()
	}
	s.entries++
	l.tail = timeEntry{off: off, t: t.UnixNano(), ok: true}
	l.mu.Unlock()
}

// readEntry reads entry i of an index file.
func readEntry(f *os.File, i int64) (off, t int64, err error) {
	var b [entrySize]byte
	if _, err := f.ReadAt(b[:], i*entrySize); err != nil {
		return 0, 0, err
	}
	return int64(binary.LittleEndian.Uint64(b[:8])), int64(binary.LittleEndian.Uint64(b[8:])), nil
}

// TimeAt returns when the byte at off arrived, as the time index has it
// (that of the last entry at or before off; the zero time when the log has
// no index there, as for a log written before it had one), and next, the
// offset of the next entry after off in its segment or of the next
// segment, where a later time may begin; -1 when there is none yet. A
// reader that wants one time per chunk stops its chunk at next.
func (l *Log) TimeAt(off int64) (t time.Time, next int64) {
	l.mu.Lock()
	if len(l.segs) == 0 || off < l.start || off >= l.size {
		l.mu.Unlock()
		return time.Time{}, -1
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base+l.segs[i].size > off })
	seg := l.segs[i]
	next = -1
	if i+1 < len(l.segs) {
		next = l.segs[i+1].base
	}
	if tail := l.tail; tail.ok && off >= tail.off && tail.off >= seg.base {
		// At or after the newest entry (a follower at the end): no
		// file to read.
		l.mu.Unlock()
		return time.Unix(0, tail.t), next
	}
	l.mu.Unlock()
	if seg.entries == 0 || off < seg.base {
		return time.Time{}, next
	}
	f, err := os.Open(l.indexPath(seg.base))
	if err != nil {
		return time.Time{}, next
	}
	defer f.Close()
	// The last entry at or before off.
	var found int64 = -1
	var ft int64
	lo, hi := int64(0), seg.entries
	for lo < hi {
		mid := (lo + hi) / 2
		eo, et, err := readEntry(f, mid)
		if err != nil {
			return time.Time{}, next
		}
		if eo <= off {
			found, ft = mid, et
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if found < 0 {
		return time.Time{}, next
	}
	if found+1 < seg.entries {
		if eo, _, err := readEntry(f, found+1); err == nil {
			next = eo
		}
	}
	return time.Unix(0, ft), next
}

// OffsetAt returns the offset of the first byte that arrived at or after
// t, as the time index has it: the offset of the first entry at or after
// t; Size when no byte has arrived since; Start when every byte kept
// arrived after t. Segments without an index are passed over. It is never
// past the bytes there are, even when a power cut kept an entry of bytes
// the segment lost.
func (l *Log) OffsetAt(t time.Time) int64 {
	want := t.UnixNano()
	l.mu.Lock()
	segs := append([]segment(nil), l.segs...)
	start, size := l.start, l.size
	l.mu.Unlock()
	// The last indexed segment whose first entry is before t.
	j := -1
	for i, s := range segs {
		if s.entries > 0 && s.first < want {
			j = i
		}
	}
	if j < 0 {
		return start
	}
	seg := segs[j]
	after := size
	for _, s := range segs[j+1:] {
		if s.entries > 0 {
			after = s.base
			break
		}
	}
	f, err := os.Open(l.indexPath(seg.base))
	if err != nil {
		return after
	}
	defer f.Close()
	// The first entry at or after t.
	lo, hi := int64(0), seg.entries
	for lo < hi {
		mid := (lo + hi) / 2
		_, et, err := readEntry(f, mid)
		if err != nil {
			return after
		}
		if et >= want {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if lo == seg.entries {
		return after
	}
	eo, _, err := readEntry(f, lo)
	if err != nil {
		return after
	}
	// An entry past the bytes there are is one whose bytes a power cut
	// lost (entries are written before their bytes).
	return min(eo, after)
}

// openIndex reads what a reopened segment's index holds: how many whole
// entries, and the first one's time. A missing index is none (a log from
// before the index); a torn last entry is left out.
func (l *Log) openIndex(s *segment) error {
	f, err := os.Open(l.indexPath(s.base))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("time index of segment %s: %w", filepath.Base(l.segmentPath(s.base)), err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("time index of segment %s: %w", filepath.Base(l.segmentPath(s.base)), err)
	}
	n := info.Size() / entrySize
	if n == 0 {
		return nil
	}
	_, t, err := readEntry(f, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("time index of segment %s: %w", filepath.Base(l.segmentPath(s.base)), err)
	}
	s.entries, s.first = n, t
	return nil
}

// ReadTimedChunk is ReadChunk for a reader that sends one time per chunk:
// the chunk ends where the time index has a later time than that of its
// first byte, and t is that time (zero when the index has none for it).
//
// The chunk is read first and cut after: every byte read has its entry in
// the index by then, since an entry is written before the bytes it times
// are published. (Looking the time up first would miss an entry of bytes
// that arrive between the look-up and the read, and give them an older
// time.) What is cut off is read again by the next call.
func (r *Reader) ReadTimedChunk(ctx context.Context, p []byte) (n int, off int64, t time.Time, err error) {
	n, off, err = r.ReadChunk(ctx, p)
	if n == 0 || err != nil {
		return n, off, time.Time{}, err
	}
	t, next := r.l.TimeAt(off)
	if next > off && next < off+int64(n) {
		n = int(next - off)
		r.off = next
	}
	return n, off, t, nil
}
