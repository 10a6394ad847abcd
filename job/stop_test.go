//go:build !integration

package job

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"golang.org/x/sys/unix"
)

// TestStopAfterReapSignalsNothing: a stop that comes after supervise
// reaped the job's process, but before the job's end is recorded (the
// window a stop racing the job's end falls into), sends no signal, while
// the kill timer still stands. A signal then would go to the leader's pid
// as a process group id, which the kernel may give to another process once
// the group is empty. Here a process is kept in the group to see it: the
// group's leader exits and is reaped, its other member is stopped with
// SIGTERM trapped, so a SIGTERM sent to the group would stay pending in it
// for the test to find.
func TestStopAfterReapSignalsNothing(t *testing.T) {
	leader := exec.Command("cat")
	leader.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := leader.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	member := exec.Command("sh", "-c", `trap 'echo TERM' TERM; kill -STOP $$; exit 0`)
	member.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: leader.Process.Pid}
	if err := member.Start(); err != nil {
		stdin.Close()
		leader.Wait()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		member.Process.Kill()
		member.Wait()
	})
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, member.Process.Pid, &info, unix.WSTOPPED, nil); err != nil {
		t.Fatalf("wait for the group's member to stop: %v", err)
	}

	m := &Manager{jobs: map[string]*job{}, cfg: Config{OnError: func(err error) { t.Errorf("manager: %v", err) }}}
	j := &job{st: Status{ID: "reaped", State: StateRunning}, proc: leader.Process, done: make(chan struct{})}
	// Nothing else uses j by the time this runs (and a failed test may
	// have left m.mu locked).
	t.Cleanup(func() { dropKillTimerLocked(j) })
	stdin.Close()
	ps, err := m.reap(j)
	if err != nil || !ps.Exited() {
		t.Fatalf("reap = %v, %v; want the leader's exit", ps, err)
	}
	m.terminate(j, time.Hour)

	if pending := pendingSignals(t, member.Process.Pid); pending&sigBit(unix.SIGTERM) != 0 {
		t.Errorf("a stop after the reap sent SIGTERM to the leader's process group (pending %#x)", pending)
	}
	if j.kill == nil {
		t.Error("a stop after the reap armed no kill timer; want the stop to stand")
	}
	// The probe sees a SIGTERM that is sent.
	if err := unix.Kill(member.Process.Pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if pending := pendingSignals(t, member.Process.Pid); pending&sigBit(unix.SIGTERM) == 0 {
		t.Errorf("SIGTERM sent to the stopped member is not pending (%#x): the probe sees nothing", pending)
	}
}

func sigBit(sig unix.Signal) uint64 { return 1 << (uint(sig) - 1) }

// pendingSignals is the mask of signals pending for process pid as a
// whole and for its main thread (ShdPnd | SigPnd of /proc/PID/status).
func pendingSignals(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var mask uint64
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "ShdPnd" || k == "SigPnd" {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			mask |= n
		}
	}
	return mask
}

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
