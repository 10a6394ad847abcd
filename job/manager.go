package job

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/ringlog"
	"github.com/jobworker/jobworker/shim"
	"golang.org/x/sys/unix"
)

// Config is a Manager's settings.
type Config struct {
	// StateDir holds every job's record and output.
	StateDir string
	// StateDirReserve is the free space of the state directory's
	// filesystem below which new jobs are refused; 0: none.
	StateDirReserve uint64
	// Cgroups is the server's cgroup subtree.
	Cgroups *cgroupfs.Hierarchy
	// Launcher starts the shim.
	Launcher shim.Launcher
	// UIDs, when set, gives each owner's jobs a uid and gid of their own,
	// allocated once from the range and kept in the state directory. When
	// nil, every job runs as RunAs, in a PID namespace of its own (jobs of
	// one uid could otherwise see and signal each other).
	UIDs *UIDRange
	// RunAs is the one user jobs run as when UIDs is nil; nil runs them as
	// root, which a server must choose explicitly.
	RunAs *shim.Credential
	// Defaults fill the limits a request leaves unset, where the host has
	// the controller.
	Defaults cgroupfs.Limits
	// MemoryHighFraction sets memory.high to this fraction of memory.max
	// when a request gives none; 0 leaves memory.high unset.
	MemoryHighFraction float64
	// MemoryCapacity bounds the memory limits of all running jobs together;
	// 0: no bound.
	MemoryCapacity uint64
	// MaxRunning bounds the jobs running at once; 0: no bound.
	MaxRunning int
	// Quotas bind each user's jobs (quota.go).
	Quotas Quotas
	// StopGrace is the time between SIGTERM and kill when a stop names none.
	StopGrace time.Duration
	// RingSize and OutputCap configure each job's output log.
	RingSize  int
	OutputCap int64
	// Retain removes finished jobs that ended longer ago; 0 keeps them.
	Retain time.Duration
	// RetainCount keeps at most this many finished jobs; 0: no bound.
	RetainCount int
	// EventBuffer is the number of job events kept for WatchEvents; 0:
	// DefaultEventBuffer.
	EventBuffer int
	// OnEvent, when set, is called with every event as it is published,
	// with the Manager's lock held: it must not block nor call the
	// Manager (metrics count them).
	OnEvent func(Event)
	// OnError receives errors of background work (a record that could not
	// be written, a cgroup that could not be removed); nil drops them.
	OnError func(error)
}

// Manager runs jobs.
type Manager struct {
	cfg Config

	mu       sync.Mutex
	jobs     map[string]*job
	requests map[string]*request // by requestKey, for the retained jobs
	queue    []*job              // PENDING, oldest first
	running  int
	reserved uint64
	closing  bool
	users    map[string]*userJobs // by owner, with a started job or one started before (quota.go)
	admitted uint64               // jobs started so far: the sequence of userJobs.served

	uids *uidTable // nil: every job runs as cfg.RunAs

	// starting counts the jobs between admission and launch's hand-over
	// to their supervisor; it is added to only with mu held and closing
	// false, so Close can wait for it to drain (see Close).
	starting sync.WaitGroup
	wg       sync.WaitGroup // every goroutine the Manager starts
	quit     chan struct{}  // closed by Close: ends the retention loop

	copyBuffers *sync.Pool // see newCopyBuffers

	events *eventLog

	outputWritten, outputDropped atomic.Int64 // see Figures
}

