//go:build !integration

package ringlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pattern returns n bytes that differ at every offset modulo 251, NULs
// included, so a byte read at the wrong offset shows.
func pattern(from, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((from + int64(i)) % 251)
	}
	return b
}

func newLog(t testing.TB, opts Options) *Log {
	t.Helper()
	l, err := Create(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustWrite(t testing.TB, l *Log, b []byte) {
	t.Helper()
	n, err := l.Write(b)
	if err != nil || n != len(b) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(b), n, err)
	}
}

// readAll reads [from, to) with ReadAt, looping over short reads.
func readAll(t testing.TB, l *Log, from, to int64, bufSize int) ([]byte, error) {
	t.Helper()
	var out []byte
	buf := make([]byte, bufSize)
	for off := from; off < to; {
		n, err := l.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err != nil {
			return out, err
		}
		if n == 0 {
			t.Fatalf("ReadAt at %d of %d returned nothing and no error", off, to)
		}
	}
	return out, nil
}

// TestBoundaries writes a sequence of sizes and reads back ranges, covering
// the ring's edges (empty, exactly full, wrapped by one byte), reads that
// span ring and file, and segment edges.
func TestBoundaries(t *testing.T) {
	const ring = 64
	tests := []struct {
		name    string
		opts    Options
		writes  []int
		from    int64
		to      int64 // 0: the end
		bufSize int
	}{
		{"empty log", Options{RingSize: ring}, nil, 0, 0, 16},
		{"one byte", Options{RingSize: ring}, []int{1}, 0, 0, 16},
		{"ring exactly full", Options{RingSize: ring}, []int{ring}, 0, 0, 16},
		{"ring full in small writes", Options{RingSize: ring}, []int{1, 31, 32}, 0, 0, 7},
		{"wrapped by one byte", Options{RingSize: ring}, []int{ring, 1}, 0, 0, 16},
		{"wrapped by one byte, read the ring only", Options{RingSize: ring}, []int{ring, 1}, 1, 0, 100},
		{"wrapped by one byte, first byte from file", Options{RingSize: ring}, []int{ring, 1}, 0, 1, 100},
		{"read spanning file and ring", Options{RingSize: ring}, []int{200}, 100, 0, 100},
		{"write larger than the ring", Options{RingSize: ring}, []int{10, 1000}, 0, 0, 33},
		{"write larger than ring, last ring byte", Options{RingSize: ring}, []int{1000}, 999, 0, 8},
		{"segment boundary", Options{RingSize: ring, SegmentSize: 4096}, []int{4096, 1}, 4000, 0, 4096},
		{"write across segments", Options{RingSize: ring, SegmentSize: 4096}, []int{10000}, 0, 0, 5000},
		{"big buffer small data", Options{RingSize: ring}, []int{3}, 0, 0, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLog(t, tt.opts)
			var total int64
			for _, w := range tt.writes {
				mustWrite(t, l, pattern(total, int64(w)))
				total += int64(w)
			}
			if got := l.Size(); got != total {
				t.Fatalf("Size() = %d, want %d", got, total)
			}
			to := tt.to
			if to == 0 {
				to = total
			}
			got, err := readAll(t, l, tt.from, to, tt.bufSize)
			if err != nil {
				t.Fatalf("read [%d,%d): %v", tt.from, to, err)
			}
			if want := pattern(tt.from, to-tt.from); !bytes.Equal(got, want) {
				t.Fatalf("read [%d,%d) = %v, want %v", tt.from, to, got, want)
			}
			// At the end of an open log: nothing, no error; closed: io.EOF.
			if n, err := l.ReadAt(make([]byte, 8), total); n != 0 || err != nil {
				t.Errorf("ReadAt(end) open = %d, %v; want 0, nil", n, err)
			}
			if _, err := l.ReadAt(make([]byte, 8), total+1); !errors.Is(err, ErrPastEnd) {
				t.Errorf("ReadAt(end+1) error = %v, want ErrPastEnd", err)
			}
			l.Close()
			if n, err := l.ReadAt(make([]byte, 8), total); n != 0 || err != io.EOF {
				t.Errorf("ReadAt(end) closed = %d, %v; want 0, io.EOF", n, err)
			}
		})
	}
}

