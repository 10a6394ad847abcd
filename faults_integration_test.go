//go:build integration

package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/internal/testchild"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"golang.org/x/sys/unix"
)

// The fault tests: the server and its jobs misbehave or are mistreated, and
// nothing is lost and nothing is left behind.

// follower is a `jobworker logs -f` running in the background.
type follower struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	errb   lockedWriter
	errbuf bytes.Buffer
	copied chan struct{}
}

// follow starts `logs -f id` as who and returns once it has printed at least
// min bytes; the rest is collected in the background.
func (s *devServer) follow(who, id string, min int) *follower {
	s.t.Helper()
	f := &follower{copied: make(chan struct{})}
	f.errb.w = &f.errbuf
	f.cmd = exec.Command(binary(s.t), "logs", "-f", id)
	f.cmd.Env = s.cliEnv(s.addr, who)
	f.cmd.Stderr = &f.errb
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { f.cmd.Process.Kill() })
	buf := make([]byte, 4096)
	for f.out.Len() < min {
		n, err := out.Read(buf)
		f.out.Write(buf[:n])
		if err != nil {
			s.t.Fatalf("follower of %s ended after %d bytes: %v", id, f.out.Len(), err)
		}
	}
	go func() {
		io.Copy(&f.out, out)
		close(f.copied)
	}()
	return f
}

// end waits for the follower to exit and returns its output and exit code.
func (f *follower) end(t *testing.T, d time.Duration) ([]byte, int) {
	t.Helper()
	select {
	case <-f.copied:
	case <-time.After(d):
		t.Fatalf("the follower did not end within %v; its stderr: %s", d, f.stderr())
	}
	err := f.cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return f.out.Bytes(), code
}

func (f *follower) stderr() string {
	f.errb.mu.Lock()
	defer f.errb.mu.Unlock()
	return f.errbuf.String()
}

// cgroupProcs lists the processes in a cgroup directory.
func cgroupProcs(t *testing.T, dir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// isLines reports whether b is exactly "line 0\n" ... "line n-1\n" for some n.
func isLines(b []byte) bool {
	n := bytes.Count(b, []byte("\n"))
	return string(b) == expectedLines(n)
}

// TestFaultServerKilled: the server is SIGKILLed while a job writes and two
// followers stream it. A new server on the same state directory and address
// has every record and every byte the old one took in; the job's processes
// and cgroup are gone; the followers reconnect by themselves and end with
// the job, each with exactly the stored output.
func TestFaultServerKilled(t *testing.T) {
	state := t.TempDir()
	s := startDevServer(t, state)
	done := s.detach("user", "sh", "-c", "printf 'finished before the kill'")
	if j := s.wait(done); j.GetState() != jobworkerv1.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("first job: %v", j)
	}
	running := s.detach("user", "sh", "-c", `i=0; while [ $i -lt 1000000 ]; do echo "line $i"; i=$((i+1)); done`)
	followers := []*follower{s.follow("user", running, 2000), s.follow("reader", running, 4000)}
	cg := jobCgroup(t, running)
	if cg == "" {
		t.Fatal("the running job has no cgroup")
	}
	pids := cgroupProcs(t, cg)
	if len(pids) == 0 {
		t.Fatal("the running job's cgroup holds no process")
	}
	var seen []int
	for _, f := range followers {
		seen = append(seen, f.out.Len())
	}

	s.kill()
	s2 := startDevServer(t, state, "--listen", s.addr)

	j := s2.wait(running)
	if j.GetState() != jobworkerv1.JobState_JOB_STATE_FAILED || j.GetReason() != jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED {
		t.Errorf("the job running at the kill: %v %v, want FAILED server_restarted", j.GetState(), j.GetReason())
	}
	if dir := jobCgroup(t, running); dir != "" {
		t.Errorf("the job's cgroup %s is still there after the restart", dir)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d of the killed server's job still runs", pid)
		}
	}
	stored := []byte(s2.cli("admin", "logs", running).out)
	if !isLines(stored) || int64(len(stored)) != j.GetOutputSize() {
		t.Errorf("stored output: %d bytes (record says %d), whole lines from 0: %v", len(stored), j.GetOutputSize(), isLines(stored))
	}
	for i, f := range followers {
		got, code := f.end(t, 2*time.Minute)
		if code != 0 || !bytes.Equal(got, stored) {
			t.Errorf("follower %d: exit %d, %d bytes, want the %d stored bytes; stderr: %s", i, code, len(got), len(stored), f.stderr())
		}
		if len(stored) < seen[i] {
			t.Errorf("follower %d saw %d bytes before the kill, but only %d are stored", i, seen[i], len(stored))
		}
		if !strings.Contains(f.stderr(), "reconnected") {
			t.Errorf("follower %d did not say it reconnected: %q", i, f.stderr())
		}
	}
	if r := s2.cli("user", "logs", done); r.out != "finished before the kill" {
		t.Errorf("output of the job finished before the kill: %q %q", r.out, r.err)
	}
	if j := s2.job(done); j.GetState() != jobworkerv1.JobState_JOB_STATE_COMPLETED {
		t.Errorf("the job finished before the kill is now %v", j.GetState())
	}
}

