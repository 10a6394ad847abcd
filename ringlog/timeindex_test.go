//go:build !integration

package ringlog

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clock is a fake time for a Log's writes.
type clock struct{ t time.Time }

func (c *clock) now() time.Time               { return c.t }
func (c *clock) advance(d time.Duration)      { c.t = c.t.Add(d) }
func newClock() *clock                        { return &clock{t: time.Unix(1_700_000_000, 0)} }
func (c *clock) at(d time.Duration) time.Time { return time.Unix(1_700_000_000, 0).Add(d) }

func timeAt(t *testing.T, l *Log, off int64) (time.Time, int64) {
	t.Helper()
	return l.TimeAt(off)
}

// TestTimeIndex: every write of a quiet job gets its time, a busy job one a
// second; TimeAt gives each byte the time of the entry at or before it and
// where the next begins; OffsetAt finds the first byte at or after a time;
// all of it the same after the log is reopened.
func TestTimeIndex(t *testing.T) {
	dir := t.TempDir()
	l, c := createClocked(t, dir, Options{})
	mustWrite(t, l, []byte("quiet 1\n")) // 0..7 at 0
	c.advance(5 * time.Second)
	mustWrite(t, l, []byte("quiet 2\n")) // 8..15 at 5s
	c.advance(5 * time.Second)
	// Busy: a write every 10ms for 2.5s from 10s: entries at 10s, 11s, 12s.
	for range 250 {
		mustWrite(t, l, []byte("busy\n"))
		c.advance(10 * time.Millisecond)
	}
	checks := func(l *Log) {
		t.Helper()
		for _, c2 := range []struct {
			off      int64
			want     time.Duration
			wantNext int64
		}{
			{0, 0, 8},
			{7, 0, 8},
			{8, 5 * time.Second, 16},
			{16, 10 * time.Second, 16 + 5*100},
			{16 + 5*99, 10 * time.Second, 16 + 5*100},
			{16 + 5*100, 11 * time.Second, 16 + 5*200},
			{16 + 5*249, 12 * time.Second, -1},
		} {
			got, next := timeAt(t, l, c2.off)
			if !got.Equal(c.at(c2.want)) || next != c2.wantNext {
				t.Errorf("TimeAt(%d) = %v, %d; want %v, %d", c2.off, got.Sub(c.at(0)), next, c2.want, c2.wantNext)
			}
		}
		for _, c2 := range []struct {
			at   time.Duration
			want int64
		}{
			{-time.Second, 0},
			{0, 0},
			{time.Second, 8},
			{5 * time.Second, 8},
			{6 * time.Second, 16},
			{10*time.Second + time.Nanosecond, 16 + 5*100},
			{12 * time.Second, 16 + 5*200},
			{13 * time.Second, l.Size()},
		} {
			if got := l.OffsetAt(c.at(c2.at)); got != c2.want {
				t.Errorf("OffsetAt(%v) = %d, want %d", c2.at, got, c2.want)
			}
		}
	}
	checks(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checks(r)
}

// TestTimeIndexSegments: every segment's index starts with the time of its
// first byte, even mid-write; the disk cap drops an index with its
// segment; a byte no longer kept has no time.
func TestTimeIndexSegments(t *testing.T) {
	dir := t.TempDir()
	l, c := createClocked(t, dir, Options{SegmentSize: 4 << 10, DiskCap: 8 << 10})
	mustWrite(t, l, make([]byte, 6<<10)) // spans two segments at 0
	c.advance(time.Minute)
	mustWrite(t, l, make([]byte, 1<<10)) // at 1m, in the second
	if got, next := l.TimeAt(4 << 10); !got.Equal(c.at(0)) || next != 6<<10 {
		t.Errorf("TimeAt(4K) = %v, %d; want the first write's time, next 6K", got, next)
	}
	if got, next := l.TimeAt(0); !got.Equal(c.at(0)) || next != 4<<10 {
		t.Errorf("TimeAt(0) = %v, %d; want the first write's time, next the second segment", got, next)
	}
	c.advance(time.Minute)
	mustWrite(t, l, make([]byte, 4<<10)) // to 11K: the first segment goes
	if l.Start() != 4<<10 {
		t.Fatalf("start %d, want 4K", l.Start())
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000000.idx")); !os.IsNotExist(err) {
		t.Errorf("the dropped segment's index: %v, want it gone", err)
	}
	if got, _ := l.TimeAt(0); !got.IsZero() {
		t.Errorf("TimeAt of a dropped byte = %v, want none", got)
	}
	if got := l.OffsetAt(c.at(-time.Hour)); got != 4<<10 {
		t.Errorf("OffsetAt before everything = %d, want the start, 4K", got)
	}
	l.Close()
}

// TestTimeIndexBounded: a job of tiny writes, each after a pause, gets an
// entry for each of its first 4096, then one for every 16 bytes: an index
// no larger than its output and the allowance.
func TestTimeIndexBounded(t *testing.T) {
	dir := t.TempDir()
	l, c := createClocked(t, dir, Options{})
	const writes = 16384
	for range writes {
		mustWrite(t, l, []byte("x"))
		c.advance(time.Second)
	}
	l.Close()
	info, err := os.Stat(filepath.Join(dir, "00000000000000000000.idx"))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(writes + indexAllowance); info.Size() > want+entrySize || info.Size() < want-entrySize {
		t.Errorf("index of %d one-byte writes: %d bytes, want about %d", writes, info.Size(), want)
	}
}

// TestTimeIndexTornEntry: a reopened log whose index ends in part of an
// entry (a power cut mid-write) uses the whole entries; one without an
// index (written before it) has no times.
func TestTimeIndexTornEntry(t *testing.T) {
	dir := t.TempDir()
	l, c := createClocked(t, dir, Options{})
	mustWrite(t, l, []byte("one\n"))
	c.advance(time.Second)
	mustWrite(t, l, []byte("two\n"))
	l.Close()
	idx := filepath.Join(dir, "00000000000000000000.idx")
	f, err := os.OpenFile(idx, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("torn"))
	f.Close()
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, next := r.TimeAt(5); !got.Equal(c.at(time.Second)) || next != -1 {
		t.Errorf("TimeAt(5) after a torn entry = %v, %d; want 1s, -1", got, next)
	}
	os.Remove(idx)
	r, err = Open(dir, Options{})
	if err != nil && !strings.Contains(err.Error(), "time index") {
		t.Fatal(err)
	}
	if got, _ := r.TimeAt(5); !got.IsZero() {
		t.Errorf("TimeAt without an index = %v, want none", got)
	}
}

// TestReadTimedChunk: a reader reading timed chunks, also at the end, while
// the writer goes on writing, each write a second after the one before (so
// each has an entry of its own), gets chunks each of one write's bytes,
// with that write's time, and every byte once, in order.
func TestReadTimedChunk(t *testing.T) {
	l, c := createClocked(t, t.TempDir(), Options{RingSize: 64 << 10})
	const writes, size = 20000, 24
	go func() {
		// Write i: its number, three times, at i seconds.
		b := make([]byte, size)
		for i := range writes {
			for j := 0; j < size; j += 8 {
				binary.LittleEndian.PutUint64(b[j:], uint64(i))
			}
			if _, err := l.Write(b); err != nil {
				t.Error(err)
				break
			}
			c.advance(time.Second)
		}
		l.Close()
	}()
	ctx := context.Background()
	r := l.NewReader(ctx, 0, true)
	defer r.Close()
	buf := make([]byte, 4096)
	var want int64
	for chunks := 0; ; chunks++ {
		// No Wait: the reader reads at the end while the writer writes,
		// as the last read of a reader that does not follow does.
		n, off, at, err := r.ReadTimedChunk(ctx, buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			continue
		}
		if off != want {
			t.Fatalf("chunk at %d, want %d", off, want)
		}
		first, last := off/size, (off+int64(n)-1)/size
		if first != last {
			t.Fatalf("chunk %d at offset %d (%d bytes, time %v) holds bytes of writes %d to %d", chunks, off, n, at.Sub(c.at(0)), first, last)
		}
		for o := (off + 7) / 8 * 8; o+8 <= off+int64(n); o += 8 {
			if w := binary.LittleEndian.Uint64(buf[o-off:]); int64(w) != first {
				t.Fatalf("chunk at %d: bytes of write %d at %d, want %d", off, w, o, first)
			}
		}
		if !at.Equal(c.at(time.Duration(first) * time.Second)) {
			t.Fatalf("chunk at %d, of write %d: time %v, want %v", off, first, at.Sub(c.at(0)), time.Duration(first)*time.Second)
		}
		want = off + int64(n)
	}
	if want != writes*size {
		t.Errorf("read %d bytes, want %d", want, writes*size)
	}
}

// TestTimeIndexAheadOfOutput: after a power cut the index may keep an
// entry of bytes the segment lost (an entry is written before its bytes);
// OffsetAt never answers past the bytes there are, and TimeAt gives the
// bytes that are their own times.
func TestTimeIndexAheadOfOutput(t *testing.T) {
	dir := t.TempDir()
	l, c := createClocked(t, dir, Options{})
	mustWrite(t, l, []byte("kept\n"))
	c.advance(time.Second)
	mustWrite(t, l, []byte("lost\n"))
	l.Close()
	seg := filepath.Join(dir, "00000000000000000000.seg")
	if err := os.Truncate(seg, 3); err != nil { // "kep": the end of the first write lost too
		t.Fatal(err)
	}
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.OffsetAt(c.at(time.Second)); got != r.Size() {
		t.Errorf("OffsetAt of the lost bytes' time = %d, want the end, %d", got, r.Size())
	}
	if got, _ := r.TimeAt(2); !got.Equal(c.at(0)) {
		t.Errorf("TimeAt(2) = %v, want the first write's time", got)
	}
}

// createClocked creates a log in dir whose writes take their times from
// the clock it returns.
func createClocked(t *testing.T, dir string, opts Options) (*Log, *clock) {
	t.Helper()
	l, err := Create(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	l.now = c.now
	return l, c
}
