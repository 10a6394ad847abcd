package job

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jobworker/jobworker/ringlog"
)

const recordFile = "job.json"

// persist writes j's record atomically: a temporary file, fsync, rename
// over the old record, fsync of the directory. Writes of one job are
// ordered, and each writes the newest state.
func (m *Manager) persist(j *job) error {
	j.persistMu.Lock()
	defer j.persistMu.Unlock()
	m.mu.Lock()
	st := j.st
	m.mu.Unlock()
	if err := writeRecord(j.dir, st, true); err != nil {
		return fmt.Errorf("record job %s: %w", st.ID, err)
	}
	return nil
}

// writeRecord writes st into dir's record. Without sync it only proves
// that the record fits on the disk: a job is started only when that holds.
func writeRecord(dir string, st Status, sync bool) error {
	b, err := encodeRecord(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, recordFile)); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readRecord reads dir's record, which must be of the job named by dir.
func readRecord(dir string) (Status, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return Status{}, err
	}
	st, err := decodeRecord(b)
	if err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, recordFile), err)
	}
	if !ValidID(st.ID) || st.ID != filepath.Base(dir) {
		return st, fmt.Errorf("%s: record of job %q in the directory of %s", filepath.Join(dir, recordFile), st.ID, filepath.Base(dir))
	}
	return st, nil
}

// load reads every record; a job that was not finished is failed now.
func (m *Manager) load() error {
	entries, err := os.ReadDir(m.jobsDir())
	if err != nil {
		return fmt.Errorf("job manager: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !ValidID(e.Name()) {
			continue
		}
		dir := filepath.Join(m.jobsDir(), e.Name())
		st, err := readRecord(dir)
		if errors.Is(err, errNewerRecord) {
			m.report(fmt.Errorf("load job %s: %w; keeping it on disk, not loaded", e.Name(), err))
			continue
		}
		if err != nil {
			// A job whose record never got written (the server died
			// in StartJob) never existed for any client.
			m.report(fmt.Errorf("load job %s: %w; removing it", e.Name(), err))
			os.RemoveAll(dir)
			continue
		}
		log, err := ringlog.Open(filepath.Join(dir, "output"), m.logOptions())
		if err != nil {
			return fmt.Errorf("job manager: open output of job %s: %w", st.ID, err)
		}
		j := &job{dir: dir, log: log, st: st, changed: make(chan struct{}), done: make(chan struct{})}
		close(j.done)
		if !st.State.Ended() {
			j.st.State, j.st.Reason = StateFailed, ReasonServerRestarted
			j.st.Message = "the server stopped while the job was " + string(st.State) + "; it was killed when the server started again"
			j.st.Ended = time.Now()
			if err := m.persist(j); err != nil {
				return err
			}
		}
		m.jobs[st.ID] = j
	}
	return nil
}

// storageError marks an error of the state directory that is a lack of
// space as ErrStateFull, which the caller can act on (free space).
func storageError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrStateFull, err)
	}
	return err
}
