package job

import (
	"context"
	"os"
	"sort"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/shim"
)

// defaultPath is the PATH of a job that sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// jobEnv is the job's whole environment: PATH, HOME, the request's
// variables and secret ones, and JOBWORKER_JOB_ID.
func (m *Manager) jobEnv(j *job) []string {
	vars := map[string]string{"PATH": defaultPath, "HOME": j.home()}
	for k, v := range j.st.Env {
		vars[k] = v
	}
	for k, v := range j.secretEnv {
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

// home is the job's HOME: for a job with a uid of its owner's own, its
// private /tmp (isolate.go of the shim); for a --run-as user, that user's
// home when it exists, otherwise /; for root, /root.
func (j *job) home() string {
	c := j.cred
	switch {
	case j.ownUID:
		return "/tmp"
	case c == nil:
		return "/root"
	case c.Home != "":
		if fi, err := os.Stat(c.Home); err == nil && fi.IsDir() {
			return c.Home
		}
	}
	return "/"
}

// workdir is the job's working directory: the request's, or the home.
func (j *job) workdir() string {
	if j.st.Dir != "" {
		return j.st.Dir
	}
	return j.home()
}

// pidNamespace reports whether the job runs in a PID namespace of its own:
// when it shares its uid with other owners' jobs (one --run-as user), which
// could otherwise see and signal it. A job with a uid of its owner's own
// runs in the host's, where it sees only that uid's processes and gets
// signals as on the host.
func (j *job) pidNamespace() bool { return !j.ownUID }

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
	spec := shim.Spec{
		Command:      j.st.Command,
		Args:         j.st.Args,
		Env:          m.jobEnv(j),
		Dir:          j.workdir(),
		Cgroup:       g.Dir(),
		Credential:   j.cred,
		Isolate:      true,
		PIDNamespace: j.pidNamespace(),
		NoNetwork:    j.st.Network == NetworkNone,
	}
	p, err := m.cfg.Launcher.Start(spec, w, w)
	w.Close()
	j.secretEnv = nil // in the shim's hands now: kept nowhere else
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
