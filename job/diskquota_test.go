//go:build !integration

package job

import (
	"context"
	"errors"
	"testing"

	"github.com/jobworker/jobworker/internal/testchild"
)

// TestOutputQuota: past a user's output quota the user's oldest finished
// jobs are removed first, another user's are kept, and when that is not
// enough the job that wrote has its oldest output dropped.
func TestOutputQuota(t *testing.T) {
	state := t.TempDir()
	alice := storeJobsWithOutput(t, state, "alice", 4, 1, make([]byte, 100))
	bob := storeJobsWithOutput(t, state, "bob", 2, 1, make([]byte, 100))
	m, err := Open(Config{StateDir: state, Cgroups: testchild.FakeHierarchy(t), Quotas: Quotas{Output: 150}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	m.mu.Lock()
	newest := m.jobs[alice[3]]
	m.mu.Unlock()
	m.enforceOutputQuota(newest)
	for i, id := range alice {
		_, err := m.Get(id)
		if removed := errors.Is(err, ErrNotFound); removed != (i < 3) {
			t.Errorf("alice's job %d of 4 (100 bytes each, quota 150): removed %v, want the oldest 3 removed", i, removed)
		}
	}
	if newest.log.Kept() != 100 {
		t.Errorf("alice's newest job keeps %d bytes, want its 100 (within the quota once the others are gone)", newest.log.Kept())
	}
	for _, id := range bob {
		if _, err := m.Get(id); err != nil {
			t.Errorf("bob's job: %v, want it kept", err)
		}
	}
	// Within a quota of 30, a running job keeps its newest segments.
	m.mu.Lock()
	m.cfg.Quotas.Output = 30
	newest.st.State = StateRunning
	m.mu.Unlock()
	m.enforceOutputQuota(newest)
	if newest.log.Kept() > 30 || newest.log.Start() != 70 {
		t.Errorf("alice's running job past a quota of 30 keeps %d bytes from %d, want 30 from 70", newest.log.Kept(), newest.log.Start())
	}
	m.mu.Lock()
	newest.st.State = StateCompleted
	m.mu.Unlock()
}
