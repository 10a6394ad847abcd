package job

import (
	"sort"
	"time"
)

// retentionLoop prunes finished jobs every minute until Close.
func (m *Manager) retentionLoop() {
	defer m.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-m.quit:
			return
		case <-t.C:
			m.prune()
		}
	}
}

// prune removes finished jobs older than Retain and beyond RetainCount.
func (m *Manager) prune() {
	if m.cfg.Retain <= 0 && m.cfg.RetainCount <= 0 && m.cfg.Quotas.RetainCount <= 0 {
		return
	}
	m.mu.Lock()
	var ended []*job
	for _, j := range m.jobs {
		if j.st.State.Ended() {
			ended = append(ended, j)
		}
	}
	sort.Slice(ended, func(a, b int) bool { return ended[a].st.Ended.After(ended[b].st.Ended) })
	var drop []*job
	cutoff := time.Now().Add(-m.cfg.Retain)
	perUser := map[string]int{} // finished jobs of each user kept so far, newest first
	for i, j := range ended {
		owner := j.st.Owner
		overUser := m.cfg.Quotas.RetainCount > 0 && perUser[owner] >= m.cfg.Quotas.RetainCount && !m.exempt(owner)
		if overUser || (m.cfg.RetainCount > 0 && i >= m.cfg.RetainCount) || (m.cfg.Retain > 0 && j.st.Ended.Before(cutoff)) {
			drop = append(drop, j)
			m.forgetLocked(j)
			continue
		}
		perUser[owner]++
	}
	m.mu.Unlock()
	m.removeJobs(drop, "retention")
}