// TestFaultJobBehaviours: jobs that misbehave end as product.md says, and
// leave nothing behind: their cgroup is removed only once every process in
// it is gone. The server serves on after each.
func TestFaultJobBehaviours(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	failed, stopped, completed := jobworkerv1.JobState_JOB_STATE_FAILED, jobworkerv1.JobState_JOB_STATE_STOPPED, jobworkerv1.JobState_JOB_STATE_COMPLETED
	none := jobworkerv1.FailureReason_FAILURE_REASON_UNSPECIFIED
	tests := []struct {
		name   string
		flags  []string
		cmd    []string
		ready  string                        // output to wait for before stopping; "" = let it end
		during func(t *testing.T, id string) // checks while it runs; nil = none
		state  jobworkerv1.JobState
		reason jobworkerv1.FailureReason
		out    string // the whole output, when known
	}{
		{"fork bomb held by pids.max", []string{"--pids-limit", "32", "--timeout", "8s"},
			[]string{"sh", "-c", `b() { b | b & }; b; exec sleep 1000`}, "", heldByPidsMax(32), failed, jobworkerv1.FailureReason_FAILURE_REASON_TIMED_OUT, ""},
		{"memory exhausted", []string{"--memory-limit", "32M"},
			[]string{"awk", `BEGIN { s = "x"; while (1) s = s s }`}, "", nil, failed, jobworkerv1.FailureReason_FAILURE_REASON_OOM_KILLED, ""},
		{"ignores SIGTERM", nil,
			[]string{"sh", "-c", `trap "" TERM; echo ready; while :; do sleep 1; done`}, "ready\n", nil, stopped, none, "ready\n"},
		{"daemonizes and exits", nil,
			[]string{"sh", "-c", `setsid sleep 1000 & setsid sh -c 'exec sleep 1000 </dev/null >/dev/null 2>&1' & echo parent exits`}, "", nil, completed, none, "parent exits\n"},
		{"closes its output and runs on", nil,
			[]string{"sh", "-c", `echo before close; exec >&- 2>&-; exec sleep 1000`}, "before close\n", outputClosed, stopped, none, "before close\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := s.in(t)
			r := s.cli("user", append(append(append([]string{"run", "-d"}, tt.flags...), "--"), tt.cmd...)...)
			id := strings.TrimSpace(r.out)
			if r.code != 0 || !uuidRE.MatchString(r.out) {
				t.Fatalf("run -d: exit %d, %q %q", r.code, r.out, r.err)
			}
			if tt.ready != "" {
				s.waitOutput("user", id, tt.ready)
			}
			if tt.during != nil {
				tt.during(t, id)
			}
			if tt.ready != "" {
				if j := s.job(id); j.GetState() != jobworkerv1.JobState_JOB_STATE_RUNNING {
					t.Fatalf("after %q the job is %v, want running", tt.ready, j.GetState())
				}
				if r := s.cli("user", "stop", "--grace", "1s", id); r.code != 0 {
					t.Fatalf("stop: exit %d, %q", r.code, r.err)
				}
			}
			j := s.wait(id)
			if j.GetState() != tt.state || j.GetReason() != tt.reason {
				t.Errorf("ended %v %v (%s), want %v %v", j.GetState(), j.GetReason(), j.GetMessage(), tt.state, tt.reason)
			}
			if dir := jobCgroup(t, id); dir != "" {
				t.Errorf("its cgroup %s is still there: processes %v", dir, cgroupProcs(t, dir))
			}
			if out := s.cli("user", "logs", id).out; tt.out != "" && out != tt.out {
				t.Errorf("output %q, want %q", out, tt.out)
			}
			if r := s.cli("user", "run", "--", "echo", "still serving"); r.out != "still serving\n" {
				t.Errorf("the next job: %q %q", r.out, r.err)
			}
		})
	}
}

