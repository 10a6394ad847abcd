//go:build !integration

package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jobworker/jobworker/internal/testchild"
	"github.com/jobworker/jobworker/job"
)

// TestStateDirMode: README's "--state-dir (mode 0700)". The job manager
// serve opens on it leaves it, and its jobs/ directory, 0700: one it
// creates, and one that exists already with a wider mode.
func TestStateDirMode(t *testing.T) {
	tests := []struct {
		name string
		mode os.FileMode // of the directory before; 0: it does not exist
	}{
		{"new", 0},
		{"existing 0755", 0o755},
		{"existing 0777", 0o777},
		{"existing 0711", 0o711},
		{"existing 0700", 0o700},
	}
	h := testchild.FakeHierarchy(t)
	for _, tt := range tests {
		dir := filepath.Join(t.TempDir(), "state")
		if tt.mode != 0 {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
		}
		m, err := job.Open(job.Config{StateDir: dir, Cgroups: h, OnError: func(err error) { t.Errorf("job manager: %v", err) }})
		if err != nil {
			t.Errorf("%s: job.Open(%s): %v", tt.name, dir, err)
			continue
		}
		if err := m.Close(context.Background()); err != nil {
			t.Errorf("%s: close: %v", tt.name, err)
		}
		for _, d := range []string{dir, filepath.Join(dir, "jobs")} {
			fi, err := os.Stat(d)
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
				continue
			}
			if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: after job.Open, %s has mode %v, want drwx------", tt.name, d, fi.Mode())
			}
		}
	}
}