// job is one job. Fields under "guarded by m.mu" are read and written with
// the Manager's lock held.
type job struct {
	dir string
	log *ringlog.Log

	// persistMu orders the writes of this job's record.
	persistMu sync.Mutex
	// ctlMu orders the changes of a started job's cgroup that wait for
	// the kernel (pause, resume, update, the thaw of a stop), which are
	// made without m.mu held (control.go).
	ctlMu sync.Mutex

	// cred is the user the job runs as (nil: root), ownUID whether that is
	// a uid of its owner's own; secretEnv its secret variables, kept in
	// memory only, until it is launched.
	cred      *shim.Credential
	ownUID    bool
	secretEnv map[string]string

	// guarded by m.mu
	st       Status
	group    *cgroupfs.Group
	proc     *os.Process // nil once supervise takes it to reap (see reap)
	kill     *killTimer  // the stop's kill timer, from the first stop to the end
	reserved uint64
	changed  chan struct{} // closed and replaced at every change
	stopReq  bool
	stopWait time.Duration // the grace of a stop asked while launching
	timedOut bool
	termSent bool // SIGTERM went to the job once; a later stop only shortens the grace
	lostErr  error
	done     chan struct{} // closed once the final state is recorded
	pubState State         // the state of the job's last event; empty: none yet
	trimmed  bool          // st's Args and Env are on disk only (trim.go)

	sinceCheck int64 // output written since the last check of the output quota; copyOutput's only
}

// Open opens a Manager on cfg.StateDir: it loads every job recorded there,
// marks the ones that were pending or running FAILED (server_restarted),
// kills and removes every cgroup left under the parent, and applies
// retention.
func Open(cfg Config) (*Manager, error) {
	if cfg.Cgroups == nil {
		return nil, errors.New("job manager: no cgroup hierarchy")
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 10 * time.Second
	}
	m := &Manager{cfg: cfg, jobs: map[string]*job{}, requests: map[string]*request{}, users: map[string]*userJobs{}, quit: make(chan struct{}), copyBuffers: newCopyBuffers(), events: newEventLog(cfg.EventBuffer)}
	// The state directory is made private through a descriptor opened
	// with O_NOFOLLOW, before anything is made in it: a symbolic link in
	// its place fails (ELOOP) rather than having its target (/etc, say)
	// made 0700 and filled.
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("job manager: %w", err)
	}
	dir, err := os.OpenFile(cfg.StateDir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("job manager: open the state directory: %w", err)
	}
	err = dir.Chmod(0o700)
	dir.Close()
	if err != nil {
		return nil, fmt.Errorf("job manager: %w", err)
	}
	if err := os.MkdirAll(m.jobsDir(), 0o700); err != nil {
		return nil, fmt.Errorf("job manager: %w", err)
	}
	if cfg.UIDs != nil {
		if m.uids, err = openUIDs(cfg.StateDir, *cfg.UIDs); err != nil {
			return nil, fmt.Errorf("job manager: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cfg.Cgroups.Sweep(ctx); err != nil {
		return nil, fmt.Errorf("job manager: remove the cgroups of a previous server: %w", err)
	}
	if err := m.load(); err != nil {
		return nil, err
	}
	m.prune()
	if cfg.Retain > 0 {
		m.wg.Add(1)
		go m.retentionLoop()
	}
	return m, nil
}

func (m *Manager) jobsDir() string { return filepath.Join(m.cfg.StateDir, "jobs") }

func (m *Manager) logOptions() ringlog.Options {
	return ringlog.Options{RingSize: m.cfg.RingSize, DiskCap: m.cfg.OutputCap}
}

func (m *Manager) report(err error) {
	if err != nil && m.cfg.OnError != nil {
		m.cfg.OnError(err)
	}
}

// Close shuts the Manager down: no new job is admitted, pending jobs are
// stopped, running jobs are stopped with the default grace, and their
// final states are recorded. It returns when all of that is done or ctx
// ends.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return nil
	}
	m.closing = true
	m.mu.Unlock()
	close(m.quit)
	// No job starts once closing is set (Start and schedule check it with
	// mu held before they count a job as starting), but one already past
	// that check may still be launching: not yet in m.jobs, its
	// supervisor not yet added to m.wg. Wait for those launches to end,
	// so that every job that runs is seen below, and m.wg.Wait starts
	// only once nothing can call m.wg.Add for a new job. (launch also
	// stops a job it finds closing set for.)
	launched := make(chan struct{})
	go func() {
		m.starting.Wait()
		close(launched)
	}()
	select {
	case <-launched:
	case <-ctx.Done():
		return ctx.Err()
	}
	m.mu.Lock()
	var ids []string
	for id, j := range m.jobs {
		if !j.st.State.Ended() {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.Stop(ctx, id, nil)
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return errors.Join(errs...)
}
