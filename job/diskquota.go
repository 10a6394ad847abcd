package job

import (
	"errors"
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
	m.publishLocked(j, EventPruned)
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

// A full state directory costs the user who filled it, not the others: a
// write that finds the disk full first has the largest user's oldest
// output freed (reclaim), and tries again; only when nothing is left to
// free is the job's output lost.

// maxReclaims bounds how often one write frees space and tries again.
const maxReclaims = 16

// writeOutput writes b into j's log, freeing space with reclaim when the
// disk is full.
func (m *Manager) writeOutput(j *job, b []byte) error {
	for tries := 0; ; tries++ {
		start := j.log.Start()
		n, err := j.log.Write(b)
		m.outputWritten.Add(int64(n))
		m.outputDropped.Add(j.log.Start() - start)
		if err == nil || !errors.Is(storageError(err), ErrStateFull) || tries == maxReclaims || !m.reclaim(j.st.Owner) {
			return err
		}
		b = b[n:]
	}
}

// reclaim frees disk space, for a job of writer that found the disk full,
// from the user whose jobs keep the most output, when that is another
// user: its oldest finished job is removed or, when it has none, its
// running job that keeps the most has half of that dropped. It reports
// whether it freed anything. A writer that keeps the most itself (or a
// disk that something else filled) frees nothing: its job fails
// output_lost as on any full disk, and what every user stored stays.
func (m *Manager) reclaim(writer string) bool {
	m.mu.Lock()
	kept := map[string]int64{}
	for _, j := range m.jobs {
		kept[j.st.Owner] += j.log.Kept()
	}
	var hog string
	for owner, n := range kept {
		if hog == "" || n > kept[hog] {
			hog = owner
		}
	}
	if hog == writer {
		m.mu.Unlock()
		return false
	}
	var oldest, biggest *job
	for _, j := range m.jobs {
		if j.st.Owner != hog || j.log.Kept() == 0 {
			continue
		}
		if j.st.State.Ended() {
			if oldest == nil || j.st.Ended.Before(oldest.st.Ended) {
				oldest = j
			}
		} else if biggest == nil || j.log.Kept() > biggest.log.Kept() {
			biggest = j
		}
	}
	if oldest != nil {
		m.forgetLocked(oldest)
		m.mu.Unlock()
		m.report(fmt.Errorf("the state directory is full: removed job %s of %s, the user whose jobs keep the most output (%d bytes)", oldest.st.ID, hog, kept[hog]))
		m.removeJobs([]*job{oldest}, "the state directory is full")
		return true
	}
	m.mu.Unlock()
	if biggest == nil {
		return false
	}
	dropped := biggest.log.Shrink(biggest.log.Kept() / 2)
	if dropped > 0 {
		m.report(fmt.Errorf("the state directory is full: dropped the oldest %d bytes of the output of job %s of %s, the user whose jobs keep the most output", dropped, biggest.st.ID, hog))
	}
	return dropped > 0
}
