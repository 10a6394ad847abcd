package job

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/ringlog"
	"github.com/jobworker/jobworker/shim"
)

// MemoryHigh is the memory.high of a job with the hard limit memoryMax
// whose request sets none: MemoryHighFraction of memoryMax, or 0 (not set)
// when memoryMax is 0 or the fraction is not strictly between 0 and 1.
func (c Config) MemoryHigh(memoryMax uint64) uint64 {
	if memoryMax == 0 || !(c.MemoryHighFraction > 0 && c.MemoryHighFraction < 1) {
		return 0
	}
	return uint64(float64(memoryMax) * c.MemoryHighFraction)
}

// applyDefaults fills unset limits from the defaults, for controllers the
// host has.
func (m *Manager) applyDefaults(l cgroupfs.Limits) cgroupfs.Limits {
	d, h := m.cfg.Defaults, m.cfg.Cgroups
	if l.CPUWeight == 0 && h.Has("cpu") {
		l.CPUWeight = d.CPUWeight
	}
	if l.CPUs == 0 && h.Has("cpu") {
		l.CPUs = d.CPUs
	}
	if l.MemoryMax == 0 && h.Has("memory") {
		l.MemoryMax = d.MemoryMax
	}
	if l.MemoryHigh == 0 {
		l.MemoryHigh = m.cfg.MemoryHigh(l.MemoryMax)
	}
	if l.IOWeight == 0 && h.Has("io") {
		l.IOWeight = d.IOWeight
	}
	if l.PidsMax == 0 && h.Has("pids") {
		l.PidsMax = d.PidsMax
	}
	return l
}

// fitsLocked reports whether j can start now: within the server's
// capacity and its owner's quotas. Called with m.mu held.
func (m *Manager) fitsLocked(j *job) bool {
	if m.cfg.MaxRunning > 0 && m.running >= m.cfg.MaxRunning {
		return false
	}
	if m.cfg.MemoryCapacity > 0 && m.reserved+j.st.Limits.MemoryMax > m.cfg.MemoryCapacity {
		return false
	}
	return m.userFitsLocked(j)
}

// Start admits a job. A job that fits starts now: an error starting its
// command (a *shim.StartError) is returned and no job is left behind. One
// that does not fit yet is queued PENDING. One that can never fit is
// refused with ErrNeverFits. A request with the RequestID of a retained
// job of the same owner returns that job instead; one that arrives while
// the first is being admitted waits for its outcome.
func (m *Manager) Start(req Request) (Status, error) {
	if err := req.Validate(); err != nil {
		return Status{}, err
	}
	if req.RequestID == "" {
		return m.start(req)
	}
	key := requestKey(req.Owner, req.RequestID)
	for {
		m.mu.Lock()
		r, ok := m.requests[key]
		if !ok {
			r = &request{done: make(chan struct{})}
			m.requests[key] = r
			m.mu.Unlock()
			st, err := m.start(req)
			m.mu.Lock()
			if err != nil {
				delete(m.requests, key) // nothing was admitted: a retry starts anew
			} else {
				r.id = st.ID
			}
			close(r.done)
			m.mu.Unlock()
			return st, err
		}
		m.mu.Unlock()
		<-r.done
		if r.id == "" {
			continue // the first attempt failed and left no job
		}
		if st, err := m.Get(r.id); err == nil {
			return st, nil
		}
		// Retention removed the job (and its key) meanwhile: start anew.
	}
}

// request is a StartJob request ID in use: done is closed once its job
// was admitted (id) or refused (id "").
type request struct {
	done chan struct{}
	id   string
}

// requestKey is the key of an owner's request ID in Manager.requests.
func requestKey(owner, id string) string { return owner + "\x00" + id }

