//go:build !integration

package job

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/ringlog"
)

// storeBigJobs writes n finished jobs of owner into state, each with
// argBytes of arguments and as much environment, created a second apart
// (job i at base+i s); it returns their IDs, oldest first.
func storeBigJobs(t *testing.T, state, owner string, n, argBytes int) []string {
	t.Helper()
	return storeJobsWithOutput(t, state, owner, n, argBytes, nil)
}

// storeJobsWithOutput is storeBigJobs with output in each job's log, in
// segments of 10 bytes.
func storeJobsWithOutput(t *testing.T, state, owner string, n, argBytes int, output []byte) []string {
	t.Helper()
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	arg := strings.Repeat("a", argBytes)
	var ids []string
	for i := range n {
		id := NewID()
		dir := filepath.Join(state, "jobs", id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		code := 0
		created := base.Add(time.Duration(i) * time.Second)
		st := Status{
			ID: id, Owner: owner, Command: "/bin/echo", Args: []string{arg, "#" + id}, Env: map[string]string{"E": arg},
			State: StateCompleted, ExitCode: &code, Created: created, Started: created, Ended: created.Add(time.Millisecond),
		}
		if err := writeRecord(dir, st, false); err != nil {
			t.Fatal(err)
		}
		log, err := ringlog.Create(filepath.Join(dir, "output"), ringlog.Options{SegmentSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := log.Write(output); err != nil {
			t.Fatal(err)
		}
		log.Close()
		ids = append(ids, id)
	}
	return ids
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestRetainedJobsMemoryBounded: 200 finished jobs with 200 KiB of
// arguments and 200 KiB of environment each (80 MB of records) take at most
// 4 MiB of the server's heap once loaded; their statuses still have all of
// their arguments and environment, read back from disk.
func TestRetainedJobsMemoryBounded(t *testing.T) {
	state := t.TempDir()
	ids := storeBigJobs(t, state, "alice", 200, 200<<10)
	before := heapInuse()
	m, _ := openState(t, state)
	grew := int64(heapInuse()) - int64(before)
	if grew > 4<<20 {
		t.Errorf("200 retained jobs with 400 KiB of arguments and environment each take %d KiB of heap, want at most 4 MiB", grew>>10)
	}
	t.Logf("200 retained jobs with 400 KiB of arguments and environment each: %d KiB of heap", grew>>10)
	st, err := m.Get(ids[7])
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Args) != 2 || len(st.Args[0]) != 200<<10 || st.Args[1] != "#"+ids[7] || len(st.Env["E"]) != 200<<10 {
		t.Errorf("a retained job's status has %d arguments and %d environment bytes, want its 2 and 200 KiB", len(st.Args), len(st.Env["E"]))
	}
	runtime.KeepAlive(m)
}

// TestListPage: pages of a list are newest first, each job once, the last
// page says no more follow; the filter applies across pages.
func TestListPage(t *testing.T) {
	state := t.TempDir()
	ids := storeBigJobs(t, state, "alice", 25, 10)
	bobs := storeBigJobs(t, state, "bob", 5, 10)
	m, _ := openState(t, state)
	var got []string
	var after *Cursor
	pages := 0
	for {
		page, more := m.ListPage(Filter{Owners: []string{"alice"}}, after, 10)
		pages++
		for _, st := range page {
			got = append(got, st.ID)
		}
		if !more {
			break
		}
		c := CursorOf(page[len(page)-1])
		after = &c
	}
	if pages != 3 || len(got) != 25 {
		t.Fatalf("alice's 25 jobs in pages of 10: %d jobs in %d pages, want 25 in 3", len(got), pages)
	}
	for i, id := range got {
		if want := ids[len(ids)-1-i]; id != want {
			t.Fatalf("job %d of the list is %s, want %s (newest first)", i, id, want)
		}
	}
	all, more := m.ListPage(Filter{}, nil, 1000)
	if len(all) != 30 || more {
		t.Errorf("a page of 1000 of 30 jobs: %d jobs, more %v", len(all), more)
	}
	if all[0].ID != bobs[len(bobs)-1] && all[0].ID != ids[len(ids)-1] {
		t.Errorf("the first job of the list is not a newest one")
	}
}
