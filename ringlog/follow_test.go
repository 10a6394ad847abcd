//go:build !integration

package ringlog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"
)

// chunk is what one ReadFollow or ReadChunk returned.
type chunk struct {
	data []byte
	off  int64
	err  error
}

// TestReadFollowWokenByWrite: a follower at the end parks (synctest.Wait
// returns only once it is durably blocked, on the log's wake channel), a
// write wakes it, and it returns the bytes with their offset; then it parks
// again, and the next write wakes it again.
func TestReadFollowWokenByWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLog(t, Options{})
		mustWrite(t, l, []byte("ab"))
		r := l.NewReader(context.Background(), 2, false)
		defer r.Close()
		got := make(chan chunk, 1)
		follow := func() {
			buf := make([]byte, 16)
			n, off, err := r.ReadFollow(context.Background(), buf)
			got <- chunk{buf[:n], off, err}
		}
		for _, w := range []struct {
			data string
			off  int64
		}{{"cde", 2}, {"f", 5}} {
			go follow()
			synctest.Wait()
			if len(got) != 0 {
				t.Fatalf("ReadFollow at %d returned %+v before any write, want it waiting", w.off, <-got)
			}
			if !waiting(l) {
				t.Fatal("no wake channel with a follower parked, want one")
			}
			mustWrite(t, l, []byte(w.data))
			synctest.Wait()
			select {
			case c := <-got:
				if string(c.data) != w.data || c.off != w.off || c.err != nil {
					t.Errorf("ReadFollow after writing %q = %q at %d, %v; want %q at %d, nil", w.data, c.data, c.off, c.err, w.data, w.off)
				}
			default:
				t.Fatalf("ReadFollow still waiting after %q was written", w.data)
			}
		}
		if r.Offset() != 6 {
			t.Errorf("Offset() = %d, want 6", r.Offset())
		}
	})
}

// TestReadFollowCancelled: a parked follower whose context is cancelled, or
// reaches its deadline, returns ctx.Err(); one whose context ended before
// it was called returns it without reading, even with bytes there.
func TestReadFollowCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLog(t, Options{})
		r := l.NewReader(context.Background(), 0, false)
		defer r.Close()

		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 1)
		go func() {
			_, _, err := r.ReadFollow(ctx, make([]byte, 8))
			errs <- err
		}()
		synctest.Wait()
		if len(errs) != 0 {
			t.Fatal("ReadFollow returned before its context ended")
		}
		cancel()
		synctest.Wait()
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("ReadFollow after cancel = %v, want context.Canceled", err)
		}

		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		go func() {
			_, _, err := r.ReadFollow(ctx, make([]byte, 8))
			errs <- err
		}()
		// Blocked here, the whole bubble waits: its clock moves on to the
		// deadline.
		if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ReadFollow past its deadline = %v, want context.DeadlineExceeded", err)
		}

		mustWrite(t, l, []byte("x"))
		if n, _, err := r.ReadFollow(ctx, make([]byte, 8)); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ReadFollow with an ended context and a byte there = %d, %v; want 0, context.DeadlineExceeded", n, err)
		}
		if err := r.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait with an ended context = %v, want context.DeadlineExceeded", err)
		}
		if r.Offset() != 0 {
			t.Errorf("Offset() = %d after reads that were refused, want 0", r.Offset())
		}
	})
}

