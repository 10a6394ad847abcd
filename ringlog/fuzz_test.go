//go:build !integration

package ringlog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// FuzzLog runs a random sequence of writes, reads and a close against a
// trivial model (all bytes in a bytes.Buffer) and checks that every read
// returns exactly the model's bytes, or a DroppedError exactly when the disk
// cap dropped the offset.
//
// Each op is a byte: op%4 == 0, 1 write (op/4+1 bytes, then a NUL every
// other time); 2 ReadAt at an offset from the next byte; 3 read to the end
// through a Reader from a negative offset. A 0xFF closes the log.
func FuzzLog(f *testing.F) {
	f.Add(uint8(8), uint8(2), uint8(0), []byte{0, 4, 8, 2, 10, 3, 5, 2, 0})
	f.Add(uint8(1), uint8(1), uint8(3), []byte{252, 252, 252, 2, 1, 3, 200, 0xFF, 2, 0, 3, 7})
	f.Add(uint8(64), uint8(0), uint8(0), []byte{})
	f.Add(uint8(3), uint8(1), uint8(1), []byte{1, 5, 9, 13, 17, 2, 255, 2, 3, 3, 1})
	f.Fuzz(func(t *testing.T, ring, seg, capSegs uint8, ops []byte) {
		opts := Options{RingSize: int(ring) + 1, SegmentSize: 64 * (int64(seg) + 1)}
		if capSegs > 0 {
			opts.DiskCap = opts.SegmentSize * int64(capSegs%8+1)
		}
		l, err := Create(t.TempDir(), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var model bytes.Buffer
		closed := false
		for i := 0; i < len(ops); i++ {
			op := ops[i]
			switch {
			case op == 0xFF:
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				closed = true
			case op%4 <= 1:
				b := bytes.Repeat([]byte{op}, int(op/4)+1)
				if i%2 == 0 {
					b = append(b, 0)
				}
				n, err := l.Write(b)
				if closed {
					if !errors.Is(err, ErrClosed) || n != 0 {
						t.Fatalf("Write after Close = %d, %v", n, err)
					}
					continue
				}
				if err != nil || n != len(b) {
					t.Fatalf("Write = %d, %v", n, err)
				}
				model.Write(b)
			case op%4 == 2:
				var off int64
				if i+1 < len(ops) {
					i++
					off = int64(ops[i]) * int64(model.Len()+1) / 255
				}
				buf := make([]byte, int(op/4)+1)
				n, err := l.ReadAt(buf, off)
				checkRead(t, l, &model, closed, off, buf[:n], err)
			default:
				back := int64(op/4)*3 + 1
				r := l.NewReader(context.Background(), -back, false)
				from := r.Offset()
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					t.Fatalf("Reader from %d (-%d): %v", from, back, err)
				}
				if want := model.Bytes()[from:]; !bytes.Equal(got, want) {
					t.Fatalf("Reader from %d = %q, want %q", from, got, want)
				}
			}
			if got, want := l.Size(), int64(model.Len()); got != want {
				t.Fatalf("Size() = %d, model %d", got, want)
			}
			if start := l.Start(); opts.DiskCap > 0 && int64(model.Len())-start > opts.DiskCap {
				t.Fatalf("kept %d bytes, over the cap %d", int64(model.Len())-start, opts.DiskCap)
			}
		}
	})
}

func checkRead(t *testing.T, l *Log, model *bytes.Buffer, closed bool, off int64, got []byte, err error) {
	t.Helper()
	size := int64(model.Len())
	start := l.Start()
	switch {
	case off < start:
		var de *DroppedError
		if !errors.As(err, &de) || de.Start != start {
			t.Fatalf("ReadAt(%d) with start %d = %v, want DroppedError", off, start, err)
		}
	case off == size:
		if len(got) != 0 || (closed && err != io.EOF) || (!closed && err != nil) {
			t.Fatalf("ReadAt(end %d) = %d bytes, %v (closed %v)", off, len(got), err, closed)
		}
	case off > size:
		if !errors.Is(err, ErrPastEnd) {
			t.Fatalf("ReadAt(%d) past %d = %v, want ErrPastEnd", off, size, err)
		}
	default:
		if err != nil || len(got) == 0 {
			t.Fatalf("ReadAt(%d) of %d = %d bytes, %v", off, size, len(got), err)
		}
		if want := model.Bytes()[off : off+int64(len(got))]; !bytes.Equal(got, want) {
			t.Fatalf("ReadAt(%d) = %q, want %q", off, got, want)
		}
	}
}