// start is Start without the request ID's bookkeeping.
func (m *Manager) start(req Request) (Status, error) {
	limits := m.applyDefaults(req.Limits)
	if err := limits.Validate(); err != nil {
		return Status{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if m.cfg.MemoryCapacity > 0 && limits.MemoryMax > m.cfg.MemoryCapacity {
		return Status{}, fmt.Errorf("%w: %d bytes asked, capacity %d", ErrNeverFits, limits.MemoryMax, m.cfg.MemoryCapacity)
	}
	if err := m.checkJobQuota(req.Owner, limits.MemoryMax); err != nil {
		return Status{}, err
	}
	if err := m.checkReserve(); err != nil {
		return Status{}, err
	}
	cred := m.cfg.RunAs
	if m.uids != nil {
		var err error
		if cred, err = m.uids.credential(req.Owner); err != nil {
			return Status{}, err
		}
	}
	network := req.Network
	if network == "" {
		network = NetworkHost
	}
	id := NewID()
	dir := filepath.Join(m.jobsDir(), id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return Status{}, storageError(fmt.Errorf("create job directory: %w", err))
	}
	log, err := ringlog.Create(filepath.Join(dir, "output"), m.logOptions())
	if err != nil {
		os.RemoveAll(dir)
		return Status{}, storageError(err)
	}
	j := &job{
		dir: dir,
		log: log,
		st: Status{
			ID: id, Owner: req.Owner, Command: req.Command, Args: req.Args, Env: req.Env,
			Dir: req.Dir, Limits: limits, Timeout: req.Timeout, State: StatePending, Created: time.Now(),
			RequestID: req.RequestID, Network: network, SecretEnvNames: sortedKeys(req.SecretEnv),
			Name: req.Name, Labels: req.Labels,
		},
		cred:      cred,
		ownUID:    m.uids != nil,
		secretEnv: req.SecretEnv,
		changed:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	discard := func() {
		log.Close()
		os.RemoveAll(dir)
	}

	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		discard()
		return Status{}, ErrClosed
	}
	// Straight to running when it fits and no queued job goes first (its
	// owner's, or one of another user that fits).
	if !m.queuedLocked(req.Owner) && m.fitsLocked(j) && m.pickLocked() == nil {
		m.reserveLocked(j)
		// Counted as starting until launch has handed it to its
		// supervisor (or failed): Close waits for that before it looks
		// for the jobs to stop, so it finds this one.
		m.starting.Add(1)
		defer m.starting.Done()
		st := j.st
		m.mu.Unlock()
		// A job whose record cannot be stored (the state directory is
		// full) is refused rather than run unrecorded; the record written
		// once it runs is the one synced to disk.
		err := writeRecord(dir, st, false)
		if err != nil {
			err = storageError(fmt.Errorf("record job %s: %w", id, err))
		} else {
			err = m.launch(j)
		}
		if err != nil {
			m.mu.Lock()
			m.releaseLocked(j)
			m.mu.Unlock()
			discard()
			m.schedule()
			return Status{}, err
		}
		return m.snapshot(j), nil
	}
	m.mu.Unlock()
	// Queued: check now what can be checked without running it, so that a
	// command that does not exist is still StartJob's error.
	if err := m.precheck(j); err != nil {
		discard()
		return Status{}, err
	}
	if err := m.persist(j); err != nil {
		discard()
		return Status{}, storageError(err)
	}
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		discard()
		return Status{}, ErrClosed
	}
	if err := m.checkPendingLocked(req.Owner); err != nil {
		m.mu.Unlock()
		discard()
		return Status{}, err
	}
	m.jobs[id] = j
	m.queue = append(m.queue, j)
	m.eventsLocked(j)
	m.mu.Unlock()
	// A job may have ended between the check and the queueing.
	m.schedule()
	return m.snapshot(j), nil
}

func (m *Manager) reserveLocked(j *job) {
	m.running++
	m.reserved += j.st.Limits.MemoryMax
	j.reserved = j.st.Limits.MemoryMax
	m.admitted++
	u := m.userLocked(j.st.Owner)
	u.running[j] = struct{}{}
	u.served = m.admitted
}

func (m *Manager) releaseLocked(j *job) {
	m.running--
	m.reserved -= j.reserved
	j.reserved = 0
	u := m.userLocked(j.st.Owner)
	delete(u.running, j)
}

// schedule starts queued jobs, user by user in turn (fair.go), while one
// fits.
func (m *Manager) schedule() {
	for {
		m.mu.Lock()
		var j *job
		if !m.closing {
			j = m.pickLocked()
		}
		if j == nil {
			m.mu.Unlock()
			return
		}
		m.dequeueLocked(j)
		m.reserveLocked(j)
		m.starting.Add(1) // as in Start
		m.mu.Unlock()
		err := m.launch(j)
		if err != nil {
			m.mu.Lock()
			m.releaseLocked(j)
			j.st.State, j.st.Ended = StateFailed, time.Now()
			j.st.Reason, j.st.Message = startFailed(err)
			m.notifyLocked(j)
			m.mu.Unlock()
			j.log.Close()
			m.report(m.persist(j))
			close(j.done)
		}
		m.starting.Done()
	}
}

// precheck looks the command up as the server can (as root, in the job's
// working directory and on its PATH) for a job it queues, so that a command
// that cannot run is still Start's error. It is the shim's own lookup: the
// answer is the shim's, except for what only the job's user is refused,
// which the shim finds when the job starts.
func (m *Manager) precheck(j *job) error {
	_, err := shim.LookPath(j.st.Command, shim.EnvValue(m.jobEnv(j), "PATH"), j.workdir())
	return err
}

// startFailed is the reason and message of a job that could not be started
// (err from launch): FAILED exec_failed, whatever stopped it (a
// *shim.StartError, whose own reason the message keeps, or its cgroup), the
// one place where a start error becomes a job's failure.
func startFailed(err error) (Reason, string) {
	return ReasonExecFailed, err.Error()
}

// sortedKeys are the keys of m, sorted; nil for none.
func sortedKeys(m map[string]string) []string {
	if len(m) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}
