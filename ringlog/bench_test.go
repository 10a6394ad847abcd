//go:build !integration

package ringlog

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkWrite measures the writer's throughput with 64 KiB writes while
// 0, 1, 100 or 1000 followers read what it writes, each at its own pace.
// Only the writer's loop is timed; when it ends the followers are stopped
// wherever they are (that each gets every byte is TestConcurrentReaders').
// It also reports how far behind the followers were on average.
func BenchmarkWrite(b *testing.B) {
	for _, followers := range []int{0, 1, 100, 1000} {
		b.Run(fmt.Sprintf("followers=%d", followers), func(b *testing.B) {
			l, err := Create(benchDir(b), Options{RingSize: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			var mu sync.Mutex
			var read int64
			for range followers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := l.NewReader(ctx, 0, true)
					defer r.Close()
					n, _ := io.CopyBuffer(io.Discard, onlyReader{r}, make([]byte, 64<<10))
					mu.Lock()
					read += n
					mu.Unlock()
				}()
			}
			chunk := make([]byte, 64<<10)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := l.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			l.Close()
			if followers > 0 {
				b.ReportMetric(float64(read)/float64(followers)/float64(l.Size()), "read/written")
			}
		})
	}
}

// BenchmarkIdleLog reports the heap one created but unwritten log holds.
func BenchmarkIdleLog(b *testing.B) {
	dir := b.TempDir()
	b.ReportAllocs()
	logs := make([]*Log, 0, b.N)
	i := 0
	for b.Loop() {
		l, err := Create(filepath.Join(dir, fmt.Sprint(i)), Options{})
		if err != nil {
			b.Fatal(err)
		}
		logs = append(logs, l)
		i++
	}
	runtime.KeepAlive(logs)
}

// BenchmarkReadFromFile measures a reader catching up from the segment
// files (the ring long overwritten).
func BenchmarkReadFromFile(b *testing.B) {
	l, err := Create(b.TempDir(), Options{RingSize: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	chunk := make([]byte, 64<<10)
	for range 256 { // 16 MiB
		if _, err := l.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	r := l.NewReader(context.Background(), 0, false)
	defer r.Close()
	for b.Loop() {
		if _, err := r.Read(buf); err == io.EOF {
			r = l.NewReader(context.Background(), 0, false)
		} else if err != nil {
			b.Fatal(err)
		}
	}
}

// benchDir is where write benchmarks put their files: $RINGLOG_BENCH_DIR
// (for example a tmpfs, to measure the log rather than the disk) or a
// temporary directory.
func benchDir(b *testing.B) string {
	if d := os.Getenv("RINGLOG_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "ringlog-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// BenchmarkBaselineFileWrite is the physical baseline of BenchmarkWrite: the
// same 64 KiB writes to a plain file in the same kind of directory, with no
// ring, no segments and no readers.
func BenchmarkBaselineFileWrite(b *testing.B) {
	f, err := os.Create(filepath.Join(benchDir(b), "baseline"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteTimeIndex measures what the time index costs the writer:
// the same writes, of 64 KiB and of one 64-byte line, without the index
// (the log as it was before it), with it (writes back to back: an entry a
// second), and with an entry for every write (each write a second after
// the one before on a clock of the benchmark's, as the writes of a quiet
// job are), in one run.
func BenchmarkWriteTimeIndex(b *testing.B) {
	for _, size := range []int{64 << 10, 64} {
		for _, index := range []string{"false", "true", "every-write"} {
			b.Run(fmt.Sprintf("write=%d/index=%s", size, index), func(b *testing.B) {
				l, err := Create(benchDir(b), Options{RingSize: 1 << 20, noTimeIndex: index == "false"})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				if index == "every-write" {
					t := time.Unix(1_700_000_000, 0)
					l.now = func() time.Time { t = t.Add(time.Second); return t }
				}
				chunk := make([]byte, size)
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := l.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
