//go:build !integration

package ringlog

import (
	"bytes"
	"context"
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

// TestSpliceFrom: bytes spliced from a pipe are the log's, in order, across
// segment boundaries (no call crosses one), readable at any offset, with
// the same sizes and files a Write would have made.
func TestSpliceFrom(t *testing.T) {
	const seg = 8 << 10
	l := newLog(t, Options{RingSize: 1 << 10, SegmentSize: seg})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
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
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
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
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	w.WriteString("late")
	l.Close()
	if n, err := l.SpliceFrom(int(r.Fd()), 1024); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("SpliceFrom after Close = %d, %v; want 0, ErrClosed", n, err)
	}
}

// TestSpliceAndWrite: spliced bytes are not in the ring, so a read of them
// comes from the file, while bytes written after them are read from the
// ring again; a reader waiting at the end is woken by a splice; each splice
// gets its time, as a Write does.
func TestSpliceAndWrite(t *testing.T) {
	l, c := createClocked(t, t.TempDir(), Options{RingSize: 64})
	mustWrite(t, l, pattern(0, 40)) // in the ring
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	wake := l.Wait(40)
	w.Write(pattern(40, 30))
	c.advance(time.Second)
	if n, err := l.SpliceFrom(int(r.Fd()), 1024); n != 30 || err != nil {
		t.Fatalf("SpliceFrom = %d, %v; want 30, nil", n, err)
	}
	select {
	case <-wake:
	default:
		t.Fatal("a reader waiting at offset 40 was not woken by the splice")
	}
	l.mu.Lock()
	held := l.ringHeld
	l.mu.Unlock()
	if held != 0 {
		t.Errorf("the ring holds %d of the newest bytes after a splice, want 0", held)
	}
	c.advance(time.Second)
	mustWrite(t, l, pattern(70, 10))
	l.mu.Lock()
	held = l.ringHeld
	l.mu.Unlock()
	if held != 10 {
		t.Errorf("the ring holds %d of the newest bytes after a write of 10, want 10", held)
	}
	got, err := readAll(t, l, 0, 80, 7)
	if err != nil || !bytes.Equal(got, pattern(0, 80)) {
		t.Fatalf("read [0,80) = %v, %v; want the pattern", got, err)
	}
	for _, tc := range []struct {
		off  int64
		want time.Duration
	}{{0, 0}, {40, time.Second}, {70, 2 * time.Second}} {
		if got, _ := l.TimeAt(tc.off); !got.Equal(c.at(tc.want)) {
			t.Errorf("TimeAt(%d) = %v, want %v", tc.off, got, c.at(tc.want))
		}
	}
	rd := l.NewReader(context.Background(), 40, false)
	defer rd.Close()
	buf := make([]byte, 64)
	n, off, err := rd.ReadChunk(context.Background(), buf)
	if err != nil || off != 40 || !bytes.Equal(buf[:n], pattern(40, int64(n))) || n == 0 {
		t.Fatalf("ReadChunk from 40 = %d bytes at %d, %v", n, off, err)
	}
}
