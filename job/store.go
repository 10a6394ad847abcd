package job

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jobworker/jobworker/ringlog"
)

const recordFile = "job.json"

// syncFunc makes an open file or directory durable: (*os.File).Sync, or in
// a test a recorder of what is synced in which order.
type syncFunc func(*os.File) error

// persist writes j's record durably (see writeRecordSync). Writes of one
// job are ordered, and each writes the newest state.
func (m *Manager) persist(j *job) error {
	j.persistMu.Lock()
	defer j.persistMu.Unlock()
	m.mu.Lock()
	st, trimmed := j.st, j.trimmed
	m.mu.Unlock()
	st = j.withRecord(st, trimmed)
	if err := writeRecord(j.dir, st, true); err != nil {
		return fmt.Errorf("record job %s: %w", st.ID, err)
	}
	if st.State.Ended() {
		m.mu.Lock()
		j.trimLocked()
		m.mu.Unlock()
	}
	return nil
}

// writeRecord writes st into dir's record. With sync the record is on disk
// when it returns (writeRecordSync). Without sync it only proves that the
// record fits on the disk: a job is started only when that holds.
func writeRecord(dir string, st Status, sync bool) error {
	var s syncFunc
	if sync {
		s = (*os.File).Sync
	}
	return writeRecordSync(dir, st, s)
}

// writeRecordSync writes st into dir's record atomically (writeFileSync),
// then syncs dir's parent (the jobs directory), which makes the name of the
// job's directory durable: Start made it, and its first synced record is
// when it must last. A crash at any point leaves the old record or the new
// one, whole. A nil sync syncs nothing.
func writeRecordSync(dir string, st Status, sync syncFunc) error {
	b, err := encodeRecord(st)
	if err != nil {
		return err
	}
	if err := writeFileSync(dir, recordFile, append(b, '\n'), sync); err != nil {
		return err
	}
	if sync == nil {
		return nil
	}
	return syncDir(filepath.Dir(dir), sync)
}

// writeFileSync replaces dir/name with b atomically: a temporary file
// (mode 0600), synced, renamed over the old one; then dir is synced, which
// makes the new name durable. Each sync follows the change it makes
// durable. A nil sync syncs nothing.
func writeFileSync(dir, name string, b []byte, sync syncFunc) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if sync != nil {
		if err := sync(f); err != nil {
			f.Close()
			return fmt.Errorf("sync %s: %w", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	if sync == nil {
		return nil
	}
	return syncDir(dir, sync)
}

// syncDir syncs the directory dir: the names in it.
func syncDir(dir string, sync syncFunc) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := sync(d); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// readRecord reads dir's record, which must be of the job named by dir. An
// error of reading the file is returned as the os package gives it; a
// record of a newer format wraps errNewerRecord; a record read in full that
// is not a record of this job is a *damagedError (see recordAction).
func readRecord(dir string) (Status, error) {
	path := filepath.Join(dir, recordFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Status{}, err
	}
	st, err := decodeRecord(b)
	if errors.Is(err, errNewerRecord) {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	if err != nil {
		return st, &damagedError{path: path, err: err, data: b}
	}
	if !ValidID(st.ID) || st.ID != filepath.Base(dir) {
		return st, &damagedError{path: path, err: fmt.Errorf("record of job %q in the directory of %s", st.ID, filepath.Base(dir)), data: b}
	}
	return st, nil
}

// load reads every job directory: a job that was not finished is failed
// now; one that is damaged is listed as such (loadJob). Only a jobs
// directory that cannot be listed makes it fail: no job's damage does.
func (m *Manager) load() error {
	entries, err := os.ReadDir(m.jobsDir())
	if err != nil {
		return fmt.Errorf("job manager: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !ValidID(e.Name()) {
			continue
		}
		if j := m.loadJob(filepath.Join(m.jobsDir(), e.Name())); j != nil {
			j.pubState = j.st.State
			m.jobs[j.st.ID] = j
			if j.st.RequestID != "" {
				done := make(chan struct{})
				close(done)
				m.requests[requestKey(j.st.Owner, j.st.RequestID)] = &request{done: done, id: j.st.ID}
			}
		}
	}
	return nil
}

// loadJob reads the job in dir: the job to list, or nil when the job is
// left on disk unloaded, or removed (recordAction says which). Whatever it
// finds damaged it reports, and the job's Damaged says.
func (m *Manager) loadJob(dir string) *job {
	id := filepath.Base(dir)
	st, rerr := readRecord(dir)
	action := recordAction(rerr)
	switch action {
	case loadNewer:
		m.report(fmt.Errorf("load job %s: %w; keeping it on disk, not loaded", id, rerr))
		return nil
	case loadKeep:
		m.report(fmt.Errorf("load job %s: %w; keeping it on disk, not loaded: the next start tries again", id, rerr))
		return nil
	}
	log, lerr := ringlog.Open(filepath.Join(dir, "output"), m.logOptions())
	var damage, causes []string
	switch action {
	case loadNoRecord:
		if noOutput(log, lerr) {
			// The server died in StartJob before the job's first record:
			// the job never existed for any client, and left nothing.
			m.report(fmt.Errorf("load job %s: %w, and it has no output: a start that did not finish; removing it", id, rerr))
			os.RemoveAll(dir)
			return nil
		}
		st = unknownJob(dir, nil)
		damage = append(damage, "its record is missing: who owns it, what it ran and how it ended are unknown")
		causes = append(causes, rerr.Error())
	case loadDamaged:
		var de *damagedError
		errors.As(rerr, &de)
		st = unknownJob(dir, de)
		damage = append(damage, de.describe(st.Owner != ""))
		causes = append(causes, rerr.Error())
	}
	if lerr != nil {
		damage = append(damage, outputDamage(log, lerr))
		causes = append(causes, lerr.Error())
	}
	j := &job{dir: dir, log: log, st: st, changed: make(chan struct{}), done: make(chan struct{})}
	close(j.done)
	if !st.State.Ended() {
		j.st.State, j.st.Reason = StateFailed, ReasonServerRestarted
		j.st.Message = "the server stopped while the job was " + string(st.State) + "; it was killed when the server started again"
		j.st.Ended = time.Now()
		if err := m.persist(j); err != nil {
			damage = append(damage, "its final state could not be recorded at start-up: the record on disk still says "+string(st.State))
			causes = append(causes, err.Error())
		}
	}
	if rerr == nil && j.st.State.Ended() {
		j.trimLocked()
	}
	if len(damage) > 0 {
		j.st.Damaged = strings.Join(damage, "; ")
		m.report(fmt.Errorf("load job %s: listed as damaged: %s", id, strings.Join(causes, "; ")))
	}
	return j
}

// storageError marks an error of the state directory that is a lack of
// space as ErrStateFull, which the caller can act on (free space).
func storageError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrStateFull, err)
	}
	return err
}
