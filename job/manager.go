package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	// Cgroups is the server's cgroup subtree.
	Cgroups *cgroupfs.Hierarchy
	// Launcher starts the shim.
	Launcher shim.Launcher
	// RunAs is the user jobs run as; nil runs them as root, which a server
	// must choose explicitly.
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
	// StopGrace is the time between SIGTERM and kill when a stop names none.
	StopGrace time.Duration
	// RingSize and OutputCap configure each job's output log.
	RingSize  int
	OutputCap int64
	// Retain removes finished jobs that ended longer ago; 0 keeps them.
	Retain time.Duration
	// RetainCount keeps at most this many finished jobs; 0: no bound.
	RetainCount int
	// OnError receives errors of background work (a record that could not
	// be written, a cgroup that could not be removed); nil drops them.
	OnError func(error)
}

// Manager runs jobs.
type Manager struct {
	cfg Config

	mu       sync.Mutex
	jobs     map[string]*job
	queue    []*job // PENDING, oldest first
	running  int
	reserved uint64
	closing  bool

	wg   sync.WaitGroup // every goroutine the Manager starts
	quit chan struct{}  // closed by Close: ends the retention loop
}

// job is one job. Fields under "guarded by m.mu" are read and written with
// the Manager's lock held.
type job struct {
	dir string
	log *ringlog.Log

	// persistMu orders the writes of this job's record.
	persistMu sync.Mutex

	// guarded by m.mu
	st       Status
	group    *cgroupfs.Group
	proc     *os.Process
	reserved uint64
	changed  chan struct{} // closed and replaced at every change
	stopReq  bool
	stopWait time.Duration // the grace of a stop asked while launching
	timedOut bool
	termSent bool // SIGTERM went to the job once; a later stop only shortens the grace
	lostErr  error
	done     chan struct{} // closed once the final state is recorded
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
	m := &Manager{cfg: cfg, jobs: map[string]*job{}, quit: make(chan struct{})}
	if err := os.MkdirAll(m.jobsDir(), 0o700); err != nil {
		return nil, fmt.Errorf("job manager: %w", err)
	}
	if err := os.Chmod(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("job manager: %w", err)
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

// load reads every record; a job that was not finished is failed now.
func (m *Manager) load() error {
	entries, err := os.ReadDir(m.jobsDir())
	if err != nil {
		return fmt.Errorf("job manager: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !ValidID(e.Name()) {
			continue
		}
		dir := filepath.Join(m.jobsDir(), e.Name())
		st, err := readRecord(dir)
		if err != nil {
			// A job whose record never got written (the server died
			// in StartJob) never existed for any client.
			m.report(fmt.Errorf("load job %s: %w; removing it", e.Name(), err))
			os.RemoveAll(dir)
			continue
		}
		log, err := ringlog.Open(filepath.Join(dir, "output"), m.logOptions())
		if err != nil {
			return fmt.Errorf("job manager: open output of job %s: %w", st.ID, err)
		}
		j := &job{dir: dir, log: log, st: st, changed: make(chan struct{}), done: make(chan struct{})}
		close(j.done)
		if !st.State.Ended() {
			j.st.State, j.st.Reason = StateFailed, ReasonServerRestarted
			j.st.Message = "the server stopped while the job was " + string(st.State) + "; it was killed when the server started again"
			j.st.Ended = time.Now()
			if err := m.persist(j); err != nil {
				return err
			}
		}
		m.jobs[st.ID] = j
	}
	return nil
}

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

// fitsLocked reports whether j can start now. Called with m.mu held.
func (m *Manager) fitsLocked(j *job) bool {
	if m.cfg.MaxRunning > 0 && m.running >= m.cfg.MaxRunning {
		return false
	}
	return m.cfg.MemoryCapacity == 0 || m.reserved+j.st.Limits.MemoryMax <= m.cfg.MemoryCapacity
}

// Start admits a job. A job that fits starts now: an error starting its
// command (a *shim.StartError) is returned and no job is left behind. One
// that does not fit yet is queued PENDING. One that can never fit is
// refused with ErrNeverFits.
func (m *Manager) Start(req Request) (Status, error) {
	if err := req.Validate(); err != nil {
		return Status{}, err
	}
	limits := m.applyDefaults(req.Limits)
	if err := limits.Validate(); err != nil {
		return Status{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if m.cfg.MemoryCapacity > 0 && limits.MemoryMax > m.cfg.MemoryCapacity {
		return Status{}, fmt.Errorf("%w: %d bytes asked, capacity %d", ErrNeverFits, limits.MemoryMax, m.cfg.MemoryCapacity)
	}
	id := newID()
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
		},
		changed: make(chan struct{}),
		done:    make(chan struct{}),
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
	if len(m.queue) == 0 && m.fitsLocked(j) {
		m.reserveLocked(j)
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
	if err := precheck(j.st.Command, m.jobEnv(j)); err != nil {
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
	m.jobs[id] = j
	m.queue = append(m.queue, j)
	m.mu.Unlock()
	// A job may have ended between the check and the queueing.
	m.schedule()
	return m.snapshot(j), nil
}

func (m *Manager) reserveLocked(j *job) {
	m.running++
	m.reserved += j.st.Limits.MemoryMax
	j.reserved = j.st.Limits.MemoryMax
}

func (m *Manager) releaseLocked(j *job) {
	m.running--
	m.reserved -= j.reserved
	j.reserved = 0
}

// schedule starts queued jobs, oldest first, while the oldest fits.
func (m *Manager) schedule() {
	for {
		m.mu.Lock()
		if m.closing || len(m.queue) == 0 || !m.fitsLocked(m.queue[0]) {
			m.mu.Unlock()
			return
		}
		j := m.queue[0]
		m.queue = m.queue[1:]
		m.reserveLocked(j)
		m.mu.Unlock()
		if err := m.launch(j); err != nil {
			m.mu.Lock()
			m.releaseLocked(j)
			j.st.State, j.st.Reason, j.st.Message, j.st.Ended = StateFailed, ReasonExecFailed, err.Error(), time.Now()
			m.notifyLocked(j)
			m.mu.Unlock()
			j.log.Close()
			m.report(m.persist(j))
			close(j.done)
		}
	}
}

// precheck resolves the command as the server can, for a queued job.
func precheck(command string, env []string) error {
	path := shim.EnvValue(env, "PATH")
	var st unix.Stat_t
	check := func(p string) error {
		if err := unix.Stat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return unix.EISDIR
		}
		if st.Mode&0o111 == 0 {
			return unix.EACCES
		}
		return nil
	}
	reason := func(err error) shim.Reason {
		switch {
		case errors.Is(err, unix.EACCES):
			return shim.ReasonPermissionDenied
		case errors.Is(err, unix.EISDIR):
			return shim.ReasonNotExecutable
		}
		return shim.ReasonNotFound
	}
	if filepath.IsAbs(command) || filepath.Base(command) != command {
		if err := check(command); err != nil {
			return &shim.StartError{Reason: reason(err), Stage: "lookup", Err: fmt.Errorf("%s: %w", command, err)}
		}
		return nil
	}
	for _, d := range filepath.SplitList(path) {
		if d != "" && check(filepath.Join(d, command)) == nil {
			return nil
		}
	}
	return &shim.StartError{Reason: shim.ReasonNotFound, Stage: "lookup", Err: fmt.Errorf("%s not found on PATH %q: %w", command, path, unix.ENOENT)}
}

// defaultPath is the PATH of a job that sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// jobEnv is the job's whole environment: PATH, HOME, the request's
// variables, and JOBWORKER_JOB_ID.
func (m *Manager) jobEnv(j *job) []string {
	vars := map[string]string{"PATH": defaultPath, "HOME": m.home()}
	for k, v := range j.st.Env {
		vars[k] = v
	}
	vars["JOBWORKER_JOB_ID"] = j.st.ID
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// home is the run-as user's home when it exists, otherwise /.
func (m *Manager) home() string {
	if c := m.cfg.RunAs; c != nil && c.Home != "" {
		if fi, err := os.Stat(c.Home); err == nil && fi.IsDir() {
			return c.Home
		}
		return "/"
	}
	if m.cfg.RunAs == nil {
		return "/root"
	}
	return "/"
}

// launch creates the job's cgroup, starts its command through the shim and
// hands it to a supervising goroutine.
func (m *Manager) launch(j *job) error {
	g, err := m.cfg.Cgroups.Create(j.st.Owner, j.st.ID, j.st.Limits)
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		m.removeGroup(g)
		return err
	}
	growPipe(r)
	dir := j.st.Dir
	if dir == "" {
		dir = m.home()
	}
	spec := shim.Spec{
		Command:    j.st.Command,
		Args:       j.st.Args,
		Env:        m.jobEnv(j),
		Dir:        dir,
		Cgroup:     g.Dir(),
		Credential: m.cfg.RunAs,
		Isolate:    true,
	}
	p, err := m.cfg.Launcher.Start(spec, w, w)
	w.Close()
	if err != nil {
		r.Close()
		m.removeGroup(g)
		return err
	}
	m.mu.Lock()
	j.group, j.proc = g, p
	j.st.State, j.st.Started = StateRunning, time.Now()
	m.jobs[j.st.ID] = j
	m.notifyLocked(j)
	if m.closing && !j.stopReq {
		// Close began while this job was being launched: it missed the
		// job, so the job stops itself.
		j.stopReq, j.stopWait = true, m.cfg.StopGrace
	}
	stop, grace := j.stopReq, j.stopWait
	m.mu.Unlock()
	m.report(m.persist(j))
	m.wg.Add(1)
	go m.supervise(j, r)
	if stop {
		// Stopped while it was being launched.
		m.terminate(j, grace)
	}
	return nil
}

func (m *Manager) removeGroup(g *cgroupfs.Group) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m.report(g.Kill(ctx))
	m.report(g.Remove(ctx))
}

// supervise follows a running job to its end: output into the log, the
// timeout, the exit, the cleanup of its cgroup, the final record.
func (m *Manager) supervise(j *job, out *os.File) {
	defer m.wg.Done()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		m.copyOutput(j, out)
	}()
	var timer *time.Timer
	if j.st.Timeout > 0 {
		timer = time.AfterFunc(j.st.Timeout, func() { m.expire(j) })
	}
	ps, werr := j.proc.Wait()
	// The job ended when its process did; what follows is the server's
	// cleanup, which a busy server may take longer over.
	exited := time.Now()
	if timer != nil {
		timer.Stop()
	}
	// Whatever the job left running (daemons, children that kept its
	// output open) dies with it; then the pipe reaches EOF.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m.report(j.group.Kill(ctx))
	<-copied
	out.Close()
	usage, uerr := j.group.Usage()
	m.report(uerr)
	m.report(j.group.Remove(ctx))
	m.report(j.log.Close())

	m.mu.Lock()
	j.st.Usage = usage
	j.st.Ended = exited
	m.classifyLocked(j, ps, werr)
	m.releaseLocked(j)
	m.notifyLocked(j)
	m.mu.Unlock()
	m.report(m.persist(j))
	m.prune()
	close(j.done)
	m.schedule()
}

// copyOutput moves the job's output into its log. If the log cannot store
// it (the disk is full), the job is killed: its output would be lost.
func (m *Manager) copyOutput(j *job, out *os.File) {
	rc, err := out.SyscallConn()
	if err != nil {
		m.report(err)
		io.Copy(j.log, out)
		return
	}
	for {
		n, err := readPooled(rc, func(b []byte) error {
			_, werr := j.log.Write(b)
			return werr
		})
		var werr *writeError
		if errors.As(err, &werr) {
			m.mu.Lock()
			lost := j.lostErr == nil
			if lost {
				j.lostErr = werr.err
			}
			m.mu.Unlock()
			if lost {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				m.report(j.group.Kill(ctx))
				cancel()
			}
			io.Copy(io.Discard, out)
			return
		}
		if err != nil || n == 0 {
			return
		}
	}
}

// outputPipeSize is the capacity asked for a job's output pipe. The pipe
// lets a job write ahead while the server is busy elsewhere (serving a
// thousand followers, say); it is kernel memory only while it holds output.
const outputPipeSize = 1 << 20

// growPipe raises the capacity of a job's output pipe to outputPipeSize;
// where the kernel refuses, the default stays, which is only slower.
func growPipe(p *os.File) {
	rc, err := p.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.FcntlInt(fd, unix.F_SETPIPE_SZ, outputPipeSize)
	})
}

