//go:build !integration

package ringlog

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"testing/synctest"
)

// readToEnd reads r with ReadChunk until it returns io.EOF or an error
// other than a drop, at most limit calls, and returns that error (nil if
// the limit came first: a reader that spins).
func readToEnd(r *Reader, limit int) (calls int, err error) {
	buf := make([]byte, 4<<10)
	for calls = 1; calls <= limit; calls++ {
		_, _, err := r.ReadChunk(context.Background(), buf)
		var de *DroppedError
		if errors.As(err, &de) {
			continue
		}
		if err != nil {
			return calls, err
		}
	}
	return limit, nil
}

// TestReaderOfVanishedFilesMovesOn: a reader whose segment files were
// deleted under the log (the log not told) is told of a gap that moves it
// forward, segment by segment, to the end; it never gets the same drop
// again and again.
func TestReaderOfVanishedFilesMovesOn(t *testing.T) {
	l := newLog(t, Options{SegmentSize: 4 << 10})
	mustWrite(t, l, pattern(0, 40<<10))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := l.NewReader(context.Background(), 0, false)
	defer r.Close()
	if err := os.RemoveAll(l.dir); err != nil {
		t.Fatal(err)
	}
	calls, err := readToEnd(r, 100)
	if err != io.EOF {
		t.Fatalf("a reader of deleted files after %d reads: %v, want io.EOF within 100 reads", calls, err)
	}
	if calls > 11 {
		t.Errorf("a reader of 10 deleted segments took %d reads to the end, want at most 11", calls)
	}
}

// TestRemovedLogReadsErrRemoved: after Remove, every read is ErrRemoved
// (a reader in the files, one in the ring, ReadAt), the directory is gone,
// and a follower waiting at the end of an open log is woken to get it.
func TestRemovedLogReadsErrRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLog(t, Options{SegmentSize: 4 << 10})
		mustWrite(t, l, pattern(0, 40<<10))
		old := l.NewReader(context.Background(), 0, false)
		defer old.Close()
		buf := make([]byte, 16)
		if _, _, err := old.ReadChunk(context.Background(), buf); err != nil {
			t.Fatal(err)
		}
		follower := l.NewReader(context.Background(), l.Size(), false)
		defer follower.Close()
		got := make(chan error, 1)
		go func() {
			_, _, err := follower.ReadFollow(context.Background(), buf)
			got <- err
		}()
		synctest.Wait()
		if err := l.Remove(); err != nil {
			t.Fatal(err)
		}
		if err := <-got; !errors.Is(err, ErrRemoved) {
			t.Errorf("a follower woken by Remove: %v, want ErrRemoved", err)
		}
		if _, err := readToEnd(old, 100); !errors.Is(err, ErrRemoved) {
			t.Errorf("a reader in the files after Remove: %v, want ErrRemoved", err)
		}
		if _, err := l.ReadAt(buf, l.Size()-1); !errors.Is(err, ErrRemoved) {
			t.Errorf("ReadAt after Remove: %v, want ErrRemoved", err)
		}
		if _, err := os.Stat(l.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the log's directory after Remove: %v, want it gone", err)
		}
		if err := l.Remove(); err != nil {
			t.Errorf("a second Remove: %v", err)
		}
	})
}

// TestShrink: Shrink drops whole segments from the oldest end, never the
// one being written, and a reader is told of the drop as at the cap.
func TestShrink(t *testing.T) {
	l := newLog(t, Options{SegmentSize: 4 << 10})
	mustWrite(t, l, pattern(0, 40<<10))
	if got := l.Shrink(10 << 10); got != 32<<10 || l.Kept() != 8<<10 {
		t.Errorf("Shrink(10 KiB) of 40 KiB in 4 KiB segments dropped %d and keeps %d, want 32 KiB dropped, 8 KiB kept", got, l.Kept())
	}
	r := l.NewReader(context.Background(), 0, false)
	defer r.Close()
	_, _, err := r.ReadChunk(context.Background(), make([]byte, 16))
	var de *DroppedError
	if !errors.As(err, &de) || de.Start != 32<<10 || de.Missing {
		t.Errorf("a reader from 0 after Shrink: %v, want a drop to 32 KiB", err)
	}
	if got := l.Shrink(0); got != 4<<10 || l.Kept() != 4<<10 {
		t.Errorf("Shrink(0) dropped %d and keeps %d, want the last segment kept", got, l.Kept())
	}
}
