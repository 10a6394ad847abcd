package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// supervise follows a running job to its end: output into the log, the
// timeout, the exit, the cleanup of its cgroup, the final record.
func (m *Manager) supervise(j *job, out *os.File) {
	defer m.wg.Done()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		m.copyOutput(j, out)
	}()
	var timer *time.Timer
	if j.st.Timeout > 0 {
		timer = time.AfterFunc(j.st.Timeout, func() { m.expire(j) })
	}
	ps, werr := m.reap(j)
	m.waitGrace(j)
	// The job ended when its process did (or, in a stop, its last one);
	// what follows is the server's cleanup, which a busy server may take
	// longer over.
	exited := time.Now()
	if timer != nil {
		timer.Stop()
	}
	// Whatever the job left running (daemons, children that kept its
	// output open) dies with it; then the pipe reaches EOF.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m.report(j.group.Kill(ctx))
	<-copied
	out.Close()
	usage, uerr := j.group.Usage()
	m.report(uerr)
	m.report(j.group.Remove(ctx))
	m.report(j.log.Close())

	m.mu.Lock()
	j.st.Usage = usage
	j.st.Ended = exited
	m.classifyLocked(j, ps, werr)
	dropKillTimerLocked(j)
	m.releaseLocked(j)
	m.notifyLocked(j)
	m.mu.Unlock()
	m.report(m.persist(j))
	m.prune()
	close(j.done)
	m.schedule()
}

// waitGrace waits, when the job's process ended during a stop (a stop's
// or a timeout's SIGTERM went to its process group), until the rest of the
// job has ended too, or its grace: the grace is cut short only when the
// job's cgroup is empty (product.md, "Jobs"). In the host's PID namespace a
// wrapper such as `sh -c 'app; cleanup'` dies of the SIGTERM as it would
// on a host, and app, which handles it, is given the rest of its grace to
// finish instead of being killed with the wrapper. A later stop that
// brings the kill forward ends the wait with its kill. Of a job with a PID
// namespace of its own, the kernel kills every process when its PID 1
// ends, so the wait is short.
func (m *Manager) waitGrace(j *job) {
	m.mu.Lock()
	var until time.Time
	if j.termSent && j.kill != nil {
		until = j.kill.at
	}
	m.mu.Unlock()
	if until.IsZero() {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), until)
	defer cancel()
	// At the deadline the supervisor kills what is left, as the kill
	// timer does.
	if err := j.group.WaitEmpty(ctx); err != nil && ctx.Err() == nil {
		m.report(err)
	}
}

// reap waits for the job's process to end and reaps it, in an order that
// keeps terminate's signals from reaching any other process. It first
// waits without reaping (waitExited): the process stays a zombie, which
// keeps its pid, and its process group id, from being reused. Then it
// clears j.proc under m.mu, the lock terminate signals under, and only
// then reaps. So terminate, which signals only with j.proc set, signals a
// process that is alive or a zombie, never a pid that is free.
func (m *Manager) reap(j *job) (*os.ProcessState, error) {
	m.mu.Lock()
	p := j.proc
	m.mu.Unlock()
	if err := waitExited(p); err != nil {
		// Not seen to happen: waitid fails only for a process that is
		// not a child. The job can no longer be signalled, but a stop
		// still kills its cgroup at the end of the grace.
		m.report(fmt.Errorf("job %s: wait for its end: %w", j.st.ID, err))
	}
	m.mu.Lock()
	j.proc = nil
	m.mu.Unlock()
	return p.Wait()
}

// waitExited waits until p has ended without reaping it (waitid(2) with
// WNOWAIT), on the pidfd that os.StartProcess took when it started p
// (CLONE_PIDFD). Where the kernel has no pidfds, it waits on the pid,
// which is as safe while p is an unreaped child.
func waitExited(p *os.Process) error {
	var err error
	herr := p.WithHandle(func(pidfd uintptr) {
		err = waitNoReap(unix.P_PIDFD, int(pidfd))
	})
	if errors.Is(herr, os.ErrNoHandle) {
		return waitNoReap(unix.P_PID, p.Pid)
	}
	if herr != nil {
		return herr
	}
	return err
}

// waitNoReap is waitid(idType, id, WEXITED|WNOWAIT), retried on EINTR.
func waitNoReap(idType, id int) error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(idType, id, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// classifyLocked sets the final state from how the process ended. Called
// with m.mu held.
func (m *Manager) classifyLocked(j *job, ps *os.ProcessState, werr error) {
	st := &j.st
	var ws syscall.WaitStatus
	if ps != nil {
		ws, _ = ps.Sys().(syscall.WaitStatus)
	}
	switch {
	case werr != nil:
		st.Message = "waiting for the job failed: " + werr.Error()
	case ws.Exited():
		code := ws.ExitStatus()
		st.ExitCode = &code
	case ws.Signaled():
		sig := int(ws.Signal())
		st.Signal = &sig
	}
	switch {
	case j.stopReq:
		st.State, st.Reason = StateStopped, ReasonNone
	case j.timedOut:
		st.State, st.Reason = StateFailed, ReasonTimedOut
		st.Message = fmt.Sprintf("the job ran longer than its timeout of %v", st.Timeout)
	case j.lostErr != nil:
		st.State, st.Reason = StateFailed, ReasonOutputLost
		st.Message = fmt.Sprintf("%v: %v; the job was killed so that no output is silently lost", ErrOutputLost, j.lostErr)
	case st.Usage.OOMKills > 0:
		// Whichever process of the job the OOM killer chose, and whatever
		// PID 1 then did: a wrapper's `sh -c 'app; exit $?'` exits 137.
		st.State, st.Reason = StateFailed, ReasonOOMKilled
		st.Message = fmt.Sprintf("the OOM killer killed %d of the job's processes at its memory limit of %d bytes", st.Usage.OOMKills, st.Limits.MemoryMax)
	case st.ExitCode != nil && *st.ExitCode == 0:
		st.State, st.Reason = StateCompleted, ReasonNone
	case st.ExitCode != nil:
		st.State, st.Reason = StateFailed, ReasonExitCode
	default: // a signal, or a wait that failed
		st.State, st.Reason = StateFailed, ReasonSignal
	}
}

// expire ends a job that ran past its timeout.
func (m *Manager) expire(j *job) {
	m.mu.Lock()
	if !j.st.State.hasProcess() || j.stopReq {
		m.mu.Unlock()
		return
	}
	j.timedOut = true
	m.mu.Unlock()
	// A paused job's timeout counts on: it is thawed and stopped.
	m.thawForStop(j)
	m.terminate(j, m.cfg.StopGrace)
}