// copyBuffers hold output on its way from a job's pipe to its log, only
// while it is there: an idle job holds no buffer. One read takes what the
// pipe holds, up to all of it.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, outputPipeSize); return &b }}

type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// readPooled waits until the pipe is readable, then reads into a pooled
// buffer and passes what it read to write. It returns 0 and nil at EOF.
func readPooled(rc syscall.RawConn, write func([]byte) error) (int, error) {
	var n int
	var rerr, werr error
	err := rc.Read(func(fd uintptr) bool {
		bp := copyBuffers.Get().(*[]byte)
		defer copyBuffers.Put(bp)
		n, rerr = unix.Read(int(fd), *bp)
		if rerr == unix.EAGAIN {
			return false // not readable yet: wait in the poller
		}
		if rerr == unix.EINTR {
			return false
		}
		if n > 0 {
			werr = write((*bp)[:n])
		}
		return true
	})
	switch {
	case werr != nil:
		return n, &writeError{werr}
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n < 0:
		return 0, nil
	}
	return n, nil
}

// classifyLocked sets the final state from how the process ended. Called
// with m.mu held.
func (m *Manager) classifyLocked(j *job, ps *os.ProcessState, werr error) {
	st := &j.st
	var ws syscall.WaitStatus
	if ps != nil {
		ws, _ = ps.Sys().(syscall.WaitStatus)
	}
	switch {
	case werr != nil:
		st.Message = "waiting for the job failed: " + werr.Error()
	case ws.Exited():
		code := ws.ExitStatus()
		st.ExitCode = &code
	case ws.Signaled():
		sig := int(ws.Signal())
		st.Signal = &sig
	}
	switch {
	case j.stopReq:
		st.State, st.Reason = StateStopped, ReasonNone
	case j.timedOut:
		st.State, st.Reason = StateFailed, ReasonTimedOut
		st.Message = fmt.Sprintf("the job ran longer than its timeout of %v", st.Timeout)
	case j.lostErr != nil:
		st.State, st.Reason = StateFailed, ReasonOutputLost
		st.Message = fmt.Sprintf("%v: %v; the job was killed so that no output is silently lost", ErrOutputLost, j.lostErr)
	case st.ExitCode != nil && *st.ExitCode == 0:
		st.State, st.Reason = StateCompleted, ReasonNone
	case st.ExitCode != nil:
		st.State, st.Reason = StateFailed, ReasonExitCode
	case st.Signal != nil && *st.Signal == int(syscall.SIGKILL) && st.Usage.OOMKills > 0:
		st.State, st.Reason = StateFailed, ReasonOOMKilled
		st.Message = fmt.Sprintf("killed by the OOM killer at its memory limit of %d bytes", st.Limits.MemoryMax)
	case st.Signal != nil:
		st.State, st.Reason = StateFailed, ReasonSignal
	default:
		st.State, st.Reason = StateFailed, ReasonSignal
	}
}

