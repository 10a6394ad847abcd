package job

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// killTimer is the one timer of a job being stopped: when it fires, the
// job's cgroup is killed. Its fields are guarded by the Manager's m.mu.
type killTimer struct {
	t  *time.Timer
	at time.Time // when t fires
}

// killTimers holds the killTimer of each job being stopped, by *job, from
// its first stop until its supervisor records its end. It stands in for a
// field of job, which is where it belongs.
var killTimers sync.Map

// armKillLocked makes j's cgroup be killed grace from now, or earlier if
// an earlier stop asked for that: the job's one timer is started, or moved
// forward, never added to. Called with m.mu held while j runs.
func (m *Manager) armKillLocked(j *job, grace time.Duration) {
	at := time.Now().Add(grace)
	v, ok := killTimers.Load(j)
	if !ok {
		killTimers.Store(j, &killTimer{t: time.AfterFunc(grace, func() { m.killGroup(j) }), at: at})
		return
	}
	// Stop reports false once the timer has fired: the kill is under way.
	if k := v.(*killTimer); at.Before(k.at) && k.t.Stop() {
		k.t.Reset(grace)
		k.at = at
	}
}

// dropKillTimerLocked stops and forgets j's kill timer, if it has one:
// j has ended. Called with m.mu held, as j's end is recorded.
func dropKillTimerLocked(j *job) {
	if v, ok := killTimers.LoadAndDelete(j); ok {
		v.(*killTimer).t.Stop()
	}
}

// killGroup kills j's cgroup at the end of its grace, unless j has ended.
func (m *Manager) killGroup(j *job) {
	m.mu.Lock()
	if j.st.State != StateRunning {
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
