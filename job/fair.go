package job

import "slices"

// Pending jobs are admitted user by user in turn: of the users with jobs
// queued, the one whose last job started longest ago (or never) goes
// first, with its oldest queued job. A user's jobs start in the order they
// were queued; a user whose next job does not fit now (the server's
// capacity, the user's quotas) is passed over for the next user whose job
// does.

// pickLocked is the queued job to start next, or nil when no user's next
// job fits. Called with m.mu held.
func (m *Manager) pickLocked() *job {
	var best *job
	var bestServed uint64
	seen := map[string]bool{}
	for _, j := range m.queue {
		owner := j.st.Owner
		if seen[owner] {
			continue
		}
		seen[owner] = true
		if !m.fitsLocked(j) {
			continue
		}
		served := m.userLocked(owner).served
		if best == nil || served < bestServed {
			best, bestServed = j, served
		}
	}
	return best
}

// queuedLocked reports whether owner has a job queued. Called with m.mu
// held.
func (m *Manager) queuedLocked(owner string) bool {
	return slices.ContainsFunc(m.queue, func(j *job) bool { return j.st.Owner == owner })
}

// dequeueLocked takes j out of the queue. Called with m.mu held.
func (m *Manager) dequeueLocked(j *job) {
	if i := slices.Index(m.queue, j); i >= 0 {
		m.queue = slices.Delete(m.queue, i, i+1)
	}
}