// runningCgroup waits for a running job's cgroup to appear and returns it.
func runningCgroup(t *testing.T, id string) string {
	t.Helper()
	var dir string
	eventually(t, 30*time.Second, "the job's cgroup", func() bool {
		dir = jobCgroup(t, id)
		return dir != ""
	})
	return dir
}

// heldByPidsMax checks, while a fork bomb runs, that its cgroup's pids.max
// is max, that the bomb ran into it (pids.events counts refused forks) and
// that it never held more processes than that.
func heldByPidsMax(max int) func(t *testing.T, id string) {
	return func(t *testing.T, id string) {
		t.Helper()
		dir := runningCgroup(t, id)
		if got := strings.TrimSpace(readString(t, filepath.Join(dir, "pids.max"))); got != strconv.Itoa(max) {
			t.Errorf("pids.max = %q, want %d", got, max)
		}
		eventually(t, 30*time.Second, "pids.events counting refused forks", func() bool {
			n, ok := strings.CutPrefix(strings.TrimSpace(readString(t, filepath.Join(dir, "pids.events"))), "max ")
			return ok && n != "0"
		})
		cur, err := strconv.Atoi(strings.TrimSpace(readString(t, filepath.Join(dir, "pids.current"))))
		if err != nil {
			t.Fatal(err)
		}
		if cur > max {
			t.Errorf("pids.current = %d, above pids.max %d", cur, max)
		}
		t.Logf("the bomb at pids.max %d: pids.current %d, %s", max, cur, strings.TrimSpace(readString(t, filepath.Join(dir, "pids.events"))))
	}
}

// outputClosed waits until the job's only process is the sleep it execs
// after closing its stdout and stderr, and checks it has neither.
func outputClosed(t *testing.T, id string) {
	t.Helper()
	dir := runningCgroup(t, id)
	var pid int
	eventually(t, 30*time.Second, "the job's sh replaced by sleep", func() bool {
		procs := cgroupProcs(t, dir)
		if len(procs) != 1 {
			return false
		}
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(procs[0]) + "/comm")
		pid = procs[0]
		return err == nil && string(comm) == "sleep\n"
	})
	for _, fd := range []string{"1", "2"} {
		if target, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the job's fd %s after it closed it: %q, %v", fd, target, err)
		}
	}
}

