//go:build !integration

package job

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jobworker/jobworker/internal/testchild"
)

// TestStateDirReserve: below the reserve a new job is refused as
// ErrStateFull, naming the flag, and nothing of it is left on disk.
func TestStateDirReserve(t *testing.T) {
	state := t.TempDir()
	m, err := Open(Config{StateDir: state, Cgroups: testchild.FakeHierarchy(t), StateDirReserve: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	_, err = m.Start(Request{Owner: "alice", Command: "true"})
	if !errors.Is(err, ErrStateFull) || !strings.Contains(err.Error(), "--state-dir-reserve") {
		t.Fatalf("a job below the reserve: %v, want ErrStateFull naming --state-dir-reserve", err)
	}
	if jobs := m.List(Filter{}); len(jobs) != 0 {
		t.Errorf("%d jobs after a refusal, want none", len(jobs))
	}
}
