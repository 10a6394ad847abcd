//go:build !integration

package job

import (
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/jobworker/jobworker/cgroupfs"
)

// TestClassifyOOM: the cgroup's oom_kill count makes a job FAILED
// oom_killed however its PID 1 ended (a wrapper shell exits 137, or even
// 0); without OOM kills the exit code or signal decides; a stop or a
// timeout still comes first.
func TestClassifyOOM(t *testing.T) {
	exit := func(script string) *os.ProcessState {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Stderr = io.Discard
		cmd.Run()
		if cmd.ProcessState == nil {
			t.Fatalf("sh -c %q did not run", script)
		}
		return cmd.ProcessState
	}
	tests := []struct {
		name     string
		ps       *os.ProcessState
		oomKills uint64
		stopped  bool
		timedOut bool
		state    State
		reason   Reason
	}{
		{"wrapper exits 137", exit("exit 137"), 1, false, false, StateFailed, ReasonOOMKilled},
		{"wrapper exits 0", exit("exit 0"), 2, false, false, StateFailed, ReasonOOMKilled},
		{"killed itself", exit("kill -9 $$"), 1, false, false, StateFailed, ReasonOOMKilled},
		{"exit 3 without OOM", exit("exit 3"), 0, false, false, StateFailed, ReasonExitCode},
		{"exit 137 without OOM", exit("exit 137"), 0, false, false, StateFailed, ReasonExitCode},
		{"exit 0 without OOM", exit("exit 0"), 0, false, false, StateCompleted, ReasonNone},
		{"SIGKILL without OOM", exit("kill -9 $$"), 0, false, false, StateFailed, ReasonSignal},
		{"stopped", exit("exit 137"), 1, true, false, StateStopped, ReasonNone},
		{"timed out", exit("exit 137"), 1, false, true, StateFailed, ReasonTimedOut},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manager{}
			j := &job{stopReq: tt.stopped, timedOut: tt.timedOut}
			j.st.Usage = cgroupfs.Usage{OOMKills: tt.oomKills}
			j.st.Limits.MemoryMax = 32 << 20
			m.classifyLocked(j, tt.ps, nil)
			if j.st.State != tt.state || j.st.Reason != tt.reason {
				t.Errorf("classify(%v, oom_kill %d) = %s/%s (%s), want %s/%s", tt.ps, tt.oomKills, j.st.State, j.st.Reason, j.st.Message, tt.state, tt.reason)
			}
		})
	}
}
