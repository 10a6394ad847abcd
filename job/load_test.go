//go:build !integration

package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/internal/testchild"
	"github.com/jobworker/jobworker/ringlog"
)

// openState opens a Manager on state and returns it with what it
// reported; it is closed when the test ends.
func openState(t *testing.T, state string) (*Manager, *[]error) {
	t.Helper()
	reported := new([]error)
	m, err := Open(Config{StateDir: state, Cgroups: testchild.FakeHierarchy(t), OnError: func(err error) { *reported = append(*reported, err) }})
	if err != nil {
		t.Fatalf("Open with damaged jobs = %v, want it to start", err)
	}
	t.Cleanup(func() {
		if err := m.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m, reported
}

// storedJob writes the record of a finished job into state, and output in
// segments of 10 bytes; it returns the job's directory.
func storedJob(t *testing.T, state, id, owner string, output []byte) string {
	t.Helper()
	dir := filepath.Join(state, "jobs", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	code := 0
	created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st := Status{
		ID: id, Owner: owner, Command: "/bin/echo", Args: []string{"hello"}, State: StateCompleted, ExitCode: &code,
		Created: created, Started: created.Add(time.Second), Ended: created.Add(time.Minute),
	}
	if err := writeRecord(dir, st, true); err != nil {
		t.Fatal(err)
	}
	log, err := ringlog.Create(filepath.Join(dir, "output"), ringlog.Options{SegmentSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.Write(output); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readOutput reads all of a job's output as a follower does: the bytes,
// and the missing ranges it is told of.
func readOutput(t *testing.T, m *Manager, id string) (string, []string) {
	t.Helper()
	log, err := m.Output(id)
	if err != nil {
		t.Fatalf("Output(%s): %v", id, err)
	}
	r := log.NewReader(context.Background(), 0, false)
	defer r.Close()
	var got []byte
	var gaps []string
	buf := make([]byte, 100)
	for range 100 {
		n, _, err := r.ReadChunk(context.Background(), buf)
		var de *ringlog.DroppedError
		switch {
		case errors.As(err, &de):
			gaps = append(gaps, fmt.Sprintf("%d-%d", de.Offset, de.Start))
		case err == io.EOF:
			return string(got), gaps
		case err != nil:
			t.Fatalf("output of %s: %v", id, err)
		default:
			got = append(got, buf[:n]...)
		}
	}
	t.Fatalf("output of %s does not end", id)
	return "", nil
}

func segment(dir string, base int64) string {
	return filepath.Join(dir, "output", fmt.Sprintf("%020d.seg", base))
}

const output30 = "0123456789abcdefghijABCDEFGHIJ"

// TestOpenDamagedJobs: job.Open starts whatever it finds damaged (a
// segment cut short or missing, a torn record, a record without its
// output directory, a record it cannot rewrite, a job without a record):
// each such job is listed, saying what is damaged, with the output that is
// still readable; the sound job beside them loads as it was; each damage
// is reported once, naming the job.
func TestOpenDamagedJobs(t *testing.T) {
	state := t.TempDir()
	ids := func(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }
	sound := storedJob(t, state, ids(1), "alice", []byte(output30))

	truncated := storedJob(t, state, ids(2), "alice", []byte(output30))
	if err := os.Truncate(segment(truncated, 10), 4); err != nil {
		t.Fatal(err)
	}
	missing := storedJob(t, state, ids(3), "alice", []byte(output30))
	if err := os.Remove(segment(missing, 10)); err != nil {
		t.Fatal(err)
	}
	// Torn after the owner: what was written before the tear is kept.
	tornOwner := storedJob(t, state, ids(4), "bob", []byte(output30))
	rec, err := os.ReadFile(filepath.Join(tornOwner, recordFile))
	if err != nil {
		t.Fatal(err)
	}
	cut := strings.Index(string(rec), `"args"`) + 3
	if err := os.WriteFile(filepath.Join(tornOwner, recordFile), rec[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	// Torn before its ID: nothing is known.
	tornID := storedJob(t, state, ids(5), "bob", []byte("out"))
	if err := os.WriteFile(filepath.Join(tornID, recordFile), rec[:strings.Index(string(rec), `"id"`)+4], 0o600); err != nil {
		t.Fatal(err)
	}
	noOutputDir := storedJob(t, state, ids(6), "alice", nil)
	if err := os.RemoveAll(filepath.Join(noOutputDir, "output")); err != nil {
		t.Fatal(err)
	}
	// A running job whose final record cannot be written at Open.
	stuck := storedJob(t, state, ids(7), "alice", []byte("so far"))
	st, err := readRecord(stuck)
	if err != nil {
		t.Fatal(err)
	}
	st.State, st.ExitCode, st.Ended = StateRunning, nil, time.Time{}
	if err := writeRecord(stuck, st, true); err != nil {
		t.Fatal(err)
	}
	stuckRecord, err := os.ReadFile(filepath.Join(stuck, recordFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(stuck, recordFile+".tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Output, but no record.
	noRecord := storedJob(t, state, ids(8), "alice", []byte("orphan"))
	if err := os.Remove(filepath.Join(noRecord, recordFile)); err != nil {
		t.Fatal(err)
	}
	// Neither record nor output: StartJob did not get far.
	unfinished := filepath.Join(state, "jobs", ids(9))
	if err := os.MkdirAll(filepath.Join(unfinished, "output"), 0o700); err != nil {
		t.Fatal(err)
	}

	m, reported := openState(t, state)

	tests := []struct {
		dir     string
		state   State
		reason  Reason
		owner   string
		damaged []string // substrings of Damaged; nil: sound
		output  string
		gaps    []string
	}{
		{dir: sound, state: StateCompleted, owner: "alice", output: output30},
		{dir: truncated, state: StateCompleted, owner: "alice", damaged: []string{"output bytes 14 to 19 are missing", "output bytes 0 to 29 are readable but for the missing ones"},
			output: output30[:14] + output30[20:], gaps: []string{"14-20"}},
		{dir: missing, state: StateCompleted, owner: "alice", damaged: []string{"output bytes 10 to 19 are missing"},
			output: output30[:10] + output30[20:], gaps: []string{"10-20"}},
		{dir: tornOwner, state: StateFailed, reason: ReasonDamaged, owner: "bob", damaged: []string{"its record is damaged (unexpected end of JSON input)", "what could be read of the record is shown"},
			output: output30},
		{dir: tornID, state: StateFailed, reason: ReasonDamaged, owner: "", damaged: []string{"its record is damaged", "who owns it, what it ran and how it ended are unknown"},
			output: "out"},
		{dir: noOutputDir, state: StateCompleted, owner: "alice", damaged: []string{"its output is missing; no output is readable"}},
		{dir: stuck, state: StateFailed, reason: ReasonServerRestarted, owner: "alice", damaged: []string{"its final state could not be recorded at start-up: the record on disk still says running"},
			output: "so far"},
		{dir: noRecord, state: StateFailed, reason: ReasonDamaged, owner: "", damaged: []string{"its record is missing"}, output: "orphan"},
	}
	var listed []string
	for _, st := range m.List(Filter{}) {
		listed = append(listed, st.ID)
	}
	for _, tt := range tests {
		id := filepath.Base(tt.dir)
		if !slices.Contains(listed, id) {
			t.Errorf("job %s is not listed (listed: %v)", id, listed)
			continue
		}
		st, err := m.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != tt.state || st.Reason != tt.reason || st.Owner != tt.owner {
			t.Errorf("job %s: state %s, reason %q, owner %q; want %s, %q, %q", id, st.State, st.Reason, st.Owner, tt.state, tt.reason, tt.owner)
		}
		if tt.damaged == nil && st.Damaged != "" {
			t.Errorf("job %s: Damaged = %q, want a sound job", id, st.Damaged)
		}
		for _, want := range tt.damaged {
			if !strings.Contains(st.Damaged, want) {
				t.Errorf("job %s: Damaged = %q, want it to say %q", id, st.Damaged, want)
			}
		}
		if st.Created.IsZero() || !st.State.Ended() || st.Ended.IsZero() {
			t.Errorf("job %s: created %v, ended %v (%s); want times and a final state", id, st.Created, st.Ended, st.State)
		}
		got, gaps := readOutput(t, m, id)
		if got != tt.output || !reflect.DeepEqual(gaps, tt.gaps) {
			t.Errorf("job %s: output %q, gaps %v; want %q, %v", id, got, gaps, tt.output, tt.gaps)
		}
		n := 0
		for _, err := range *reported {
			if strings.Contains(err.Error(), id) {
				n++
			}
		}
		if want := min(len(tt.damaged), 1); n != want {
			t.Errorf("job %s: reported %d times, want %d (reports: %v)", id, n, want, *reported)
		}
	}
	if len(listed) != len(tests) {
		t.Errorf("listed %d jobs, want %d: %v", len(listed), len(tests), listed)
	}
	// What the salvage read of the torn record is the job's own.
	if st, _ := m.Get(ids(4)); st.Command != "/bin/echo" || st.Args != nil || st.ExitCode != nil {
		t.Errorf("torn record: command %q, args %q, exit code %v; want /bin/echo and what followed the tear unknown", st.Command, st.Args, st.ExitCode)
	}
	// A damaged record stays on disk as it was found.
	if b, err := os.ReadFile(filepath.Join(tornOwner, recordFile)); err != nil || string(b) != string(rec[:cut]) {
		t.Errorf("torn record after Open: %q, %v; want it as it was", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(stuck, recordFile)); err != nil || string(b) != string(stuckRecord) {
		t.Errorf("the record Open could not rewrite: %q, %v; want it as it was", b, err)
	}
	if _, err := os.Stat(unfinished); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a job directory without record or output after Open: %v, want it removed", err)
	}
	if !slices.ContainsFunc(*reported, func(err error) bool {
		return strings.Contains(err.Error(), ids(9)) && strings.Contains(err.Error(), "removing it")
	}) {
		t.Errorf("the removal of %s was not reported: %v", ids(9), *reported)
	}
}

// TestOpenKeepsUnreadableRecords: a record that cannot be read for a
// reason that may pass (here a symbolic link loop, ELOOP, and a directory
// in its place, EISDIR; EMFILE or EIO alike) is reported and left on disk
// untouched, not loaded, and the other jobs load.
func TestOpenKeepsUnreadableRecords(t *testing.T) {
	state := t.TempDir()
	sound := storedJob(t, state, "00000000-0000-4000-8000-000000000001", "alice", []byte("a"))
	loop := storedJob(t, state, "00000000-0000-4000-8000-000000000002", "alice", []byte("b"))
	if err := os.Remove(filepath.Join(loop, recordFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(recordFile, filepath.Join(loop, recordFile)); err != nil {
		t.Fatal(err)
	}
	isDir := storedJob(t, state, "00000000-0000-4000-8000-000000000003", "alice", []byte("c"))
	if err := os.Remove(filepath.Join(isDir, recordFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(isDir, recordFile), 0o700); err != nil {
		t.Fatal(err)
	}

	m, reported := openState(t, state)
	if got := m.List(Filter{}); len(got) != 1 || got[0].ID != filepath.Base(sound) {
		t.Errorf("listed %v, want only the sound job", got)
	}
	for _, tt := range []struct {
		dir   string
		errno syscall.Errno
	}{{loop, syscall.ELOOP}, {isDir, syscall.EISDIR}} {
		id := filepath.Base(tt.dir)
		if _, err := m.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s) = %v, want ErrNotFound", id, err)
		}
		if !slices.ContainsFunc(*reported, func(err error) bool { return errors.Is(err, tt.errno) && strings.Contains(err.Error(), id) }) {
			t.Errorf("job %s: reported %v, want its %v", id, *reported, tt.errno)
		}
		if b, err := os.ReadFile(segment(tt.dir, 0)); err != nil || len(b) != 1 {
			t.Errorf("job %s: output after Open: %q, %v; want it kept", id, b, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(loop, recordFile)); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("the unreadable record after Open: %v, %v; want it as it was", fi, err)
	}
}

// TestRecordAction: which errors of reading a record mean that it is
// damaged for good (listed as damaged), which that there is none, and
// which leave the job on disk for a later start.
func TestRecordAction(t *testing.T) {
	path := "/state/jobs/x/job.json"
	pathErr := func(errno syscall.Errno) error { return &fs.PathError{Op: "open", Path: path, Err: errno} }
	tests := []struct {
		err  error
		want loadAction
	}{
		{nil, loadSound},
		{pathErr(syscall.ENOENT), loadNoRecord},
		{pathErr(syscall.EMFILE), loadKeep},
		{pathErr(syscall.ENFILE), loadKeep},
		{pathErr(syscall.ENOMEM), loadKeep},
		{&fs.PathError{Op: "read", Path: path, Err: syscall.EIO}, loadKeep},
		{pathErr(syscall.EACCES), loadKeep},
		{pathErr(syscall.ELOOP), loadKeep},
		{&fs.PathError{Op: "read", Path: path, Err: syscall.EISDIR}, loadKeep},
		{errors.New("something else"), loadKeep},
		{fmt.Errorf("%s: %w: version 2", path, errNewerRecord), loadNewer},
		{&damagedError{path: path, err: errors.New("unexpected end of JSON input")}, loadDamaged},
	}
	for _, tt := range tests {
		if got := recordAction(tt.err); got != tt.want {
			t.Errorf("recordAction(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	// What readRecord makes of bytes: only they say damaged.
	dir := filepath.Join(t.TempDir(), "00000000-0000-4000-8000-000000000001")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		record string
		want   loadAction
	}{
		{`{"id": "00000000-0000-4000-8000-000000000001", "state": "completed"}`, loadSound},
		{``, loadDamaged},
		{`{"id": "00000000-0000-4000-8000-000000000001", "sta`, loadDamaged},
		{"\x00\x00\x00\x00", loadDamaged},
		{`{"id": "00000000-0000-4000-8000-000000000002", "state": "completed"}`, loadDamaged},
		{`{"state": "completed"}`, loadDamaged},
		{`{"id": "00000000-0000-4000-8000-000000000001", "state": "exploded"}`, loadDamaged},
		{`{"id": "00000000-0000-4000-8000-000000000001", "state": "completed", "exit_code": "zero"}`, loadDamaged},
		{`{"version": -1, "id": "00000000-0000-4000-8000-000000000001", "state": "completed"}`, loadDamaged},
		{`{"version": 2, "id": "00000000-0000-4000-8000-000000000001", "state": "completed"}`, loadNewer},
	} {
		if err := os.WriteFile(filepath.Join(dir, recordFile), []byte(tt.record), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := readRecord(dir)
		if got := recordAction(err); got != tt.want {
			t.Errorf("record %q: readRecord = %v, action %d; want %d", tt.record, err, got, tt.want)
		}
	}
}

// TestSalvageRecord: whatever prefix of a record is left after a torn
// write, the salvage never takes a field for a value that was not written:
// each field it gives is the record's own, and the more bytes, the more
// fields.
func TestSalvageRecord(t *testing.T) {
	full := fullStatus()
	b, err := encodeRecord(full)
	if err != nil {
		t.Fatal(err)
	}
	prev := 0
	for n := 0; n <= len(b); n++ {
		r, ok := salvageRecord(b[:n])
		if ok != (n > 0) {
			t.Fatalf("salvageRecord(%d bytes): ok = %v", n, ok)
		}
		st := r.status()
		got := reflect.ValueOf(st)
		want := reflect.ValueOf(full)
		set := 0
		for i := range got.NumField() {
			name := got.Type().Field(i).Name
			if got.Field(i).IsZero() {
				continue
			}
			set++
			same := reflect.DeepEqual(got.Field(i).Interface(), want.Field(i).Interface())
			if tg, ok := got.Field(i).Interface().(time.Time); ok {
				same = tg.Equal(want.Field(i).Interface().(time.Time))
			}
			if !same {
				t.Fatalf("salvageRecord(%d bytes).%s = %v, want %v or nothing", n, name, got.Field(i).Interface(), want.Field(i).Interface())
			}
		}
		if set < prev {
			t.Fatalf("salvageRecord(%d bytes) gives %d fields, %d bytes gave %d", n, set, n-1, prev)
		}
		prev = set
	}
	if r, _ := salvageRecord(b); r.ID != full.ID || r.Owner != full.Owner {
		t.Errorf("salvageRecord of the whole record = %+v", r)
	}
	for _, bad := range []string{"", "[1, 2]", "\x00\x00", `"x"`} {
		if _, ok := salvageRecord([]byte(bad)); ok {
			t.Errorf("salvageRecord(%q) ok, want not a record", bad)
		}
	}
	// A value of the wrong type is left out, not the keys after it.
	r, _ := salvageRecord([]byte(`{"id": "x", "exit_code": "zero", "owner": "bob"}`))
	if r.ID != "x" || r.ExitCode != nil || r.Owner != "bob" {
		t.Errorf("salvage past a value of the wrong type = %+v", r)
	}
}

// syncLog records what writeRecordSync syncs, in order.
type syncLog struct {
	names []string
	fail  string
}

func (s *syncLog) sync(f *os.File) error {
	s.names = append(s.names, f.Name())
	if f.Name() == s.fail {
		return syscall.EIO
	}
	return nil
}

// TestWriteRecordSyncOrder: a durable record is synced before it is
// renamed into place, then its directory (the new name), then the jobs
// directory (the name of the job's directory); an unsynced write syncs
// nothing; a failed sync is the write's error and leaves the old record.
func TestWriteRecordSyncOrder(t *testing.T) {
	jobs := t.TempDir()
	st := fullStatus()
	dir := filepath.Join(jobs, st.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	rec := &syncLog{}
	if err := writeRecordSync(dir, st, rec.sync); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	if want := []string{tmp, dir, jobs}; !reflect.DeepEqual(rec.names, want) {
		t.Errorf("syncs of a record: %q\nwant %q", rec.names, want)
	}
	if err := writeRecordSync(dir, st, nil); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, fail := range []string{tmp, dir, jobs} {
		rec := &syncLog{fail: fail}
		next := st
		next.Message = "changed"
		err := writeRecordSync(dir, next, rec.sync)
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("writeRecordSync whose sync of %s fails = %v, want EIO", fail, err)
		}
		if fail == tmp {
			if b, _ := os.ReadFile(filepath.Join(dir, recordFile)); string(b) != string(old) {
				t.Errorf("a record whose sync failed replaced the old one")
			}
		}
	}
}
