//go:build !integration

package ringlog

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// spliceAll splices everything w's bytes bring through the pipe r into l,
// max bytes a call, waiting in poll(2) while the pipe is empty, until the
// pipe's end. It returns every SpliceFrom's count.
func spliceAll(t *testing.T, l *Log, r *os.File, max int) []int {
	t.Helper()
	fd := int(r.Fd())
	var counts []int
	for {
		n, err := l.SpliceFrom(fd, max)
		switch {
		case err == unix.EAGAIN:
			if n != 0 {
				t.Fatalf("SpliceFrom = %d, EAGAIN; want 0 with EAGAIN", n)
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, -1); err != nil && err != unix.EINTR {
				t.Fatal(err)
			}
			continue
		case err != nil:
			t.Fatalf("SpliceFrom: %v", err)
		case n == 0:
			return counts
		}
		if n > max {
			t.Fatalf("SpliceFrom(max %d) moved %d", max, n)
		}
		counts = append(counts, n)
	}
}

// newPipe is a pipe closed at the test's end (closing w before is fine).
func newPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// TestSpliceFrom: bytes spliced from a pipe are the log's, in order, across
// segment boundaries (no call crosses one), readable at any offset, with
// the same sizes and files a Write would have made.
func TestSpliceFrom(t *testing.T) {
	const seg = 8 << 10
	l := newLog(t, Options{RingSize: 1 << 10, SegmentSize: seg})
	r, w := newPipe(t)
	const total = 3*seg + 1234
	want := pattern(0, total)
	go func() {
		defer w.Close()
		for b := want; len(b) > 0; {
			n := min(len(b), 3000)
			w.Write(b[:n])
			b = b[n:]
		}
	}()
	var moved int64
	for _, n := range spliceAll(t, l, r, 5000) {
		if moved/seg != (moved+int64(n)-1)/seg {
			t.Errorf("a splice of %d bytes at %d crosses a segment boundary", n, moved)
		}
		moved += int64(n)
	}
	if moved != total || l.Size() != total {
		t.Fatalf("moved %d, Size() = %d; want %d", moved, l.Size(), total)
	}
	for _, from := range []int64{0, seg - 1, seg, total - 1} {
		got, err := readAll(t, l, from, total, 4096)
		if err != nil || !bytes.Equal(got, want[from:]) {
			t.Fatalf("read from %d: %d bytes, %v; want the %d written", from, len(got), err, total-from)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, problems, err := listSegments(l.dir)
	if err != nil || len(problems) > 0 || len(segs) != 4 {
		t.Fatalf("segments %v, problems %v, %v; want 4", segs, problems, err)
	}
	for i, s := range segs {
		if want := min(int64(seg), total-s.base); s.base != int64(i)*seg || s.size != want {
			t.Errorf("segment %d: base %d size %d, want %d and %d", i, s.base, s.size, int64(i)*seg, want)
		}
	}
}

// TestSpliceFromEmptyPipe: an empty pipe whose writer is still open is
// EAGAIN, with nothing moved; one whose writer closed is its end (0, nil).
func TestSpliceFromEmptyPipe(t *testing.T) {
	l := newLog(t, Options{})
	r, w := newPipe(t)
	if n, err := l.SpliceFrom(int(r.Fd()), 1024); n != 0 || err != unix.EAGAIN {
		t.Errorf("SpliceFrom(empty pipe) = %d, %v; want 0, EAGAIN", n, err)
	}
	w.Close()
	if n, err := l.SpliceFrom(int(r.Fd()), 1024); n != 0 || err != nil {
		t.Errorf("SpliceFrom(closed pipe) = %d, %v; want 0, nil", n, err)
	}
	if l.Size() != 0 {
		t.Errorf("Size() = %d, want 0", l.Size())
	}
}

// TestSpliceFromNotAPipe: a descriptor splice cannot take is ErrNoSplice,
// with nothing moved, and the log still takes Write.
func TestSpliceFromNotAPipe(t *testing.T) {
	l := newLog(t, Options{})
	f, err := os.CreateTemp(t.TempDir(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("not a pipe")
	f.Seek(0, io.SeekStart)
	if n, err := l.SpliceFrom(int(f.Fd()), 1024); n != 0 || !errors.Is(err, ErrNoSplice) {
		t.Fatalf("SpliceFrom(a regular file) = %d, %v; want 0, ErrNoSplice", n, err)
	}
	mustWrite(t, l, []byte("written"))
	if got, err := readAll(t, l, 0, l.Size(), 64); err != nil || string(got) != "written" {
		t.Fatalf("read = %q, %v; want %q", got, err, "written")
	}
}

// TestSpliceFromAfterClose is ErrClosed, as Write is.
func TestSpliceFromAfterClose(t *testing.T) {
	l := newLog(t, Options{})
	r, w := newPipe(t)
	w.WriteString("late")
	l.Close()
	if n, err := l.SpliceFrom(int(r.Fd()), 1024); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("SpliceFrom after Close = %d, %v; want 0, ErrClosed", n, err)
	}
}

// ringHolds is how many of the newest bytes l's ring holds, and whether
// they are the pattern's.
func ringHolds(l *Log) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := make([]byte, l.ringHeld)
	l.copyFromRing(got, l.size-l.ringHeld)
	return l.ringHeld, bytes.Equal(got, pattern(l.size-l.ringHeld, l.ringHeld))
}

// TestSpliceAndWrite: splices and writes of every size about the ring's
// (smaller, equal, larger, wrapping it) leave the ring holding the newest
// bytes, as writes alone do; every byte reads back at its offset; a
// reader waiting at the end is woken by a splice; each splice gets its
// time, as a write does.
func TestSpliceAndWrite(t *testing.T) {
	const ring = 64
	l, c := createClocked(t, t.TempDir(), Options{RingSize: ring, SegmentSize: 4096})
	defer l.Close()
	r, w := newPipe(t)
	var size int64
	times := map[int64]time.Duration{}
	for i, step := range []struct {
		splice bool
		n      int64
	}{{true, 10}, {false, 40}, {true, 30}, {true, ring}, {false, 1}, {true, ring + 1}, {true, 200}, {false, 7}, {true, 63}, {true, 1}, {true, 5000}} {
		c.advance(time.Second) // each step after a pause: an entry each
		times[size] = time.Duration(i+1) * time.Second
		if step.splice {
			wake := l.Wait(size)
			w.Write(pattern(size, step.n))
			var got int64
			for got < step.n {
				n, err := l.SpliceFrom(int(r.Fd()), 1<<20)
				if err != nil || n == 0 {
					t.Fatalf("step %d: SpliceFrom = %d, %v after %d of %d", i, n, err, got, step.n)
				}
				got += int64(n)
			}
			select {
			case <-wake:
			default:
				t.Fatalf("step %d: a reader waiting at offset %d was not woken by the splice", i, size)
			}
		} else {
			mustWrite(t, l, pattern(size, step.n))
		}
		size += step.n
		held, ok := ringHolds(l)
		if held != min(size, ring) || !ok {
			t.Fatalf("step %d (splice %v of %d): the ring holds %d of the newest bytes (right: %v), want %d", i, step.splice, step.n, held, ok, min(size, ring))
		}
	}
	got, err := readAll(t, l, 0, size, 7)
	if err != nil || !bytes.Equal(got, pattern(0, size)) {
		t.Fatalf("read [0,%d): %d bytes, %v; want the pattern", size, len(got), err)
	}
	for off, want := range times {
		if got, _ := l.TimeAt(off); !got.Equal(c.at(want)) {
			t.Errorf("TimeAt(%d) = %v, want %v", off, got, c.at(want))
		}
	}
}
