package job

import (
	"errors"
	"fmt"
	"slices"
)

// Quotas bind each user's jobs, but those of the exempt users. A zero
// field sets no bound.
type Quotas struct {
	// MaxRunning bounds a user's jobs running (or paused) at once; more
	// wait PENDING.
	MaxRunning int
	// MaxPending bounds a user's PENDING jobs; a job past it is refused.
	MaxPending int
	// Memory bounds the sum of the memory limits of a user's running
	// jobs; a job that would pass it waits PENDING, one that alone passes
	// it is refused.
	Memory uint64
	// Output bounds the output a user's jobs keep on disk together: past
	// it the user's oldest finished jobs are removed, then the running
	// job's oldest output is dropped.
	Output int64
	// RetainCount keeps at most this many finished jobs of a user (the
	// oldest are removed first).
	RetainCount int
	// Exempt are the users no quota binds.
	Exempt []string
}

// ErrQuota is wrapped by the error of a request over a per-user quota
// (*QuotaError).
var ErrQuota = errors.New("over a per-user quota")

// QuotaError is a request over a per-user quota: it names the quota, its
// value and the serve flag that sets it.
type QuotaError struct {
	User  string
	Quota string // what is bounded, e.g. "pending jobs per user"
	Value string // the quota's value
	Flag  string // the serve flag that sets it, e.g. "--user-max-pending"
	Why   string // what the request would come to
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("quota of %s %s (%s) reached: %s; an admin may raise %s or exempt %s with --quota-exempt", e.Quota, e.Value, e.Flag, e.Why, e.Flag, e.User)
}

func (e *QuotaError) Unwrap() error { return ErrQuota }

// userJobs are a user's started jobs (between admission and their end),
// which its quotas count.
type userJobs struct {
	running map[*job]struct{}
	served  uint64 // the admission sequence number of its last started job (fair.go)
}

// userLocked returns owner's bookkeeping, making it. Called with m.mu held.
func (m *Manager) userLocked(owner string) *userJobs {
	u, ok := m.users[owner]
	if !ok {
		u = &userJobs{running: map[*job]struct{}{}}
		m.users[owner] = u
	}
	return u
}

// exempt reports whether no quota binds owner.
func (m *Manager) exempt(owner string) bool {
	return slices.Contains(m.cfg.Quotas.Exempt, owner)
}

// userReservedLocked is the memory owner's started jobs reserve. Called
// with m.mu held.
func (m *Manager) userReservedLocked(owner string) uint64 {
	var n uint64
	for j := range m.userLocked(owner).running {
		n += j.reserved
	}
	return n
}

// userFitsLocked reports whether j fits its owner's quotas of running jobs
// and memory now. Called with m.mu held.
func (m *Manager) userFitsLocked(j *job) bool {
	q, owner := m.cfg.Quotas, j.st.Owner
	if m.exempt(owner) {
		return true
	}
	u := m.userLocked(owner)
	if q.MaxRunning > 0 && len(u.running) >= q.MaxRunning {
		return false
	}
	return q.Memory == 0 || m.userReservedLocked(owner)+j.st.Limits.MemoryMax <= q.Memory
}

// checkJobQuota refuses a job that alone passes its owner's memory quota:
// it could never start.
func (m *Manager) checkJobQuota(owner string, memoryMax uint64) error {
	q := m.cfg.Quotas
	if q.Memory > 0 && memoryMax > q.Memory && !m.exempt(owner) {
		return &QuotaError{User: owner, Quota: "memory per user", Value: fmt.Sprint(q.Memory), Flag: "--user-memory",
			Why: fmt.Sprintf("the job's memory limit of %d bytes is more than all of %s's jobs may reserve", memoryMax, owner)}
	}
	return nil
}

// checkPendingLocked refuses a job that would pass its owner's quota of
// pending jobs. Called with m.mu held.
func (m *Manager) checkPendingLocked(owner string) error {
	q := m.cfg.Quotas
	if q.MaxPending <= 0 || m.exempt(owner) {
		return nil
	}
	n := 0
	for _, j := range m.queue {
		if j.st.Owner == owner {
			n++
		}
	}
	if n >= q.MaxPending {
		return &QuotaError{User: owner, Quota: "pending jobs per user", Value: fmt.Sprint(q.MaxPending), Flag: "--user-max-pending",
			Why: fmt.Sprintf("%s has %d jobs pending", owner, n)}
	}
	return nil
}

// checkRaiseLocked refuses raising a started job's memory reservation
// from old to limit past its owner's memory quota. Called with m.mu held.
func (m *Manager) checkRaiseLocked(j *job, old, limit uint64) error {
	q, owner := m.cfg.Quotas, j.st.Owner
	if q.Memory == 0 || m.exempt(owner) {
		return nil
	}
	if total := m.userReservedLocked(owner) - old + limit; total > q.Memory {
		return &QuotaError{User: owner, Quota: "memory per user", Value: fmt.Sprint(q.Memory), Flag: "--user-memory",
			Why: fmt.Sprintf("%s's running jobs would reserve %d bytes", owner, total)}
	}
	return nil
}
