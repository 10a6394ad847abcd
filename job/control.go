package job

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"golang.org/x/sys/unix"
)

// What can be done to a job while it lives besides stopping it: signal it,
// pause and resume it, change its limits.

// Errors of job control.
var (
	// ErrJobState is a control that the job's state does not allow: it
	// has ended, has not started, or is being stopped.
	ErrJobState = errors.New("the job's state does not allow it")
	// ErrBelowUsage is a memory limit below what the job uses now, which
	// would have the OOM killer act at once.
	ErrBelowUsage = errors.New("the memory limit is below the job's current usage")
	// ErrNoRoom is a higher memory limit that the server's memory capacity
	// cannot reserve now.
	ErrNoRoom = errors.New("the server's memory capacity has no room for it now")
)

// stateError is an ErrJobState that says in its own words what the job's
// state does not allow.
type stateError string

func (e stateError) Error() string        { return string(e) }
func (e stateError) Is(target error) bool { return target == ErrJobState }

// stateErrorLocked says why j's state does not allow what (a verb: "pause",
// "signal"). Called with m.mu held.
func stateErrorLocked(j *job, what string) error {
	var why string
	switch {
	case j.st.State.Ended():
		why = fmt.Sprintf("it has ended (%s)", j.st.State)
	case j.st.State == StatePending:
		why = "it is pending and has not started yet"
	case j.stopReq:
		why = "it is being stopped"
	default:
		why = "it is " + string(j.st.State)
	}
	return stateError(fmt.Sprintf("cannot %s job %s: %s", what, j.st.ID, why))
}

func (m *Manager) find(id string) (*job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return nil, ErrNotFound
	}
	return j, nil
}

// Signal sends sig to the job's process group. A job that has not started
// or has ended is ErrJobState. A paused job gets the signal when it is
// resumed (SIGKILL at once).
func (m *Manager) Signal(id string, sig unix.Signal) (Status, error) {
	j, err := m.find(id)
	if err != nil {
		return Status{}, err
	}
	m.mu.Lock()
	if !j.st.State.hasProcess() || j.proc == nil {
		err := stateErrorLocked(j, "signal")
		m.mu.Unlock()
		return Status{}, err
	}
	// With j.proc set under m.mu the process is alive or a zombie, so its
	// process group id is not free for reuse (see sigtermLocked).
	err = unix.Kill(-j.proc.Pid, sig)
	m.mu.Unlock()
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return Status{}, fmt.Errorf("signal job %s: %s: %w", id, SignalName(sig), err)
	}
	return m.snapshot(j), nil
}

// controlTimeout bounds the wait for the kernel to freeze or thaw a job.
const controlTimeout = 30 * time.Second

// Pause freezes every process of a running job (cgroup.freeze) and returns
// once the kernel reports it frozen; the job is then StatePaused. Pausing a
// paused job returns it as it is. Its timeout keeps counting.
func (m *Manager) Pause(ctx context.Context, id string) (Status, error) {
	j, err := m.find(id)
	if err != nil {
		return Status{}, err
	}
	j.ctlMu.Lock()
	defer j.ctlMu.Unlock()
	m.mu.Lock()
	if j.st.State == StatePaused {
		m.mu.Unlock()
		return m.snapshot(j), nil
	}
	if j.st.State != StateRunning || j.stopReq {
		err := stateErrorLocked(j, "pause")
		m.mu.Unlock()
		return Status{}, err
	}
	g := j.group
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	ferr := g.Freeze(ctx)
	m.mu.Lock()
	if ferr == nil && j.st.State == StateRunning && !j.stopReq {
		j.st.State = StatePaused
		m.notifyLocked(j)
		m.mu.Unlock()
		return m.snapshot(j), nil
	}
	// It failed, or a stop or the job's end came meanwhile: thawed, the
	// job is as it was.
	serr := stateErrorLocked(j, "pause")
	ended := !j.st.State.hasProcess()
	m.mu.Unlock()
	if !ended {
		tctx, tcancel := context.WithTimeout(context.Background(), controlTimeout)
		defer tcancel()
		m.report(g.Thaw(tctx))
	}
	if ferr != nil && !ended {
		return Status{}, fmt.Errorf("pause job %s: %w", id, ferr)
	}
	return Status{}, serr
}

