//go:build !integration

package ringlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

// segName is the file name of the segment at base.
func segName(base int64) string { return filepath.Base((&Log{}).segmentPath(base)) }

// damagedDir writes a log of 30 bytes (pattern(0, 30)) in segments of 10
// into a new directory, lets edit damage it, and returns the directory.
func damagedDir(t *testing.T, edit func(dir string)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "output")
	l, err := Create(dir, Options{SegmentSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, l, pattern(0, 30))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	edit(dir)
	return dir
}

// readThrough reads the whole log with a Reader as a follower does:
// the bytes it got, and the gaps (DroppedErrors) it was told of.
func readThrough(t *testing.T, l *Log) ([]byte, []DroppedError) {
	t.Helper()
	r := l.NewReader(context.Background(), 0, false)
	defer r.Close()
	var got []byte
	var drops []DroppedError
	buf := make([]byte, 64)
	for range 100 {
		n, off, err := r.ReadChunk(context.Background(), buf)
		var de *DroppedError
		switch {
		case errors.As(err, &de):
			drops = append(drops, *de)
		case err == io.EOF:
			return got, drops
		case err != nil:
			t.Fatalf("ReadChunk at %d: %v", off, err)
		case n == 0:
			t.Fatalf("ReadChunk at %d of a closed log: 0 bytes and no EOF", off)
		default:
			if want := int64(len(got)); off != want && len(drops) == 0 {
				t.Fatalf("ReadChunk gave offset %d, want %d", off, want)
			}
			got = append(got, buf[:n]...)
		}
	}
	t.Fatal("ReadChunk did not reach the end")
	return nil, nil
}

// TestOpenDamaged: a log whose directory lost a segment, holds one cut
// short, or is gone opens anyway, with a *DamageError that says what is
// missing, and serves every byte that is left: a read in a gap is a
// *DroppedError with Missing set, and a Reader reads on after it.
func TestOpenDamaged(t *testing.T) {
	p := pattern(0, 30)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name     string
		edit     func(dir string)
		gaps     []Gap
		problems int
		notExist bool // the directory itself is gone
		size     int64
		start    int64
		readable []byte         // what a Reader from 0 gets
		drops    []DroppedError // and the gaps it is told of
		sound    bool
	}{
		{
			name: "sound", edit: func(string) {}, sound: true,
			size: 30, readable: p,
		},
		{
			name: "middle segment missing",
			edit: func(dir string) { os.Remove(filepath.Join(dir, segName(10))) },
			gaps: []Gap{{10, 20}}, size: 30, readable: cat(p[:10], p[20:]),
			drops: []DroppedError{{Offset: 10, Start: 20, Missing: true}},
		},
		{
			name: "middle segment truncated",
			edit: func(dir string) { os.Truncate(filepath.Join(dir, segName(10)), 4) },
			gaps: []Gap{{14, 20}}, size: 30, readable: cat(p[:14], p[20:]),
			drops: []DroppedError{{Offset: 14, Start: 20, Missing: true}},
		},
		{
			name: "two gaps",
			edit: func(dir string) {
				os.Truncate(filepath.Join(dir, segName(0)), 3)
				os.Truncate(filepath.Join(dir, segName(10)), 0)
			},
			gaps: []Gap{{3, 10}, {10, 20}}, size: 30, readable: cat(p[:3], p[20:]),
			drops: []DroppedError{{Offset: 3, Start: 10, Missing: true}, {Offset: 10, Start: 20, Missing: true}},
		},
		{
			// Not damage that Open can see: the output looks shorter.
			name: "last segment truncated", sound: true,
			edit: func(dir string) { os.Truncate(filepath.Join(dir, segName(20)), 5) },
			size: 25, readable: p[:25],
		},
		{
			// As the disk cap leaves it: not damage either.
			name: "first segment missing", sound: true,
			edit: func(dir string) { os.Remove(filepath.Join(dir, segName(0))) },
			size: 30, start: 10, readable: p[10:],
			drops: []DroppedError{{Offset: 0, Start: 10}},
		},
		{
			name: "segment longer than the next one's offset allows",
			edit: func(dir string) {
				f, _ := os.OpenFile(filepath.Join(dir, segName(10)), os.O_WRONLY|os.O_APPEND, 0)
				f.Write([]byte("extra"))
				f.Close()
			},
			problems: 1, size: 30, readable: p,
		},
		{
			name:     "a segment that is not a file",
			edit:     func(dir string) { os.Mkdir(filepath.Join(dir, segName(40)), 0o700) },
			problems: 1, size: 30, readable: p,
		},
		{
			name: "a file that only looks like a segment", sound: true,
			edit: func(dir string) { os.WriteFile(filepath.Join(dir, "5.seg"), []byte("xxxxx"), 0o600) },
			size: 30, readable: p,
		},
		{
			name:     "directory gone",
			edit:     func(dir string) { os.RemoveAll(dir) },
			problems: 1, notExist: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := damagedDir(t, tt.edit)
			l, err := Open(dir, Options{})
			if l == nil {
				t.Fatalf("Open = nil, %v; want a log", err)
			}
			var de *DamageError
			if tt.sound {
				if err != nil {
					t.Fatalf("Open = %v, want no error", err)
				}
			} else {
				if !errors.As(err, &de) {
					t.Fatalf("Open = %v, want a *DamageError", err)
				}
				if !reflect.DeepEqual(de.Gaps, tt.gaps) || len(de.Problems) != tt.problems || de.Dir != dir {
					t.Errorf("Open: gaps %v, problems %v in %s; want gaps %v, %d problems in %s", de.Gaps, de.Problems, de.Dir, tt.gaps, tt.problems, dir)
				}
				if errors.Is(err, fs.ErrNotExist) != tt.notExist {
					t.Errorf("errors.Is(%v, fs.ErrNotExist) = %v, want %v", err, !tt.notExist, tt.notExist)
				}
			}
			if l.Size() != tt.size || l.Start() != tt.start {
				t.Errorf("Size, Start = %d, %d; want %d, %d", l.Size(), l.Start(), tt.size, tt.start)
			}
			got, drops := readThrough(t, l)
			if !bytes.Equal(got, tt.readable) || !reflect.DeepEqual(drops, tt.drops) {
				t.Errorf("a Reader from 0 got %q and drops %+v\nwant %q and %+v", got, drops, tt.readable, tt.drops)
			}
			// Every offset reads its own byte, or says where it can go on.
			for off := tt.start; off < tt.size; off++ {
				b := make([]byte, 1)
				n, err := l.ReadAt(b, off)
				var gap *DroppedError
				switch {
				case errors.As(err, &gap):
					if !gap.Missing || gap.Offset != off || gap.Start <= off {
						t.Errorf("ReadAt(%d) = %v (%+v), want a Missing DroppedError past %d", off, err, gap, off)
					}
				case err != nil || n != 1 || b[0] != p[off]:
					t.Errorf("ReadAt(%d) = %d, %v, %q; want %q", off, n, err, b[:n], p[off])
				}
			}
			if _, err := l.Write([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Errorf("Write to the reopened log = %v, want ErrClosed", err)
			}
		})
	}
}