// expire ends a job that ran past its timeout.
func (m *Manager) expire(j *job) {
	m.mu.Lock()
	if j.st.State != StateRunning || j.stopReq {
		m.mu.Unlock()
		return
	}
	j.timedOut = true
	m.mu.Unlock()
	m.terminate(j, m.cfg.StopGrace)
}

// terminate sends SIGTERM to the job's process group and, if the job has
// not ended after grace, kills its whole cgroup. A job that was sent
// SIGTERM already (a second stop, or a stop after its timeout) is not sent
// it again, which would run its handler twice: the shorter of the graces
// applies.
func (m *Manager) terminate(j *job, grace time.Duration) {
	m.mu.Lock()
	p, g, done, sent := j.proc, j.group, j.done, j.termSent
	j.termSent = true
	m.mu.Unlock()
	if !sent {
		// The shim made the job's process a session and group leader.
		if err := unix.Kill(-p.Pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
			m.report(fmt.Errorf("stop job %s: SIGTERM: %w", j.st.ID, err))
		}
		// The job's process is PID 1 of its own PID namespace, and the
		// kernel delivers a signal to such a process only if it handles
		// it (pid_namespaces(7)). One that neither handles nor ignores
		// SIGTERM would have died of it anywhere else: it is killed now
		// rather than after a grace it cannot use.
		if !handlesSignal(p.Pid, unix.SIGTERM) {
			grace = 0
		}
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
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
	}()
}

