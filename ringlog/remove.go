package ringlog

import (
	"errors"
	"fmt"
	"os"
)

// ErrRemoved is returned by every read of a log after Remove: its bytes
// are gone, and no offset will ever be readable again.
var ErrRemoved = errors.New("ringlog: the log was removed")

// Remove closes the log and deletes its directory. Every read from now on,
// and every read under way that needs a file, returns ErrRemoved; readers
// waiting for output are woken to get it. Remove may be called more than
// once.
func (l *Log) Remove() error {
	// Marked removed before Close wakes the followers, so that none of
	// them reads the end of a closed log (io.EOF) in between.
	l.mu.Lock()
	l.removed = true
	l.mu.Unlock()
	cerr := l.Close()
	l.mu.Lock()
	l.segs = nil
	l.start = l.size
	l.mu.Unlock()
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("ringlog: remove %s: %w", l.dir, err)
	}
	return cerr
}

// vanished is the error of a read at off whose segment file is gone: the
// log was removed (ErrRemoved), the disk cap dropped the bytes (a
// *DroppedError to the new start), or the file went missing under the log
// (a gap to the end of its segment). The error always moves a reader
// forward or ends it: a reader that retried at the same offset would spin.
func (l *Log) vanished(off int64, seg segment) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.removed:
		return ErrRemoved
	case l.start > off:
		return &DroppedError{Offset: off, Start: l.start}
	}
	return &DroppedError{Offset: off, Start: seg.base + seg.size, Missing: true}
}

// Shrink drops the oldest whole segments while the log keeps more than
// keep bytes, as the disk cap does (readers are told of the drop the same
// way); the segment being written always stays. It returns how many bytes
// it dropped.
func (l *Log) Shrink(keep int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	before := l.start
	for len(l.segs) > 1 && l.size-l.start > keep {
		old := l.segs[0]
		_ = os.Remove(l.segmentPath(old.base))
		l.segs = l.segs[1:]
		l.start = l.segs[0].base
	}
	return l.start - before
}

// Kept is how many bytes the log keeps: from its oldest byte kept to its
// end.
func (l *Log) Kept() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size - l.start
}