// readString reads a whole file, failing the test if it cannot.
func readString(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFaultBinaryOutput: output that is not text, with every byte value
// and no trailing newline, comes back byte for byte, whole and in parts.
func TestFaultBinaryOutput(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	dir := testchild.PublicDir(t) // the job runs as nobody
	data := make([]byte, 0, 3<<20+7)
	for i := range 1024 {
		data = append(data, byte(i))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for len(data) < cap(data)-1 {
		data = append(data, byte(rng.Uint32()))
	}
	data = append(data, 0xff) // no newline at the end
	file := filepath.Join(dir, "data")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.cli("user", "run", "--", "cat", file)
	if r.code != 0 || r.out != string(data) {
		t.Fatalf("run cat: exit %d, %d bytes, want the %d bytes of the file; stderr %q", r.code, len(r.out), len(data), r.err)
	}
	id := s.detach("user", "cat", file)
	s.wait(id)
	if r := s.cli("user", "logs", id); r.out != string(data) {
		t.Errorf("logs: %d bytes, identical %v", len(r.out), r.out == string(data))
	}
	if r := s.cli("user", "logs", "--offset", "-1000", id); r.out != string(data[len(data)-1000:]) {
		t.Errorf("logs --offset -1000: %d bytes, not the last 1000", len(r.out))
	}
	if r := s.cli("user", "logs", "--offset", "1048577", id); r.out != string(data[1048577:]) {
		t.Errorf("logs --offset 1048577: %d bytes, not the rest", len(r.out))
	}
}

// fill appends to the file name until its filesystem is full.
func fill(t *testing.T, name string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// TestFaultDiskFull: the state directory's filesystem fills up. A job
// whose output cannot be stored fails with output_lost (and is killed, so
// nothing is silently lost); a job whose record cannot be stored is refused
// with ResourceExhausted; what was stored before stays readable; the server
// serves on, and once there is space again jobs run.
func TestFaultDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m,mode=0700"); err != nil {
		t.Fatalf("mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	// No reserve: this test is of what a full disk does to running jobs
	// and to a start whose record does not fit (the reserve's own test is
	// TestDiskFilledByOneUser).
	s := startDevServer(t, filepath.Join(mnt, "state"), "--state-dir-reserve", "0")
	kept := s.detach("user", "sh", "-c", "echo kept")
	s.wait(kept)

	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	// Room for a record, not for much output.
	if err := os.Truncate(filler, mustSize(t, filler)-64<<10); err != nil {
		t.Fatal(err)
	}
	// It would write for ever: only the server's kill ends it (the timeout
	// is there so that a server that fails to kill it fails the test).
	lost := s.detachWith("user", []string{"--timeout", "2m"}, "cat", "/dev/zero")
	j := s.wait(lost)
	if j.GetState() != jobworkerv1.JobState_JOB_STATE_FAILED || j.GetReason() != jobworkerv1.FailureReason_FAILURE_REASON_OUTPUT_LOST || !strings.Contains(j.GetMessage(), "no space left on device") {
		t.Errorf("a job writing onto a full disk: %v %v %q, want FAILED output_lost with the cause", j.GetState(), j.GetReason(), j.GetMessage())
	}
	if j.Signal == nil || j.GetSignal() != int32(syscall.SIGKILL) {
		t.Errorf("a job writing onto a full disk ended with signal %v (set %v), want killed by SIGKILL", j.GetSignal(), j.Signal != nil)
	}
	out := s.cli("user", "logs", lost).out
	if int64(len(out)) != j.GetOutputSize() || strings.Trim(out, "\x00") != "" {
		t.Errorf("what the failed job stored: %d bytes (record: %d), all zero: %v", len(out), j.GetOutputSize(), strings.Trim(out, "\x00") == "")
	}

	fill(t, filler)
	r := s.cli("user", "run", "--", "echo", "no room")
	if r.code != 125 || !strings.Contains(r.err, "state directory is full") || !strings.Contains(r.err, "no space left on device") {
		t.Errorf("run on a full disk: exit %d, %q, want the full state directory named", r.code, r.err)
	}
	if r := s.cli("user", "logs", kept); r.out != "kept\n" {
		t.Errorf("output stored before the disk filled: %q %q", r.out, r.err)
	}
	if r := s.cli("user", "list"); r.code != 0 || !strings.Contains(r.out, kept) || !strings.Contains(r.out, lost) {
		t.Errorf("list on a full disk: exit %d\n%s%s", r.code, r.out, r.err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if r := s.cli("user", "run", "--", "echo", "room again"); r.code != 0 || r.out != "room again\n" {
		t.Errorf("run once there is room: exit %d, %q %q", r.code, r.out, r.err)
	}
}

func mustSize(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestPrivilegeJobConfined: a job, as the default unprivileged user, cannot
// change its own limits, read the server's key or state, signal the
// server, or see or signal another user's job (which runs as the same
// user, but in a PID namespace of its own).
func TestPrivilegeJobConfined(t *testing.T) {
	// Not under /tmp, which a job has a private one of.
	state := rootDir(t)
	s := startDevServer(t, state)
	pid := strconv.Itoa(s.pid())
	// Another user's job, and its process as the host sees it.
	other := s.detach("bob", "sh", "-c", "echo secret-of-bob; exec sleep 1000")
	s.waitOutput("bob", other, "secret-of-bob")
	procs := cgroupProcs(t, jobCgroup(t, other))
	if len(procs) != 1 {
		t.Fatalf("bob's job has processes %v, want one", procs)
	}
	otherPid := strconv.Itoa(procs[0])
	// Bob's user level, by its path on the host, and his job's output.
	bobLevel := filepath.Dir(jobCgroup(t, other))
	outputs, err := filepath.Glob(filepath.Join(state, "jobs", other, "output", "*"))
	if err != nil || len(outputs) == 0 {
		t.Fatalf("bob's job's output files: %v, %v", outputs, err)
	}
	own := `/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)`
	tests := []struct {
		name, script, want string
		succeeds           bool // the script succeeds by finding the way barred
	}{
		// Its own cgroup is the read-only root of its cgroup namespace.
		{"write its memory.max", `echo max >` + own + `/memory.max`, "Read-only file system", false},
		{"write its pids.max", `echo max >` + own + `/pids.max`, "Read-only file system", false},
		{"move itself out of its cgroup", `echo $$ >/sys/fs/cgroup/cgroup.procs`, "Read-only file system", false},
		{"kill another user's jobs", `echo 1 | tee ` + bobLevel + `/cgroup.kill`, "No such file", false},
		{"read the server key", `cat ` + filepath.Join(state, "dev", "server.key"), "Permission denied", false},
		{"list the state directory", `ls ` + state, "Permission denied", false},
		{"read another user's job's output", `cat ` + strings.Join(outputs, " "), "Permission denied", false},
		// Another uid's processes, the server's included.
		{"signal the server", `kill -0 ` + pid, "Operation not permitted", false},
		{"kill the server", `kill -9 ` + pid, "Operation not permitted", false},
		{"signal another user's job", `kill -9 ` + otherPid, "Operation not permitted", false},
		{"read another user's job's environment", `cat /proc/` + otherPid + `/environ`, "No such file", false},
		{"see any process but its own", `n=$(ls /proc | grep -cE '^[0-9]+$'); echo "$n processes"; [ "$n" -le 8 ] && echo only its own`, "only its own", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.in(t).cli("user", "run", "--", "sh", "-c", tt.script)
			if (r.code == 0) != tt.succeeds || !strings.Contains(r.out, tt.want) {
				t.Errorf("job %q: exit %d, output %q; want %q (and exit 0: %v)", tt.script, r.code, r.out, tt.want, tt.succeeds)
			}
		})
	}
	if err := syscall.Kill(s.pid(), 0); err != nil {
		t.Errorf("the server: %v", err)
	}
	if j := s.job(other); j.GetState() != jobworkerv1.JobState_JOB_STATE_RUNNING {
		t.Errorf("bob's job is %v after the other jobs' attempts, want running", j.GetState())
	}
}

// rootDir is a directory of root's, mode 0700, outside /tmp (a job has a
// /tmp of its own, so what is under the host's would be out of its sight
// for that reason alone), removed when the test ends.
func rootDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "jobworker-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
