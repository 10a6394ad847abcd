package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jobworker/jobworker/ringlog"
)

// What Open does with a job it finds damaged on disk. A damaged job never
// stops the server from starting: it is listed, FAILED with ReasonDamaged
// when its record cannot be read, with Status.Damaged saying what is wrong
// and what can still be read, and the damage is reported (Config.OnError).
// A job is never removed because a read of it failed.

// loadAction is what load does with a job directory, decided by the error
// of reading its record (recordAction).
type loadAction int

const (
	// loadSound: the record is read; the job is loaded.
	loadSound loadAction = iota
	// loadDamaged: the record was read in full and is not a record of
	// this job, for good: the job is listed as damaged, under its
	// directory's name, with what could be read of the record when it is
	// of this job (salvageRecord), its owner unknown otherwise.
	loadDamaged
	// loadNoRecord: there is no record. With no output either, the
	// server died in StartJob before the job's first record (a job is
	// started and queued only once its record is synced), the job never
	// existed for a client, and its directory is removed; otherwise the
	// job is listed as damaged, its owner unknown.
	loadNoRecord
	// loadNewer: a newer jobworker's record, not damaged: kept on disk,
	// not loaded.
	loadNewer
	// loadKeep: reading the record failed for another reason: kept on
	// disk as it is, not loaded, reported; the next Open tries again.
	loadKeep
)

// recordAction is what load does with a job whose record readRecord read
// with err. Only the bytes of a record say that it is damaged: a record
// read to its end that is not JSON (a torn write), not of a format version
// or state that jobworker writes, or of another job than its directory
// names, reads so again at every start. Every error of reading the file
// but its absence (EMFILE, ENFILE, ENOMEM, EIO, EACCES, ELOOP, EISDIR, ...)
// says nothing of the bytes and may pass (a descriptor limit, a disk that
// recovers, an operator's mistake undone): such a job is left as it is.
func recordAction(err error) loadAction {
	var de *damagedError
	switch {
	case err == nil:
		return loadSound
	case errors.As(err, &de):
		return loadDamaged
	case errors.Is(err, errNewerRecord):
		return loadNewer
	case errors.Is(err, fs.ErrNotExist):
		return loadNoRecord
	default:
		return loadKeep
	}
}

// damagedError is a record read in full that is not a record of the job
// its directory names.
type damagedError struct {
	path string
	err  error
	data []byte // the record's bytes, for salvageRecord
}

func (e *damagedError) Error() string { return e.path + ": " + e.err.Error() }
func (e *damagedError) Unwrap() error { return e.err }

// describe says what is wrong with the record, for Status.Damaged (without
// the server's path, which the report has); salvaged says that what could
// be read of it is shown.
func (e *damagedError) describe(salvaged bool) string {
	s := "its record is damaged (" + e.err.Error() + ")"
	if salvaged {
		return s + ": how the job ended is unknown; what could be read of the record is shown"
	}
	return s + ": who owns it, what it ran and how it ended are unknown"
}

// salvageRecord reads what it can of a damaged record: each top-level key
// whose value is whole (followed by more bytes) and of the right type, up
// to where the bytes stop being JSON (a torn write keeps the keys before
// the tear). ok is false when the bytes do not even begin a JSON object.
func salvageRecord(b []byte) (r record, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return r, false
	}
	for dec.More() {
		t, err := dec.Token()
		key, isKey := t.(string)
		if err != nil || !isKey {
			break
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		// A number cut short is still a number: a value counts only
		// when something follows it.
		if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) == 0 {
			break
		}
		one, err := json.Marshal(map[string]json.RawMessage{key: v})
		if err != nil {
			break
		}
		// A value of the wrong type is left out; the others stay.
		var k record
		if json.Unmarshal(one, &k) == nil {
			json.Unmarshal(one, &r)
		}
	}
	return r, true
}

// unknownJob is the Status of the job in dir whose record is damaged (de)
// or missing (nil): FAILED with ReasonDamaged under its directory's name,
// with what salvageRecord could read of the record when that names this
// job in a format this package reads. Otherwise nothing is known, not even
// its owner: only admin and reader see a job without one. Times that are
// not known are the record's (or the directory's) modification time, so
// that retention removes the job in its time.
func unknownJob(dir string, de *damagedError) Status {
	id := filepath.Base(dir)
	var st Status
	if de != nil {
		if r, ok := salvageRecord(de.data); ok && r.ID == id && r.Version >= 0 && r.Version <= recordVersion {
			st = r.status()
		}
	}
	st.ID = id
	st.State, st.Reason = StateFailed, ReasonDamaged
	// How it ended is unknown: Damaged says why.
	st.ExitCode, st.Signal, st.Message = nil, nil, ""
	t := modTime(filepath.Join(dir, recordFile), dir)
	if st.Created.IsZero() {
		st.Created = t
	}
	if st.Ended.IsZero() {
		st.Ended = t
	}
	return st
}

// modTime is the modification time of the first of paths that has one,
// or now.
func modTime(paths ...string) time.Time {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			return fi.ModTime()
		}
	}
	return time.Now()
}

// noOutput reports whether a job's output, as ringlog.Open found it (log,
// err), holds nothing at all: no directory, or one without a byte.
func noOutput(log *ringlog.Log, err error) bool {
	if log.Size() != 0 {
		return false
	}
	if err == nil {
		return true
	}
	var de *ringlog.DamageError
	return errors.As(err, &de) && len(de.Gaps) == 0 && len(de.Problems) == 1 && errors.Is(de.Problems[0], fs.ErrNotExist)
}

// outputDamage says what ringlog.Open found wrong with a job's output
// (err, a *ringlog.DamageError) and what of it is readable, for
// Status.Damaged: without the server's paths, which the report has.
func outputDamage(log *ringlog.Log, err error) string {
	var de *ringlog.DamageError
	if !errors.As(err, &de) {
		return "its output could not be opened"
	}
	var parts []string
	for _, g := range de.Gaps {
		parts = append(parts, fmt.Sprintf("output bytes %d to %d are missing", g.Start, g.End-1))
	}
	switch n := len(de.Problems); {
	case n == 0:
	case log.Size() == 0 && len(de.Gaps) == 0 && errors.Is(err, fs.ErrNotExist):
		parts = append(parts, "its output is missing")
	case n == 1:
		parts = append(parts, "one of its output files could not be used")
	default:
		parts = append(parts, fmt.Sprintf("%d of its output files could not be used", n))
	}
	readable := "no output is readable"
	if start, size := log.Start(), log.Size(); size > start {
		readable = fmt.Sprintf("output bytes %d to %d are readable", start, size-1)
		if len(de.Gaps) > 0 {
			readable += " but for the missing ones"
		}
	}
	return strings.Join(parts, ", ") + "; " + readable
}
