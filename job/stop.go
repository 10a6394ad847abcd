package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// terminate sends SIGTERM to the job's process group and, if the job has
// not ended after grace, kills its whole cgroup. A job is sent SIGTERM once
// (a second stop, or a stop after its timeout, would run its handler
// twice) and has one kill timer: a later stop with an earlier deadline
// moves it forward, never adds another, so stops that do not wait for the
// end (their context is cancelled) cost nothing that outlives them.
//
// A job whose process has ended (supervise took j.proc to reap it) is sent
// no signal; its supervisor kills whatever is left of it, and the kill
// timer is only a backstop.
func (m *Manager) terminate(j *job, grace time.Duration) {
	m.mu.Lock()
	var err error
	if j.st.State == StateRunning {
		if !j.termSent && j.proc != nil {
			j.termSent = true
			var cut bool
			cut, err = m.sigtermLocked(j)
			if cut {
				grace = 0
			}
		}
		m.armKillLocked(j, grace)
	}
	m.mu.Unlock()
	m.report(err)
}

// sigtermLocked sends SIGTERM to the job's process group and reports
// whether the grace is to be cut short: when the job's cgroup is empty
// right after, or the job has a PID namespace of its own (pidNamespace)
// and its only process is its PID 1, which neither handles nor ignores
// SIGTERM. Such a process would have died of the signal anywhere else, but
// as PID 1 of its own PID namespace the kernel delivers it only the
// signals it handles (pid_namespaces(7)): it cannot use a grace. (A job in
// the host's PID namespace dies of the signal itself, and ends by it.) Any other process of the job keeps it, so that a wrapper
// such as `sh -c 'app; cleanup'` (a PID 1 without a handler) gives app the
// time to finish and cleanup the time to run.
//
// Called with m.mu held and j.proc set, which is what makes the pid safe
// to use. supervise waits for the process to end without reaping it, then
// clears j.proc under m.mu, and reaps it only after that (reap). So here
// the process is alive or a zombie, and its pid cannot have been given to
// another process; neither can its process group id, which is the same
// number (the shim made the process a session and group leader). The
// signal and the look at /proc/PID/status reach the job and nothing else.
func (m *Manager) sigtermLocked(j *job) (cut bool, err error) {
	pid := j.proc.Pid
	if err := unix.Kill(-pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		return false, fmt.Errorf("stop job %s: SIGTERM: %w", j.st.ID, err)
	}
	procs, err := j.group.Procs()
	if err != nil {
		return false, fmt.Errorf("stop job %s: count its processes: %w", j.st.ID, err)
	}
	switch {
	case len(procs) == 0:
		return true, nil
	case len(procs) == 1 && procs[0] == pid && j.pidNamespace():
		return !handlesSignal(pid, unix.SIGTERM), nil
	}
	return false, nil
}

// handlesSignal reports whether process pid catches or ignores sig, from
// the SigCgt and SigIgn masks of /proc/PID/status. When it cannot tell (the
// process is gone), it says yes, which keeps the grace.
func handlesSignal(pid int, sig unix.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	bit := uint64(1) << (uint(sig) - 1)
	found := 0
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || k != "SigCgt" && k != "SigIgn" {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return true
		}
		if mask&bit != 0 {
			return true
		}
		found++
	}
	return found < 2
}

// Stop stops a job: a pending one leaves the queue; a running one gets
// SIGTERM, then after grace (nil: the default) its cgroup is killed. Stop
// waits for the job to end (or ctx) and returns its final status. A job
// that already ended is not an error: its status is returned. A stop whose
// ctx ends first still stands: the job is killed at the end of its grace.
func (m *Manager) Stop(ctx context.Context, id string, grace *time.Duration) (Status, error) {
	g := m.cfg.StopGrace
	if grace != nil && *grace >= 0 {
		g = *grace
	}
	m.mu.Lock()
	j, ok := m.jobs[id]
	if !ok {
		m.mu.Unlock()
		return Status{}, ErrNotFound
	}
	switch j.st.State {
	case StatePending:
		if i := slices.Index(m.queue, j); i >= 0 {
			m.queue = slices.Delete(m.queue, i, i+1)
			j.st.State, j.st.Ended = StateStopped, time.Now()
			m.notifyLocked(j)
			m.mu.Unlock()
			j.log.Close()
			m.report(m.persist(j))
			close(j.done)
			m.schedule()
			return m.snapshot(j), nil
		}
		// Being launched right now: launch stops it when it is running.
		j.stopReq, j.stopWait = true, g
	case StateRunning:
		j.stopReq = true
	}
	running := j.st.State == StateRunning
	done := j.done
	m.mu.Unlock()
	if running {
		m.terminate(j, g)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return m.snapshot(j), ctx.Err()
	}
	return m.snapshot(j), nil
}
