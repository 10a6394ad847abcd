//go:build !integration

package job

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/ringlog"
)

// fullStatus is the job recorded in testdata/record-unversioned.json, which
// the server wrote before records had a version (writeRecord of this
// Status, as commit 8fccde6 has it): every field is set.
func fullStatus() Status {
	code, sig := 3, 9
	return Status{
		ID: "6f9619ff-8b86-4011-b42d-00c04fc964ff", Owner: "alice", Command: "sh", Args: []string{"-c", "exit 3", "ünïcode"},
		Env: map[string]string{"A": "b", "LANG": "C.UTF-8"}, Dir: "/srv/work",
		Limits: cgroupfs.Limits{
			CPUWeight: 250, CPUs: 1.5, MemoryMax: 1 << 30, MemoryHigh: 900 << 20, IOWeight: 300,
			IOMax:   []cgroupfs.IOMax{{Device: "8:0", ReadBPS: 1, WriteBPS: 2, ReadIOPS: 3, WriteIOPS: 4}, {Device: "/dev/vdb", WriteBPS: 5 << 20}},
			PidsMax: 64,
		},
		Timeout: 90 * time.Second, State: StateFailed, Reason: ReasonOOMKilled, ExitCode: &code, Signal: &sig,
		Message: "killed by the OOM killer at its memory limit of 1073741824 bytes",
		Created: time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC),
		Started: time.Date(2026, 12, 1, 10, 0, 1, 5, time.UTC),
		Ended:   time.Date(2026, 12, 1, 11, 30, 0, 0, time.FixedZone("", 3600)),
		Usage: cgroupfs.Usage{
			CPUUsageUsec: 11, CPUUserUsec: 12, CPUSystemUsec: 13, MemoryCurrent: 14, MemoryPeak: 15,
			IOReadBytes: 16, IOWriteBytes: 17, IOReadOps: 18, IOWriteOps: 19, PidsCurrent: 20, OOMKills: 21,
		},
	}
}

// notInRecord are the fields of Status that a record does not hold: Get
// and List take the output figures from the output log, and Open finds
// Damaged anew each time.
var notInRecord = []string{"OutputSize", "OutputStart", "Damaged"}

// newerThanFixture are the fields records hold since the fixture was
// written; TestRecordNewFields round-trips them.
var newerThanFixture = []string{"RequestID", "Network", "SecretEnvNames"}

// loadFixture reads testdata/name as the record of job id.
func loadFixture(t *testing.T, name, id string) (Status, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, recordFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return readRecord(dir)
}

// sameStatus reports which fields of got and want differ, times compared
// as instants (a zone's name is not recorded).
func sameStatus(got, want Status) []string {
	var diff []string
	for _, f := range []struct {
		name string
		a, b time.Time
	}{{"Created", got.Created, want.Created}, {"Started", got.Started, want.Started}, {"Ended", got.Ended, want.Ended}} {
		if !f.a.Equal(f.b) {
			diff = append(diff, f.name)
		}
	}
	got.Created, got.Started, got.Ended = time.Time{}, time.Time{}, time.Time{}
	want.Created, want.Started, want.Ended = time.Time{}, time.Time{}, time.Time{}
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			diff = append(diff, gv.Type().Field(i).Name)
		}
	}
	return diff
}

// TestRecordFixtureFull: a record written before records had a version
// loads with every field as it was written.
func TestRecordFixtureFull(t *testing.T) {
	want := fullStatus()
	// The fixture proves every field only while it sets every field: a
	// field added to Status must be added to the record and here.
	v := reflect.ValueOf(want)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if v.Field(i).IsZero() != (slices.Contains(notInRecord, name) || slices.Contains(newerThanFixture, name)) {
			t.Errorf("fullStatus().%s is zero = %v; every recorded field must be set (and only those)", name, v.Field(i).IsZero())
		}
	}
	for _, s := range []any{want.Limits, want.Limits.IOMax[0], want.Usage} {
		v := reflect.ValueOf(s)
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && v.Field(i).IsZero() {
				t.Errorf("fullStatus(): %T.%s is not set", s, v.Type().Field(i).Name)
			}
		}
	}
	got, err := loadFixture(t, "record-unversioned.json", want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := sameStatus(got, want); len(d) > 0 {
		t.Errorf("record-unversioned.json loads as %+v\nwant %+v\nfields that differ: %v", got, want, d)
	}
}

// TestRecordFixtureMinimal: an unversioned record with only what a
// running job has loads with the rest zero, as it was.
func TestRecordFixtureMinimal(t *testing.T) {
	want := Status{ID: "00000000-0000-4000-8000-000000000001", Owner: "bob", Command: "/bin/sleep", State: StateRunning, Created: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	got, err := loadFixture(t, "record-unversioned-minimal.json", want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := sameStatus(got, want); len(d) > 0 {
		t.Errorf("record-unversioned-minimal.json loads as %+v\nwant %+v\nfields that differ: %v", got, want, d)
	}
}

// keys lists every key of a JSON document, nested ones as a.b (array
// elements as a[]).
func keys(t *testing.T, b []byte) map[string]bool {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if prefix == "" && (k == "env") {
					out[k] = true // its keys are the job's variables
					continue
				}
				out[prefix+k] = true
				walk(prefix+k+".", e)
			}
		case []any:
			for _, e := range v {
				walk(strings.TrimSuffix(prefix, ".")+"[].", e)
			}
		}
	}
	walk("", v)
	return out
}