// storageError marks an error of the state directory that is a lack of
// space as ErrStateFull, which the caller can act on (free space).
func storageError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrStateFull, err)
	}
	return err
}

// handlesSignal reports whether process pid catches or ignores sig, from
// the SigCgt and SigIgn masks of /proc/PID/status. When it cannot tell (the
// process is gone), it says yes, which keeps the grace.
func handlesSignal(pid int, sig unix.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	bit := uint64(1) << (uint(sig) - 1)
	found := 0
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || k != "SigCgt" && k != "SigIgn" {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return true
		}
		if mask&bit != 0 {
			return true
		}
		found++
	}
	return found < 2
}

// Stop stops a job: a pending one leaves the queue; a running one gets
// SIGTERM, then after grace (nil: the default) its cgroup is killed. Stop
// waits for the job to end (or ctx) and returns its final status. A job
// that already ended is not an error: its status is returned.
func (m *Manager) Stop(ctx context.Context, id string, grace *time.Duration) (Status, error) {
	g := m.cfg.StopGrace
	if grace != nil && *grace >= 0 {
		g = *grace
	}
	m.mu.Lock()
	j, ok := m.jobs[id]
	if !ok {
		m.mu.Unlock()
		return Status{}, ErrNotFound
	}
	switch j.st.State {
	case StatePending:
		if i := slices.Index(m.queue, j); i >= 0 {
			m.queue = slices.Delete(m.queue, i, i+1)
			j.st.State, j.st.Ended = StateStopped, time.Now()
			m.notifyLocked(j)
			m.mu.Unlock()
			j.log.Close()
			m.report(m.persist(j))
			close(j.done)
			m.schedule()
			return m.snapshot(j), nil
		}
		// Being launched right now: launch stops it when it is running.
		j.stopReq, j.stopWait = true, g
	case StateRunning:
		j.stopReq = true
	}
	running := j.st.State == StateRunning
	done := j.done
	m.mu.Unlock()
	if running {
		m.terminate(j, g)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return m.snapshot(j), ctx.Err()
	}
	return m.snapshot(j), nil
}

