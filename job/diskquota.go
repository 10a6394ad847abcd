package job

import (
	"fmt"
	"os"
	"sort"
)

// outputCheckEvery is how much output a job writes between two checks of
// its owner's output quota: a user may pass Quotas.Output by this much per
// running job, until the check.
const outputCheckEvery = 4 << 20

// wroteOutput counts n bytes of j's output, and checks its owner's output
// quota every outputCheckEvery bytes. Called by j's copyOutput only.
func (m *Manager) wroteOutput(j *job, n int) {
	j.sinceCheck += int64(n)
	if j.sinceCheck < outputCheckEvery {
		return
	}
	j.sinceCheck = 0
	m.enforceOutputQuota(j)
}

// enforceOutputQuota keeps the output of j's owner within Quotas.Output:
// the owner's oldest finished jobs are removed first; if that is not
// enough, the oldest output of j, which is running, is dropped, and its
// readers are told so as at the per-job cap.
func (m *Manager) enforceOutputQuota(j *job) {
	quota, owner := m.cfg.Quotas.Output, j.st.Owner
	if quota <= 0 || m.exempt(owner) {
		return
	}
	m.mu.Lock()
	var finished []*job
	var total int64
	for _, o := range m.jobs {
		if o.st.Owner != owner {
			continue
		}
		total += o.log.Kept()
		if o.st.State.Ended() {
			finished = append(finished, o)
		}
	}
	if total <= quota {
		m.mu.Unlock()
		return
	}
	sort.Slice(finished, func(a, b int) bool { return finished[a].st.Ended.Before(finished[b].st.Ended) })
	var drop []*job
	for _, o := range finished {
		if total <= quota {
			break
		}
		total -= o.log.Kept()
		m.forgetLocked(o)
		drop = append(drop, o)
	}
	m.mu.Unlock()
	m.removeJobs(drop, "the output quota of its user")
	if total > quota {
		j.log.Shrink(max(j.log.Kept()-(total-quota), 0))
	}
}

// forgetLocked takes a finished job out of the Manager's maps, for
// removeJobs to remove. Called with m.mu held.
func (m *Manager) forgetLocked(j *job) {
	delete(m.jobs, j.st.ID)
	if j.st.RequestID != "" {
		delete(m.requests, requestKey(j.st.Owner, j.st.RequestID))
	}
}

// removeJobs removes the logs and directories of jobs forgetLocked took
// out, for why.
func (m *Manager) removeJobs(drop []*job, why string) {
	for _, j := range drop {
		j.persistMu.Lock()
		// The log first: a reader of it gets ErrRemoved from now on,
		// never a file that is missing under it.
		if err := j.log.Remove(); err != nil {
			m.report(fmt.Errorf("%s: remove job %s: %w", why, j.st.ID, err))
		}
		if err := os.RemoveAll(j.dir); err != nil {
			m.report(fmt.Errorf("%s: remove job %s: %w", why, j.st.ID, err))
		}
		j.persistMu.Unlock()
	}
}