// TestRecordFormat: the record written now has the keys of the records
// written before the format had a version, spelled the same, plus
// "version": 1 (and without the output figures, which come from the log).
func TestRecordFormat(t *testing.T) {
	old, err := os.ReadFile(filepath.Join("testdata", "record-unversioned.json"))
	if err != nil {
		t.Fatal(err)
	}
	st := fullStatus()
	dir := filepath.Join(t.TempDir(), st.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(dir, st, true); err != nil {
		t.Fatal(err)
	}
	now, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		t.Fatal(err)
	}
	want := keys(t, old)
	delete(want, "output_size")
	delete(want, "output_start")
	want["version"] = true
	got := keys(t, now)
	if !maps.Equal(got, want) {
		t.Errorf("record keys = %v\nwant %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(now, &v); err != nil || v.Version == nil || *v.Version != 1 {
		t.Errorf("record version = %v (%v), want 1", v.Version, err)
	}
	back, err := readRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := sameStatus(back, st); len(d) > 0 {
		t.Errorf("record round trip = %+v\nwant %+v\nfields that differ: %v", back, st, d)
	}
}

// TestRecordNewerVersion: a record of a format newer than this package
// reads is refused with an error saying so, and Open leaves it on disk
// (a newer jobworker can still read it) while it loads the others.
func TestRecordNewerVersion(t *testing.T) {
	state := t.TempDir()
	jobs := filepath.Join(state, "jobs")
	newer := filepath.Join(jobs, "00000000-0000-4000-8000-000000000002")
	if err := os.MkdirAll(newer, 0o700); err != nil {
		t.Fatal(err)
	}
	rec := `{"version": 2, "id": "00000000-0000-4000-8000-000000000002", "owner": "bob", "command": "/bin/true", "state": "completed"}`
	if err := os.WriteFile(filepath.Join(newer, recordFile), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := readRecord(newer)
	want := filepath.Join(newer, recordFile) + ": the job record's format is newer than this jobworker reads: version 2, this jobworker reads up to 1; a newer jobworker wrote it, run that one"
	if !errors.Is(err, errNewerRecord) || err.Error() != want {
		t.Errorf("readRecord of a version 2 record = %v, want %q", err, want)
	}
	for _, bad := range []string{`{"version": -1, "id": "00000000-0000-4000-8000-000000000002"}`, `{"version": "1"}`} {
		if _, err := decodeRecord([]byte(bad)); err == nil || errors.Is(err, errNewerRecord) {
			t.Errorf("decodeRecord(%s) = %v, want an error that is not errNewerRecord", bad, err)
		}
	}

	st := fullStatus()
	old := filepath.Join(jobs, st.ID)
	if err := os.Mkdir(old, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(old, st, true); err != nil {
		t.Fatal(err)
	}
	log, err := ringlog.Create(filepath.Join(old, "output"), ringlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	var reported []error
	m := &Manager{cfg: Config{StateDir: state, OnError: func(err error) { reported = append(reported, err) }}, jobs: map[string]*job{}}
	if err := m.load(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, j := range m.jobs {
			j.log.Close()
		}
	})
	if _, ok := m.jobs[st.ID]; !ok || len(m.jobs) != 1 {
		t.Errorf("load loaded %d jobs (%v), want only %s", len(m.jobs), slices.Collect(maps.Keys(m.jobs)), st.ID)
	}
	if len(reported) != 1 || !errors.Is(reported[0], errNewerRecord) {
		t.Errorf("load reported %v, want the newer record", reported)
	}
	if b, err := os.ReadFile(filepath.Join(newer, recordFile)); err != nil || string(b) != rec {
		t.Errorf("the newer record after load: %q, %v; want it kept as it was", b, err)
	}
}

// TestRecordNewFields: the fields records gained after the fixture was
// written come back as written, and a record without them (the fixture)
// loads them empty.
func TestRecordNewFields(t *testing.T) {
	want := fullStatus()
	want.RequestID = "0f8fad5b-d9cb-469f-a165-70867728950e"
	want.Network, want.SecretEnvNames = NetworkNone, []string{"API_TOKEN", "DB_PASSWORD"}
	dir := filepath.Join(t.TempDir(), want.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := encodeRecord(want)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"request_id": "0f8fad5b-d9cb-469f-a165-70867728950e"`) {
		t.Errorf("the record holds no request_id: %s", b)
	}
	if err := os.WriteFile(filepath.Join(dir, recordFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := sameStatus(got, want); len(d) > 0 {
		t.Errorf("fields read back differently: %v", d)
	}
	old, err := loadFixture(t, "record-unversioned.json", want.ID)
	if err != nil {
		t.Fatal(err)
	}
	ov := reflect.ValueOf(old)
	for _, name := range newerThanFixture {
		if !ov.FieldByName(name).IsZero() {
			t.Errorf("the fixture's %s = %v; want none", name, ov.FieldByName(name))
		}
	}
}