// notifyLocked wakes watchers of j. Called with m.mu held.
func (m *Manager) notifyLocked(j *job) {
	close(j.changed)
	j.changed = make(chan struct{})
}

// snapshot returns j's status with live usage and output figures.
func (m *Manager) snapshot(j *job) Status {
	m.mu.Lock()
	st := j.st
	g := j.group
	running := st.State == StateRunning
	m.mu.Unlock()
	if running && g != nil {
		if u, err := g.Usage(); err == nil {
			st.Usage = u
		}
	}
	st.OutputSize, st.OutputStart = j.log.Size(), j.log.Start()
	return st
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
}

// List returns the jobs that match f, newest first.
func (m *Manager) List(f Filter) []Status {
	m.mu.Lock()
	var js []*job
	for _, j := range m.jobs {
		if (len(f.Owners) == 0 || slices.Contains(f.Owners, j.st.Owner)) && (len(f.States) == 0 || slices.Contains(f.States, j.st.State)) {
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

// Done returns a channel closed when the job has ended and been recorded.
func (m *Manager) Done(id string) (<-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return nil, ErrNotFound
	}
	return j.done, nil
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
		if j.st.State == StateRunning && j.group != nil {
			groups = append(groups, j.group)
		}
	}
	m.mu.Unlock()
	for _, g := range groups {
		u, err := g.Usage()
		if err != nil {
			continue
		}
		t.Usage.CPUUsageUsec += u.CPUUsageUsec
		t.Usage.CPUUserUsec += u.CPUUserUsec
		t.Usage.CPUSystemUsec += u.CPUSystemUsec
		t.Usage.MemoryCurrent += u.MemoryCurrent
		t.Usage.MemoryPeak += u.MemoryPeak
		t.Usage.IOReadBytes += u.IOReadBytes
		t.Usage.IOWriteBytes += u.IOWriteBytes
		t.Usage.IOReadOps += u.IOReadOps
		t.Usage.IOWriteOps += u.IOWriteOps
		t.Usage.PidsCurrent += u.PidsCurrent
		t.Usage.OOMKills += u.OOMKills
	}
	return t
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
	var ids []string
	for id, j := range m.jobs {
		if !j.st.State.Ended() {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	close(m.quit)
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
	if m.cfg.Retain <= 0 && m.cfg.RetainCount <= 0 {
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
	for i, j := range ended {
		if (m.cfg.RetainCount > 0 && i >= m.cfg.RetainCount) || (m.cfg.Retain > 0 && j.st.Ended.Before(cutoff)) {
			drop = append(drop, j)
			delete(m.jobs, j.st.ID)
		}
	}
	m.mu.Unlock()
	for _, j := range drop {
		j.persistMu.Lock()
		if err := os.RemoveAll(j.dir); err != nil {
			m.report(fmt.Errorf("retention: remove job %s: %w", j.st.ID, err))
		}
		j.persistMu.Unlock()
	}
}
