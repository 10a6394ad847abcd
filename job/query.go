package job

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/ringlog"
)

// notifyLocked wakes watchers of j. Called with m.mu held.
func (m *Manager) notifyLocked(j *job) {
	close(j.changed)
	j.changed = make(chan struct{})
	m.eventsLocked(j)
}

// snapshot returns j's status with live usage and output figures.
func (m *Manager) snapshot(j *job) Status {
	m.mu.Lock()
	st, trimmed := j.st, j.trimmed
	g := j.group
	running := st.State.hasProcess()
	m.mu.Unlock()
	if running && g != nil {
		if u, err := g.Usage(); err == nil {
			st.Usage = u
		}
	}
	st.OutputSize, st.OutputStart = j.log.Size(), j.log.Start()
	return j.withRecord(st, trimmed)
}

// Get returns a job's status.
func (m *Manager) Get(id string) (Status, error) {
	m.mu.Lock()
	j, ok := m.jobs[id]
	m.mu.Unlock()
	if !ok {
		return Status{}, ErrNotFound
	}
	return m.snapshot(j), nil
}

// Filter selects jobs for List; empty fields select everything.
type Filter struct {
	Owners []string
	States []State
	Name   string            // the job's name
	Labels map[string]string // labels the job must all have, with these values
}

// match reports whether st passes f.
func (f Filter) match(st *Status) bool {
	if len(f.Owners) > 0 && !slices.Contains(f.Owners, st.Owner) ||
		len(f.States) > 0 && !slices.Contains(f.States, st.State) ||
		f.Name != "" && st.Name != f.Name {
		return false
	}
	for k, v := range f.Labels {
		if got, ok := st.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// List returns the jobs that match f, newest first.
func (m *Manager) List(f Filter) []Status {
	m.mu.Lock()
	var js []*job
	for _, j := range m.jobs {
		if f.match(&j.st) {
			js = append(js, j)
		}
	}
	m.mu.Unlock()
	out := make([]Status, len(js))
	for i, j := range js {
		out[i] = m.snapshot(j)
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Created.Equal(out[b].Created) {
			return out[a].Created.After(out[b].Created)
		}
		return out[a].ID < out[b].ID
	})
	return out
}

// Watch calls fn with the job's status now, at every change and every
// interval, until the job has ended (the last call has the final status),
// fn returns an error, or ctx is done.
func (m *Manager) Watch(ctx context.Context, id string, interval time.Duration, fn func(Status) error) error {
	m.mu.Lock()
	j, ok := m.jobs[id]
	m.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.mu.Lock()
		changed := j.changed
		m.mu.Unlock()
		st := m.snapshot(j)
		if err := fn(st); err != nil {
			return err
		}
		if st.State.Ended() {
			return nil
		}
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Output returns the job's output log, for reading from any offset.
func (m *Manager) Output(id string) (*ringlog.Log, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return nil, ErrNotFound
	}
	return j.log, nil
}

// Totals are server-wide figures.
type Totals struct {
	Running, Pending int
	MemoryReserved   uint64
	MemoryCapacity   uint64
	MaxRunning       int
	Usage            cgroupfs.Usage // summed over running jobs
}

// Totals returns the server-wide figures.
func (m *Manager) Totals() Totals {
	m.mu.Lock()
	t := Totals{Running: m.running, Pending: len(m.queue), MemoryReserved: m.reserved, MemoryCapacity: m.cfg.MemoryCapacity, MaxRunning: m.cfg.MaxRunning}
	var groups []*cgroupfs.Group
	for _, j := range m.jobs {
		if j.st.State.hasProcess() && j.group != nil {
			groups = append(groups, j.group)
		}
	}
	m.mu.Unlock()
	for _, g := range groups {
		u, err := g.Usage()
		if err != nil {
			continue
		}
		t.Usage.Add(u)
	}
	return t
}