// Resume thaws a paused job, which is StateRunning again. Resuming a
// running job returns it as it is.
func (m *Manager) Resume(ctx context.Context, id string) (Status, error) {
	j, err := m.find(id)
	if err != nil {
		return Status{}, err
	}
	j.ctlMu.Lock()
	defer j.ctlMu.Unlock()
	m.mu.Lock()
	if j.st.State == StateRunning {
		m.mu.Unlock()
		return m.snapshot(j), nil
	}
	if j.st.State != StatePaused {
		err := stateErrorLocked(j, "resume")
		m.mu.Unlock()
		return Status{}, err
	}
	g := j.group
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	if err := g.Thaw(ctx); err != nil {
		return Status{}, fmt.Errorf("resume job %s: %w", id, err)
	}
	m.mu.Lock()
	if j.st.State == StatePaused {
		j.st.State = StateRunning
		m.notifyLocked(j)
	}
	m.mu.Unlock()
	return m.snapshot(j), nil
}

// thawForStop thaws a paused job that is being stopped (or has timed
// out), so that it can handle the SIGTERM that follows: a frozen process
// would get it only when thawed, which a stop's kill would come before.
// A thaw that fails is reported; the kill at the end of the grace still
// ends the job.
func (m *Manager) thawForStop(j *job) {
	j.ctlMu.Lock()
	defer j.ctlMu.Unlock()
	m.mu.Lock()
	paused, g := j.st.State == StatePaused, j.group
	m.mu.Unlock()
	if !paused {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	if err := g.Thaw(ctx); err != nil {
		m.report(fmt.Errorf("stop job %s: %w", j.st.ID, err))
		return
	}
	m.mu.Lock()
	if j.st.State == StatePaused {
		j.st.State = StateRunning
		m.notifyLocked(j)
	}
	m.mu.Unlock()
}

// Update changes the limits of a pending, running or paused job: the
// fields c sets. A new memory limit brings memory.high with it (the
// server's fraction of it, or none). The limits after the change must be
// valid as at start (ErrInvalid). For memory, admission follows: a limit
// the capacity can never hold is ErrNeverFits; a higher one that it cannot
// reserve now is ErrNoRoom; a lower one frees its room at once, and pending
// jobs that now fit start. A limit below the memory the job uses now is
// ErrBelowUsage, rather than an OOM kill (the usage may still grow past it
// between the check and the write: then the OOM killer acts, as it would
// at the old limit).
func (m *Manager) Update(id string, c cgroupfs.Change) (Status, error) {
	return m.UpdateIf(id, c, nil)
}

// UpdateIf is Update, but first asks allow, when it is not nil, whether
// the change may be made to limits old, the job's limits as they are; an
// error of allow is returned as it is. No other change of the job's limits
// comes between allow and the change, so that a rule that depends on the
// old limits (a user may lower a limit an admin lifted, not raise it)
// holds.
func (m *Manager) UpdateIf(id string, c cgroupfs.Change, allow func(old cgroupfs.Limits) error) (Status, error) {
	if c.Empty() {
		return Status{}, invalid("no limit to change")
	}
	if c.MemoryMax != nil && c.MemoryHigh == nil {
		high := m.cfg.MemoryHigh(*c.MemoryMax)
		c.MemoryHigh = &high
	}
	j, err := m.find(id)
	if err != nil {
		return Status{}, err
	}
	j.ctlMu.Lock()
	defer j.ctlMu.Unlock()
	m.mu.Lock()
	st := j.st
	queued := slices.Contains(m.queue, j)
	m.mu.Unlock()
	if allow != nil {
		// Limits change only under j.ctlMu, which is held.
		if err := allow(st.Limits); err != nil {
			return Status{}, err
		}
	}
	if st.State.Ended() || st.State == StatePending && !queued {
		// Pending but not queued: being launched, with its limits read.
		m.mu.Lock()
		err := stateErrorLocked(j, "update")
		if j.st.State == StatePending {
			err = stateError(fmt.Sprintf("cannot update job %s: it is being started; try again", id))
		}
		m.mu.Unlock()
		return Status{}, err
	}
	if err := m.cfg.Cgroups.CheckChange(c); err != nil {
		return Status{}, err
	}
	limits := c.Apply(st.Limits)
	if err := limits.Validate(); err != nil {
		return Status{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if m.cfg.MemoryCapacity > 0 && limits.MemoryMax > m.cfg.MemoryCapacity {
		return Status{}, fmt.Errorf("%w: %d bytes asked, capacity %d", ErrNeverFits, limits.MemoryMax, m.cfg.MemoryCapacity)
	}
	if err := m.checkJobQuota(st.Owner, limits.MemoryMax); err != nil {
		return Status{}, err
	}
	if st.State == StatePending {
		return m.updatePending(j, limits)
	}
	return m.updateStarted(j, c, limits)
}

// updatePending sets the limits of a queued job, which its launch applies.
func (m *Manager) updatePending(j *job, limits cgroupfs.Limits) (Status, error) {
	m.mu.Lock()
	if !slices.Contains(m.queue, j) {
		err := stateErrorLocked(j, "update")
		m.mu.Unlock()
		return Status{}, err
	}
	j.st.Limits = limits
	m.publishLocked(j, EventLimitsUpdated)
	m.notifyLocked(j)
	m.mu.Unlock()
	m.report(m.persist(j))
	m.schedule() // a smaller job at the head of the queue may fit now
	return m.snapshot(j), nil
}

// updateStarted changes the limits of a running or paused job in its
// cgroup. A higher memory limit is reserved before it is written, a lower
// one released after, so that the reservations never fall below what the
// jobs may take.
func (m *Manager) updateStarted(j *job, c cgroupfs.Change, limits cgroupfs.Limits) (Status, error) {
	id := j.st.ID
	m.mu.Lock()
	if !j.st.State.hasProcess() || j.stopReq {
		err := stateErrorLocked(j, "update")
		m.mu.Unlock()
		return Status{}, err
	}
	g, old := j.group, j.reserved
	raise := limits.MemoryMax > old
	if raise {
		if cap := m.cfg.MemoryCapacity; cap > 0 && m.reserved-old+limits.MemoryMax > cap {
			err := fmt.Errorf("%w: job %s asks %d bytes, and %d of the capacity of %d are reserved (%d by this job)", ErrNoRoom, id, limits.MemoryMax, m.reserved, cap, old)
			m.mu.Unlock()
			return Status{}, err
		}
		if err := m.checkRaiseLocked(j, old, limits.MemoryMax); err != nil {
			m.mu.Unlock()
			return Status{}, err
		}
		m.reserved += limits.MemoryMax - old
		j.reserved = limits.MemoryMax
	}
	m.mu.Unlock()
	if c.MemoryMax != nil && !raise {
		cur, err := g.MemoryCurrent()
		if err == nil && *c.MemoryMax < cur {
			return Status{}, fmt.Errorf("%w: job %s uses %d bytes now (%s), more than the %d bytes asked; lower it to at least that, or let the job free memory first", ErrBelowUsage, id, cur, humanBytes(cur), *c.MemoryMax)
		}
	}
	werr := g.Change(c)
	m.mu.Lock()
	ended := !j.st.State.hasProcess()
	if !ended {
		if werr != nil && raise {
			m.reserved -= j.reserved - old
			j.reserved = old
		}
		if werr == nil && limits.MemoryMax < j.reserved {
			m.reserved -= j.reserved - limits.MemoryMax
			j.reserved = limits.MemoryMax
		}
		if werr == nil {
			j.st.Limits = limits
			m.publishLocked(j, EventLimitsUpdated)
			m.notifyLocked(j)
		}
	}
	var serr error
	if ended {
		serr = stateErrorLocked(j, "update")
	}
	m.mu.Unlock()
	switch {
	case ended:
		return Status{}, serr
	case werr != nil:
		return Status{}, fmt.Errorf("update job %s: %w", id, werr)
	}
	m.report(m.persist(j))
	m.schedule() // room freed by a lower memory limit goes to pending jobs
	return m.snapshot(j), nil
}

// humanBytes is n in MiB with one decimal, for messages.
func humanBytes(n uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
