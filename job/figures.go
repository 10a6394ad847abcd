package job

// Figures are the Manager's figures for its metrics: jobs by state, per
// user what runs, waits and is reserved, and output bytes since Open.
type Figures struct {
	States map[State]int
	Users  map[string]UserFigures
	// OutputWritten counts the bytes jobs wrote into their logs since
	// Open; OutputDropped those the output cap then dropped.
	OutputWritten, OutputDropped   int64
	MemoryReserved, MemoryCapacity uint64
}

// UserFigures are one user's running (or paused) and pending jobs and the
// memory its running jobs reserve.
type UserFigures struct {
	Running, Pending int
	MemoryReserved   uint64
}

// Figures returns the figures now.
func (m *Manager) Figures() Figures {
	f := Figures{States: map[State]int{}, Users: map[string]UserFigures{}}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.jobs {
		f.States[j.st.State]++
		switch {
		case j.st.State.hasProcess():
			u := f.Users[j.st.Owner]
			u.Running++
			u.MemoryReserved += j.reserved
			f.Users[j.st.Owner] = u
		case j.st.State == StatePending:
			u := f.Users[j.st.Owner]
			u.Pending++
			f.Users[j.st.Owner] = u
		}
	}
	f.OutputWritten, f.OutputDropped = m.outputWritten.Load(), m.outputDropped.Load()
	f.MemoryReserved, f.MemoryCapacity = m.reserved, m.cfg.MemoryCapacity
	return f
}