func TestWriteAfterClose(t *testing.T) {
	l := newLog(t, Options{})
	mustWrite(t, l, []byte("a"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Write([]byte("b")); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %d, %v; want 0, ErrClosed", n, err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// TestCloseReleasesRing: a closed log, kept for its readers, holds no
// output in memory, and every byte still reads back from its files.
func TestCloseReleasesRing(t *testing.T) {
	l := newLog(t, Options{RingSize: 4096, SegmentSize: 1000})
	want := make([]byte, 10000)
	for i := range want {
		want[i] = byte(i * 7)
	}
	mustWrite(t, l, want)
	if l.ringHeld == 0 {
		t.Fatal("the open log holds nothing in its ring")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.ring != nil || l.ringHeld != 0 {
		t.Errorf("after Close the ring holds %d bytes (%d allocated)", l.ringHeld, len(l.ring))
	}
	got := make([]byte, len(want))
	for n := 0; n < len(got); {
		k, err := l.ReadAt(got[n:], int64(n))
		if err != nil {
			t.Fatalf("ReadAt(%d) after Close: %v", n, err)
		}
		n += k
	}
	if !bytes.Equal(got, want) {
		t.Error("the closed log reads back other bytes")
	}
}

// TestDiskCap checks that past the cap the oldest segments go, that reading
// them returns a DroppedError naming the first kept offset, and that what is
// kept reads back exactly.
func TestDiskCap(t *testing.T) {
	const seg = 4096
	l := newLog(t, Options{RingSize: 1024, DiskCap: 4 * seg, SegmentSize: seg})
	var total int64
	for total < 10*seg+100 {
		mustWrite(t, l, pattern(total, 1000))
		total += 1000
	}
	start := l.Start()
	if kept := total - start; kept > 4*seg || kept < 3*seg {
		t.Fatalf("kept %d bytes (start %d, size %d), want between %d and %d", kept, start, total, 3*seg, 4*seg)
	}
	if start%seg != 0 {
		t.Fatalf("Start() = %d, want a segment boundary", start)
	}
	for _, off := range []int64{0, 1, start - 1} {
		_, err := l.ReadAt(make([]byte, 10), off)
		var de *DroppedError
		if !errors.As(err, &de) || de.Start != start || de.Offset != off {
			t.Errorf("ReadAt(%d) error = %v, want DroppedError{Offset: %d, Start: %d}", off, err, off, start)
		}
	}
	got, err := readAll(t, l, start, total, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pattern(start, total-start)) {
		t.Fatal("kept output differs from what was written")
	}
	files, _ := filepath.Glob(filepath.Join(l.dir, "*"+segmentSuffix))
	var onDisk int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		onDisk += fi.Size()
	}
	if onDisk != total-start {
		t.Errorf("segment files hold %d bytes, want %d", onDisk, total-start)
	}
}

func TestResolveNegativeOffsets(t *testing.T) {
	const seg = 4096
	l := newLog(t, Options{RingSize: 1024, DiskCap: 2 * seg, SegmentSize: seg})
	if got := l.Resolve(-5); got != 0 {
		t.Errorf("empty log: Resolve(-5) = %d, want 0", got)
	}
	mustWrite(t, l, pattern(0, 100))
	tests := []struct{ in, want int64 }{
		{0, 0}, {7, 7}, {100, 100}, {-1, 99}, {-100, 0}, {-101, 0}, {-1 << 62, 0},
	}
	for _, tt := range tests {
		if got := l.Resolve(tt.in); got != tt.want {
			t.Errorf("Resolve(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
	mustWrite(t, l, pattern(100, 4*seg))
	start, size := l.Start(), l.Size()
	if got := l.Resolve(-(size - start + 1)); got != start {
		t.Errorf("Resolve past the dropped start = %d, want %d", got, start)
	}
	r := l.NewReader(context.Background(), -10, false)
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pattern(size-10, 10)) {
		t.Errorf("reader at -10 = %v, %v; want the last 10 bytes", got, err)
	}
}

// TestCloseWakesWaitingReaders: readers waiting at the end of an open log
// get io.EOF when it is closed, and a reader whose context ends gets its
// error, without any byte written. It runs in a synctest bubble:
// synctest.Wait returns only once every other goroutine of the bubble is
// durably blocked, which for a reader at the end of the log is on the
// log's wake channel, so each reader is parked before it is woken.
func TestCloseWakesWaitingReaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLog(t, Options{})
		mustWrite(t, l, []byte("x"))
		const readers = 10
		errs := make(chan error, readers)
		for range readers {
			go func() {
				_, _, err := l.NewReader(context.Background(), 1, false).ReadFollow(context.Background(), make([]byte, 8))
				errs <- err
			}()
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancelled := make(chan error, 1)
		go func() {
			_, _, err := l.NewReader(context.Background(), 1, false).ReadFollow(ctx, make([]byte, 8))
			cancelled <- err
		}()

		// Wait until all are parked on the wake channel.
		synctest.Wait()
		if n := len(errs) + len(cancelled); n != 0 {
			t.Fatalf("%d readers returned before anything happened, want all waiting", n)
		}
		if !waiting(l) {
			t.Fatal("no wake channel after the readers parked, want one they wait on")
		}

		// The cancelled reader wakes alone.
		cancel()
		synctest.Wait()
		select {
		case err := <-cancelled:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("ReadFollow after cancel = %v, want context.Canceled", err)
			}
		default:
			t.Fatal("ReadFollow still waiting after its context was cancelled")
		}
		if n := len(errs); n != 0 {
			t.Fatalf("%d readers returned at another reader's cancel, want all waiting", n)
		}

		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := len(errs); n != readers {
			t.Fatalf("%d of %d parked readers returned after Close, want all", n, readers)
		}
		for range readers {
			if err := <-errs; err != io.EOF {
				t.Errorf("ReadFollow after Close = %v, want io.EOF", err)
			}
		}
	})
}

// waiting reports whether l has a wake channel, which Wait makes for a
// reader at the end and a write or Close closes.
func waiting(l *Log) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wake != nil
}

// TestWaitWakesOnWrite: the channel from Wait at the end is closed by the
// next write, and one from before the end is closed already.
func TestWaitWakesOnWrite(t *testing.T) {
	l := newLog(t, Options{})
	ch := l.Wait(0)
	select {
	case <-ch:
		t.Fatal("Wait(0) on an empty log is already closed")
	default:
	}
	mustWrite(t, l, []byte("ab"))
	<-ch // closed by the write; a hang here fails the test by timeout
	select {
	case <-l.Wait(1):
	default:
		t.Fatal("Wait(1) with 2 bytes written is not closed")
	}
}

// TestConcurrentReaders: one writer, 100 readers (a third starting late, a
// third slow with tiny buffers), each gets the byte-exact stream.
func TestConcurrentReaders(t *testing.T) {
	const (
		total   = 8 << 20
		readers = 100
	)
	l := newLog(t, Options{RingSize: 64 << 10, SegmentSize: 1 << 20})
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	want := sha256.Sum256(data)

	var wg sync.WaitGroup
	sums := make([][32]byte, readers)
	errs := make([]error, readers)
	startLate := make(chan struct{})
	lateStarted := false
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%3 == 1 {
				<-startLate
			}
			bufSize := 32 << 10
			if i%3 == 2 {
				bufSize = 500 + 13*i // slow: small reads, many wake-ups
			}
			h := sha256.New()
			r := l.NewReader(context.Background(), 0, true)
			defer r.Close()
			_, errs[i] = io.CopyBuffer(h, onlyReader{r}, make([]byte, bufSize))
			copy(sums[i][:], h.Sum(nil))
		}()
	}
	for off := 0; off < total; {
		n := min(1+rng.IntN(100<<10), total-off)
		mustWrite(t, l, data[off:off+n])
		off += n
		if off > total/2 && !lateStarted {
			close(startLate)
			lateStarted = true
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := range readers {
		if errs[i] != nil || sums[i] != want {
			t.Errorf("reader %d: error %v, checksum match %v", i, errs[i], sums[i] == want)
		}
	}
}

// onlyReader hides WriterTo/ReaderFrom so CopyBuffer uses the buffer.
type onlyReader struct{ io.Reader }

// TestReopen: a log reopened from its directory reads the same bytes at the
// same offsets, including after the disk cap dropped some, and refuses
// writes.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{RingSize: 100, DiskCap: 8192, SegmentSize: 2048}
	l, err := Create(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, l, pattern(0, 10000))
	mustWrite(t, l, []byte{0, 0, 'x'}) // NULs and no trailing newline
	size, start := l.Size(), l.Start()
	if start == 0 {
		t.Fatalf("Start() = 0 after %d bytes with DiskCap %d, want the cap to have dropped some", size, opts.DiskCap)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir, opts); err == nil {
		t.Fatal("Create on a directory holding a log succeeded")
	}

	r, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != size || r.Start() != start {
		t.Fatalf("reopened size/start = %d/%d, want %d/%d", r.Size(), r.Start(), size, start)
	}
	got, err := io.ReadAll(r.NewReader(context.Background(), start, true))
	if err != nil {
		t.Fatal(err)
	}
	want := append(pattern(start, 10000-start), 0, 0, 'x')
	if !bytes.Equal(got, want) {
		t.Fatalf("reopened log differs from what was written (%d vs %d bytes)", len(got), len(want))
	}
	if _, err := r.Write([]byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write to a reopened log = %v, want ErrClosed", err)
	}
	var de *DroppedError
	if _, err := r.ReadAt(make([]byte, 1), 0); !errors.As(err, &de) || de.Offset != 0 || de.Start != start {
		t.Fatalf("reopened ReadAt(0) = %v, want DroppedError{Offset: 0, Start: %d}", err, start)
	}
}

// TestIdleLogHeap: a created log that nobody wrote to or read holds at most
// 4 KiB of heap (the ring is allocated as output arrives).
func TestIdleLogHeap(t *testing.T) {
	const n = 1000
	dir := t.TempDir()
	logs := make([]*Log, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range logs {
		l, err := Create(filepath.Join(dir, strconv.Itoa(i)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = l
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perLog := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	runtime.KeepAlive(logs)
	t.Logf("idle log heap: %d bytes", perLog)
	if perLog > 4096 {
		t.Errorf("an idle log holds %d bytes of heap, want at most 4096", perLog)
	}
}
