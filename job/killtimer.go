package job

import (
	"context"
	"errors"
	"os"
	"time"
)

// killTimer is the one timer of a job being stopped: when it fires, the
// job's cgroup is killed. Its fields are guarded by the Manager's m.mu.
type killTimer struct {
	t  *time.Timer
	at time.Time // when t fires
}

// armKillLocked makes j's cgroup be killed grace from now, or earlier if
// an earlier stop asked for that: the job's one timer is started, or moved
// forward, never added to. Called with m.mu held while j runs.
func (m *Manager) armKillLocked(j *job, grace time.Duration) {
	at := time.Now().Add(grace)
	k := j.kill
	if k == nil {
		j.kill = &killTimer{t: time.AfterFunc(grace, func() { m.killGroup(j) }), at: at}
		return
	}
	// Stop reports false once the timer has fired: the kill is under way.
	if at.Before(k.at) && k.t.Stop() {
		k.t.Reset(grace)
		k.at = at
	}
}

// dropKillTimerLocked stops and forgets j's kill timer, if it has one:
// j has ended. Called with m.mu held, as j's end is recorded.
func dropKillTimerLocked(j *job) {
	if j.kill != nil {
		j.kill.t.Stop()
		j.kill = nil
	}
}

// killGroup kills j's cgroup at the end of its grace, unless j has ended.
func (m *Manager) killGroup(j *job) {
	m.mu.Lock()
	if !j.st.State.hasProcess() {
		m.mu.Unlock()
		return
	}
	// j's supervisor is counted in m.wg until after j's end is recorded,
	// so this Add finds the count above zero: Close's Wait cannot miss it.
	m.wg.Add(1)
	defer m.wg.Done()
	g, done := j.group, j.done
	m.mu.Unlock()
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
