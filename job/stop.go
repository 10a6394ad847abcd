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
// not ended after grace, kills its whole cgroup. A job that was sent
// SIGTERM already (a second stop, or a stop after its timeout) is not sent
// it again, which would run its handler twice: the shorter of the graces
// applies.
func (m *Manager) terminate(j *job, grace time.Duration) {
	m.mu.Lock()
	p, g, done, sent := j.proc, j.group, j.done, j.termSent
	j.termSent = true
	m.mu.Unlock()
	if !sent {
		// The shim made the job's process a session and group leader.
		if err := unix.Kill(-p.Pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
			m.report(fmt.Errorf("stop job %s: SIGTERM: %w", j.st.ID, err))
		}
		// The job's process is PID 1 of its own PID namespace, and the
		// kernel delivers a signal to such a process only if it handles
		// it (pid_namespaces(7)). One that neither handles nor ignores
		// SIGTERM would have died of it anywhere else: it is killed now
		// rather than after a grace it cannot use.
		if !handlesSignal(p.Pid, unix.SIGTERM) {
			grace = 0
		}
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := g.Kill(ctx); err != nil && !errors.Is(err, os.ErrNotExist) {
				select {
				case <-done: // removed because it ended meanwhile
				default:
					m.report(err)
				}
			}
		}
	}()
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
// that already ended is not an error: its status is returned.
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
