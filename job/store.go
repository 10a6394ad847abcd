package job

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	b, err := json.MarshalIndent(st, "", "  ")
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

func readRecord(dir string) (Status, error) {
	var st Status
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, recordFile), err)
	}
	if !ValidID(st.ID) || st.ID != filepath.Base(dir) {
		return st, fmt.Errorf("%s: record of job %q in the directory of %s", filepath.Join(dir, recordFile), st.ID, filepath.Base(dir))
	}
	return st, nil
}