// TestDroppedErrorText: a gap of a damaged log does not blame the cap.
func TestDroppedErrorText(t *testing.T) {
	cap := (&DroppedError{Offset: 1, Start: 5}).Error()
	gap := (&DroppedError{Offset: 1, Start: 5, Missing: true}).Error()
	if cap == gap || !bytes.Contains([]byte(gap), []byte("missing")) {
		t.Errorf("DroppedError texts: cap %q, gap %q", cap, gap)
	}
}

// syncRecorder records what a log fsyncs, by name, in order, and fails
// the sync of fail.
type syncRecorder struct {
	names []string
	fail  string
}

func (r *syncRecorder) sync(f *os.File) error {
	r.names = append(r.names, f.Name())
	if f.Name() == r.fail {
		return syscall.EIO
	}
	return nil
}

// TestSyncOrder: a full segment and its time index are fsynced before the
// log moves to the next one, then the directory that names them; Close
// fsyncs the last segment, its index and the directory; a sync that fails is the error of the Write
// or Close that needed it.
func TestSyncOrder(t *testing.T) {
	dir := t.TempDir()
	l, err := Create(dir, Options{SegmentSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	rec := &syncRecorder{}
	l.fsync = rec.sync
	seg := func(base int64) string { return filepath.Join(dir, segName(base)) }
	idx := func(base int64) string { return filepath.Join(dir, fmt.Sprintf("%020d.idx", base)) }

	mustWrite(t, l, pattern(0, 10))
	if len(rec.names) != 0 {
		t.Errorf("syncs after filling the first segment: %q, want none yet", rec.names)
	}
	mustWrite(t, l, pattern(10, 15))
	if want := []string{seg(0), idx(0), dir, seg(10), idx(10), dir}; !reflect.DeepEqual(rec.names, want) {
		t.Errorf("syncs after two rotations: %q\nwant %q", rec.names, want)
	}
	rec.names = nil
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{seg(20), idx(20), dir}; !reflect.DeepEqual(rec.names, want) {
		t.Errorf("syncs of Close: %q, want %q", rec.names, want)
	}
	rec.names = nil
	if err := l.Close(); err != nil || len(rec.names) != 0 {
		t.Errorf("second Close = %v, synced %q; want nil and nothing", err, rec.names)
	}

	// A log never written to has nothing to sync.
	empty, err := Create(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec.names = nil
	empty.fsync = rec.sync
	if err := empty.Close(); err != nil || len(rec.names) != 0 {
		t.Errorf("Close of an empty log = %v, synced %q", err, rec.names)
	}

	// Failures.
	dir = t.TempDir()
	l, err = Create(dir, Options{SegmentSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	rec = &syncRecorder{fail: seg(0)}
	l.fsync = rec.sync
	mustWrite(t, l, pattern(0, 10))
	if n, err := l.Write(pattern(10, 5)); n != 0 || !errors.Is(err, syscall.EIO) {
		t.Errorf("Write whose rotation cannot sync the full segment = %d, %v; want 0, EIO", n, err)
	}
	rec.fail = seg(0)
	if err := l.Close(); !errors.Is(err, syscall.EIO) {
		t.Errorf("Close whose sync fails = %v, want EIO", err)
	}
}