// TestReadFollowClose: a follower parked at the end returns io.EOF when
// the log is closed; one with bytes left gets them first, and io.EOF at
// the end.
func TestReadFollowClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLog(t, Options{})
		mustWrite(t, l, []byte("abc"))
		behind := l.NewReader(context.Background(), 1, false)
		atEnd := l.NewReader(context.Background(), 3, false)
		defer behind.Close()
		defer atEnd.Close()
		errs := make(chan error, 1)
		go func() {
			_, _, err := atEnd.ReadFollow(context.Background(), make([]byte, 8))
			errs <- err
		}()
		synctest.Wait()
		if len(errs) != 0 {
			t.Fatal("ReadFollow at the end returned before the close")
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := <-errs; err != io.EOF {
			t.Errorf("parked ReadFollow after Close = %v, want io.EOF", err)
		}
		buf := make([]byte, 8)
		if n, off, err := behind.ReadFollow(context.Background(), buf); string(buf[:n]) != "bc" || off != 1 || err != nil {
			t.Errorf("ReadFollow behind the end of a closed log = %q at %d, %v; want \"bc\" at 1, nil", buf[:n], off, err)
		}
		if n, off, err := behind.ReadFollow(context.Background(), buf); n != 0 || off != 3 || err != io.EOF {
			t.Errorf("ReadFollow at the end of a closed log = %d at %d, %v; want 0 at 3, io.EOF", n, off, err)
		}
	})
}

// TestReadChunk: ReadChunk coalesces what the log holds (ring and files,
// across segment files) into one chunk as big as the buffer, never waits,
// and says where the chunk starts.
func TestReadChunk(t *testing.T) {
	l := newLog(t, Options{RingSize: 64, SegmentSize: 4096})
	mustWrite(t, l, pattern(0, 10000))
	r := l.NewReader(context.Background(), 0, false)
	defer r.Close()
	ctx := context.Background()
	for _, tt := range []struct {
		buf     int
		wantOff int64
		wantN   int
	}{
		{5000, 0, 5000},     // file, across the first segment's end
		{1, 5000, 1},        // one byte
		{0, 5001, 0},        // an empty buffer
		{10000, 5001, 4999}, // the rest, files and ring: less than the buffer
		{100, 10000, 0},     // the end of an open log: nothing, no error
	} {
		buf := make([]byte, tt.buf)
		n, off, err := r.ReadChunk(ctx, buf)
		if n != tt.wantN || off != tt.wantOff || err != nil {
			t.Errorf("ReadChunk(%d bytes) = %d at %d, %v; want %d at %d, nil", tt.buf, n, off, err, tt.wantN, tt.wantOff)
			continue
		}
		if !bytes.Equal(buf[:n], pattern(off, int64(n))) {
			t.Errorf("ReadChunk at %d returned other bytes than were written there", off)
		}
	}
	select {
	case <-l.Wait(r.Offset()):
		t.Error("Wait at the end of an open log is closed already")
	default:
	}
	mustWrite(t, l, []byte("z"))
	if err := r.Wait(ctx); err != nil {
		t.Errorf("Wait with a byte there = %v", err)
	}
	l.Close()
	buf := make([]byte, 8)
	if n, off, err := r.ReadChunk(ctx, buf); string(buf[:n]) != "z" || off != 10000 || err != nil {
		t.Errorf("ReadChunk of the last byte of a closed log = %q at %d, %v; want \"z\" at 10000, nil", buf[:n], off, err)
	}
	if n, off, err := r.ReadChunk(ctx, buf); n != 0 || off != 10001 || err != io.EOF {
		t.Errorf("ReadChunk at the end of a closed log = %d at %d, %v; want 0 at 10001, io.EOF", n, off, err)
	}
	if err := r.Wait(ctx); err != nil {
		t.Errorf("Wait at the end of a closed log = %v, want nil (ReadChunk has io.EOF)", err)
	}
}

// TestReadChunkDropped: a reader the disk cap overtook gets one
// *DroppedError that counts the bytes it lost, and then reads on from the
// oldest byte kept; Wait returns at once for it, and Read (an io.Reader)
// reports the drop the same way.
func TestReadChunkDropped(t *testing.T) {
	const seg = 4096
	l := newLog(t, Options{RingSize: 1024, DiskCap: 2 * seg, SegmentSize: seg})
	mustWrite(t, l, pattern(0, 100))
	r := l.NewReader(context.Background(), 10, false)
	defer r.Close()
	mustWrite(t, l, pattern(100, 4*seg))
	start := l.Start()
	if start <= 10 {
		t.Fatalf("Start() = %d, want the cap to have dropped the reader's offset 10", start)
	}
	ctx := context.Background()
	if err := r.Wait(ctx); err != nil {
		t.Fatalf("Wait of an overtaken reader = %v, want nil at once", err)
	}
	buf := make([]byte, 100)
	n, off, err := r.ReadChunk(ctx, buf)
	var de *DroppedError
	if n != 0 || off != 10 || !errors.As(err, &de) || de.Offset != 10 || de.Start != start || de.Dropped() != start-10 {
		t.Fatalf("ReadChunk of an overtaken reader = %d at %d, %v; want 0 at 10, DroppedError{Offset: 10, Start: %d} that counts %d bytes", n, off, err, start, start-10)
	}
	if r.Offset() != start {
		t.Errorf("after the drop Offset() = %d, want the first kept offset %d", r.Offset(), start)
	}
	n, off, err = r.ReadFollow(ctx, buf)
	if n != len(buf) || off != start || err != nil || !bytes.Equal(buf, pattern(start, int64(len(buf)))) {
		t.Errorf("ReadFollow after the drop = %d at %d, %v; want the %d bytes at %d", n, off, err, len(buf), start)
	}

	rd := l.NewReader(context.Background(), 5, false)
	defer rd.Close()
	if _, err := rd.Read(buf); !errors.As(err, &de) || de.Dropped() != start-5 {
		t.Errorf("Read of an overtaken reader = %v, want a DroppedError counting %d bytes", err, start-5)
	}
	got, err := io.ReadAll(rd)
	if err != nil || !bytes.Equal(got, pattern(start, l.Size()-start)) {
		t.Errorf("Read after the drop: %d bytes, %v; want the %d kept", len(got), err, l.Size()-start)
	}
}

// TestFollowRecipe follows a log the way a streaming handler does: wait
// holding no buffer, take a buffer, read what is there into one chunk,
// count a drop into the next chunk. A reader that starts before the oldest
// kept byte and one that the disk cap overtakes between chunks both see,
// chunk after chunk, that the offsets and drops add up to every byte
// written, and the stream ends at the log's close.
func TestFollowRecipe(t *testing.T) {
	const seg = 4096
	l := newLog(t, Options{RingSize: 1024, DiskCap: 2 * seg, SegmentSize: seg})
	mustWrite(t, l, pattern(0, 3*seg)) // offset 0 is dropped already
	if l.Start() == 0 {
		t.Fatal("nothing dropped")
	}
	type sent struct {
		off, dropped int64
		n            int
	}
	var got []sent
	ctx := context.Background()
	r := l.NewReader(ctx, 0, false)
	defer r.Close()
	var dropped int64
	for {
		if err := r.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3000)
		n, off, err := r.ReadChunk(ctx, buf)
		var de *DroppedError
		if errors.As(err, &de) {
			dropped += de.Dropped()
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			continue
		}
		if !bytes.Equal(buf[:n], pattern(off, int64(n))) {
			t.Fatalf("chunk at %d holds other bytes than were written there", off)
		}
		got = append(got, sent{off, dropped, n})
		dropped = 0
		switch len(got) {
		case 1:
			mustWrite(t, l, pattern(l.Size(), 3*seg)) // overtakes the reader
		case 2:
			mustWrite(t, l, pattern(l.Size(), 10))
			l.Close()
		}
	}
	var next int64
	for _, c := range got {
		if c.off != next+c.dropped {
			t.Fatalf("chunk at %d after %d dropped, want it at %d + %d (chunks %+v)", c.off, c.dropped, next, c.dropped, got)
		}
		next = c.off + int64(c.n)
	}
	if next != l.Size() {
		t.Errorf("the chunks end at %d, want at the log's end %d (chunks %+v)", next, l.Size(), got)
	}
	if len(got) < 3 || got[0].dropped == 0 || got[1].dropped == 0 {
		t.Errorf("chunks %+v, want a drop before the first (it started before the oldest kept byte) and the second (overtaken)", got)
	}
}
