//go:build integration

package job

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/internal/testchild"
	"github.com/jobworker/jobworker/shim"
)

// TestMain lets the test binary be a job (mode alloc100m) or a server
// that is killed mid-flight (mode server): testchild.ModeEnv names it.
func TestMain(m *testing.M) {
	testchild.Dispatch(map[string]func(){
		"alloc100m": testchild.Alloc100M,
		"server":    func() { os.Exit(childServer()) },
	})
	os.Exit(m.Run())
}

const counterScript = `i=0; while :; do echo "line $i"; i=$((i+1)); [ $((i % 50)) = 0 ] && sleep 0.05; done`

// childServer runs a Manager on $STATE with cgroup parent $PARENT, starts
// a job that counts lines forever, prints the job's ID, and waits to be
// killed once its output has passed 4 KiB.
func childServer() int {
	h, err := cgroupfs.Setup(cgroupfs.Options{Parent: os.Getenv("PARENT")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	m, err := Open(Config{StateDir: os.Getenv("STATE"), Cgroups: h, Launcher: shim.Launcher{Binary: os.Getenv("JOBWORKER_BIN")}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	st, err := m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", counterScript}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log, _ := m.Output(st.ID)
	for log.Size() < 4096 {
		<-log.Wait(log.Size())
	}
	fmt.Println(st.ID)
	select {}
}

// env is a test's cgroup parent and state directory.
type env struct {
	h      *cgroupfs.Hierarchy
	parent string
	state  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Getenv("JOBWORKER_BIN") == "" {
		t.Fatal("JOBWORKER_BIN is not set: the integration stage runs the real binary as the shim")
	}
	mount, parent := testchild.TempCgroup(t)
	// Every job cgroup must be gone once the test's Managers are closed:
	// the Manager removes them. (This runs before TempCgroup's clean-up,
	// which then kills and removes whatever is left.)
	t.Cleanup(func() {
		if users, _ := filepath.Glob(filepath.Join(parent, "jobs", "user-*")); len(users) > 0 {
			t.Errorf("cgroups left behind: %v", users)
		}
	})
	h, err := cgroupfs.Setup(cgroupfs.Options{Mount: mount, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	return &env{h: h, parent: parent, state: t.TempDir()}
}

func nobody(t *testing.T) *shim.Credential {
	t.Helper()
	c, err := shim.LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) config(t *testing.T) Config {
	return Config{
		StateDir:  e.state,
		Cgroups:   e.h,
		Launcher:  shim.Launcher{Binary: os.Getenv("JOBWORKER_BIN")},
		RunAs:     nobody(t),
		Defaults:  cgroupfs.Limits{MemoryMax: 256 << 20, PidsMax: 256},
		StopGrace: 10 * time.Second,
		RingSize:  4096,
		OnError:   func(err error) { t.Errorf("manager: %v", err) },
	}
}

func open(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// jobDone is the channel closed once job id has ended and been recorded.
func jobDone(m *Manager, id string) (<-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return nil, ErrNotFound
	}
	return j.done, nil
}

func wait(t *testing.T, m *Manager, id string) Status {
	t.Helper()
	done, err := jobDone(m, id)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("job %s did not end", id)
	}
	st, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func output(t *testing.T, m *Manager, id string) string {
	t.Helper()
	log, err := m.Output(id)
	if err != nil {
		t.Fatal(err)
	}
	r := log.NewReader(context.Background(), 0, true)
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitOutput waits until the job's output contains s.
func waitOutput(t *testing.T, m *Manager, id, s string) {
	t.Helper()
	log, err := m.Output(id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := log.NewReader(ctx, 0, true)
	defer r.Close()
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(s)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("waiting for %q in the output (%q): %v", s, got, err)
		}
	}
}

func intp(p *int) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

func TestFinalStates(t *testing.T) {
	e := newEnv(t)
	m := open(t, e.config(t))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		req      Request
		state    State
		reason   Reason
		exitCode *int
		signal   *int
		out      string
	}{
		{"exit 0", Request{Command: "sh", Args: []string{"-c", "printf 'hi\\000'; echo $JOBWORKER_JOB_ID | wc -c; id -un"}}, StateCompleted, ReasonNone, ptr(0), nil, "hi\x0037\nnobody\n"},
		{"exit 3", Request{Command: "sh", Args: []string{"-c", "echo err >&2; exit 3"}}, StateFailed, ReasonExitCode, ptr(3), nil, "err\n"},
		// The job is PID 1 of its PID namespace, which the kernel spares
		// the signals it sends itself; a fault it cannot survive.
		{"signal", Request{Command: "sh", Args: []string{"-c", "ulimit -s 64; f() { f; }; f"}}, StateFailed, ReasonSignal, nil, ptr(int(syscall.SIGSEGV)), ""},
		{"self-signal spared", Request{Command: "sh", Args: []string{"-c", "kill -USR1 $$; echo spared"}}, StateCompleted, ReasonNone, ptr(0), nil, "spared\n"},
		{"oom", Request{Command: self, Env: map[string]string{testchild.ModeEnv: "alloc100m"}, Limits: cgroupfs.Limits{MemoryMax: 32 << 20}}, StateFailed, ReasonOOMKilled, nil, ptr(int(syscall.SIGKILL)), ""},
		{"timeout", Request{Command: "sleep", Args: []string{"1000"}, Timeout: 300 * time.Millisecond}, StateFailed, ReasonTimedOut, nil, ptr(int(syscall.SIGKILL)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Owner = "alice"
			st, err := m.Start(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			st = wait(t, m, st.ID)
			if st.State != tt.state || st.Reason != tt.reason || intp(st.ExitCode) != intp(tt.exitCode) || intp(st.Signal) != intp(tt.signal) {
				t.Errorf("final %s/%s exit %s signal %s (%s); want %s/%s exit %s signal %s",
					st.State, st.Reason, intp(st.ExitCode), intp(st.Signal), st.Message, tt.state, tt.reason, intp(tt.exitCode), intp(tt.signal))
			}
			if got := output(t, m, st.ID); got != tt.out {
				t.Errorf("output %q, want %q", got, tt.out)
			}
			if st.Started.IsZero() || st.Ended.Before(st.Started) || st.Usage.CPUUsageUsec == 0 {
				t.Errorf("times %v-%v, cpu %d: want start, end after it, and some CPU used", st.Started, st.Ended, st.Usage.CPUUsageUsec)
			}
			if tt.reason == ReasonOOMKilled && st.Usage.OOMKills == 0 {
				t.Errorf("OOM-killed job records oom_kills 0")
			}
		})
	}
}

func ptr(i int) *int { return &i }

// TestStartErrorLeavesNothing: a command that cannot run is Start's error
// and no job, directory or cgroup remains.
func TestStartErrorLeavesNothing(t *testing.T) {
	e := newEnv(t)
	m := open(t, e.config(t))
	for _, cmd := range []string{"/no/such/program", "no-such-program", "/tmp"} {
		_, err := m.Start(Request{Owner: "alice", Command: cmd})
		var se *shim.StartError
		if !errors.As(err, &se) {
			t.Errorf("Start(%s) = %v, want a *shim.StartError", cmd, err)
		}
	}
	if jobs := m.List(Filter{}); len(jobs) != 0 {
		t.Errorf("List after failed starts = %d jobs, want none", len(jobs))
	}
	if entries, _ := os.ReadDir(filepath.Join(e.state, "jobs")); len(entries) != 0 {
		t.Errorf("job directories left: %d", len(entries))
	}
	if users, _ := filepath.Glob(filepath.Join(e.parent, "jobs", "user-*")); len(users) != 0 {
		t.Errorf("cgroups left: %v", users)
	}
}

func TestStop(t *testing.T) {
	e := newEnv(t)
	m := open(t, e.config(t))
	ctx := context.Background()

	// Traps SIGTERM and exits cleanly: STOPPED with its own exit code,
	// well within a long grace.
	st, err := m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", `trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done`}})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "ready\n")
	grace := time.Minute
	st, err = m.Stop(ctx, st.ID, &grace)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateStopped || intp(st.ExitCode) != "0" || !strings.HasSuffix(output(t, m, st.ID), "bye\n") {
		t.Errorf("trapping job: %s exit %s signal %s, output %q; want stopped, exit 0, bye", st.State, intp(st.ExitCode), intp(st.Signal), output(t, m, st.ID))
	}

	// Stopped twice: the second stop shortens the grace and does not send
	// SIGTERM again (the handler runs once), and both stops report the
	// same final state.
	st, err = m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", `trap 'echo term' TERM; echo ready; while :; do sleep 0.1; done`}})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "ready\n")
	first := make(chan Status, 1)
	go func() {
		long := time.Hour
		st, err := m.Stop(ctx, st.ID, &long)
		if err != nil {
			t.Error(err)
		}
		first <- st
	}()
	waitOutput(t, m, st.ID, "term\n")
	grace = 2 * time.Second
	second, err := m.Stop(ctx, st.ID, &grace)
	if err != nil {
		t.Fatal(err)
	}
	firstSt := <-first
	out := output(t, m, st.ID)
	if second.State != StateStopped || intp(second.Signal) != fmt.Sprint(int(syscall.SIGKILL)) || strings.Count(out, "term\n") != 1 || !firstSt.Ended.Equal(second.Ended) {
		t.Errorf("stopped twice: %s signal %s, output %q, first stop ended %v, second %v; want stopped by SIGKILL, one \"term\", one end", second.State, intp(second.Signal), out, firstSt.Ended, second.Ended)
	}

	// Ignores SIGTERM: killed at the grace.
	st, err = m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", `trap '' TERM; echo ready; while :; do sleep 0.1; done`}})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "ready\n")
	grace = 500 * time.Millisecond
	start := time.Now()
	st, err = m.Stop(ctx, st.ID, &grace)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateStopped || intp(st.Signal) != fmt.Sprint(int(syscall.SIGKILL)) || time.Since(start) < grace {
		t.Errorf("ignoring job: %s signal %s after %v; want stopped by SIGKILL after the %v grace", st.State, intp(st.Signal), time.Since(start), grace)
	}

	// Neither handles nor ignores SIGTERM, so it would die of it; as PID
	// 1 of its namespace the kernel would not deliver it: killed at once,
	// not after the grace.
	st, err = m.Start(Request{Owner: "alice", Command: "sleep", Args: []string{"1000"}})
	if err != nil {
		t.Fatal(err)
	}
	grace = time.Minute
	start = time.Now()
	st, err = m.Stop(ctx, st.ID, &grace)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); st.State != StateStopped || elapsed > 10*time.Second {
		t.Errorf("plain sleep: %s after %v; want stopped at once, not after the %v grace", st.State, elapsed, grace)
	}

	// Stopping an ended job reports its final state.
	again, err := m.Stop(ctx, st.ID, nil)
	if err != nil || again.State != StateStopped || !again.Ended.Equal(st.Ended) {
		t.Errorf("second Stop = %s ended %v, %v; want the same final state", again.State, again.Ended, err)
	}
	if _, err := m.Stop(ctx, "00000000-0000-4000-8000-000000000000", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stop of an unknown job = %v, want ErrNotFound", err)
	}
}

// TestStopGraceForWrapper: a wrapper shell whose PID 1 neither handles
// nor ignores SIGTERM, but whose child traps it, gets the whole grace: the
// child's handler cleans up, the wrapper's next command runs, and the job
// ends by itself, STOPPED with exit code 0.
func TestStopGraceForWrapper(t *testing.T) {
	e := newEnv(t)
	m := open(t, e.config(t))
	script := `sh -c "trap \"echo TERM; sleep 2; echo cleaned; exit 0\" TERM; echo ready; while :; do sleep 1; done"; echo after`
	st, err := m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "ready\n")
	grace := 10 * time.Second
	st, err = m.Stop(context.Background(), st.ID, &grace)
	if err != nil {
		t.Fatal(err)
	}
	// The inner shell may also report its sleep "Terminated".
	out := output(t, m, st.ID)
	if st.State != StateStopped || intp(st.ExitCode) != "0" || !inOrder(out, "ready\n", "TERM\n", "cleaned\n", "after\n") {
		t.Errorf("wrapper stopped with a %v grace: %s exit %s signal %s, output %q; want stopped, exit 0, and ready, TERM, cleaned, after in that order",
			grace, st.State, intp(st.ExitCode), intp(st.Signal), out)
	}
}

// inOrder reports whether s holds each of parts, one after the other.
func inOrder(s string, parts ...string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

// TestStopKeepsOneTimer: stops that return at once (their context is
// cancelled) while the job runs on leave no goroutine behind each, however
// many there are; a last stop without a grace still kills the job.
func TestStopKeepsOneTimer(t *testing.T) {
	e := newEnv(t)
	m := open(t, e.config(t))
	st, err := m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", `trap "" TERM; echo ready; while :; do sleep 1; done`}})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "ready\n")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	hour := time.Hour
	before := runtime.NumGoroutine()
	for i := range 500 {
		got, err := m.Stop(cancelled, st.ID, &hour)
		if !errors.Is(err, context.Canceled) || got.State != StateRunning {
			t.Fatalf("stop %d with a cancelled context: %s, %v; want running, context.Canceled", i, got.State, err)
		}
	}
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Errorf("goroutines: %d before 500 stops with a 1h grace, %d after; want at most a few more", before, after)
	}
	zero := time.Duration(0)
	got, err := m.Stop(context.Background(), st.ID, &zero)
	if err != nil || got.State != StateStopped || intp(got.Signal) != fmt.Sprint(int(syscall.SIGKILL)) {
		t.Errorf("last stop without a grace: %s signal %s, %v; want stopped by SIGKILL", got.State, intp(got.Signal), err)
	}
}

// TestOOMInWrapper: a job whose shell wrapper's child is OOM-killed and
// which then exits with the child's status (137) is FAILED oom_killed: the
// cgroup's oom_kill count decides, not PID 1's exit.
func TestOOMInWrapper(t *testing.T) {
	e := newEnv(t)
	m := open(t, e.config(t))
	st, err := m.Start(Request{Owner: "alice", Command: "sh",
		Args:   []string{"-c", `awk "BEGIN{s=\"x\"; while(1) s=s s}"; exit $?`},
		Limits: cgroupfs.Limits{MemoryMax: 32 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	st = wait(t, m, st.ID)
	if st.State != StateFailed || st.Reason != ReasonOOMKilled || intp(st.ExitCode) != "137" || st.Usage.OOMKills == 0 {
		t.Errorf("wrapper of an OOM-killed child: %s/%s exit %s signal %s, oom_kills %d (%s); want failed/oom_killed, exit 137, oom_kills > 0",
			st.State, st.Reason, intp(st.ExitCode), intp(st.Signal), st.Usage.OOMKills, st.Message)
	}
}

func TestQueueing(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MemoryCapacity = 128 << 20
	m := open(t, cfg)
	ctx := context.Background()
	req := Request{Owner: "alice", Command: "sleep", Args: []string{"1000"}, Limits: cgroupfs.Limits{MemoryMax: 64 << 20}}

	if _, err := m.Start(Request{Owner: "alice", Command: "true", Limits: cgroupfs.Limits{MemoryMax: 129 << 20}}); !errors.Is(err, ErrNeverFits) {
		t.Fatalf("a job over the capacity: %v, want ErrNeverFits", err)
	}
	a, err := m.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != StateRunning || b.State != StateRunning || c.State != StatePending {
		t.Fatalf("states %s %s %s, want running running pending", a.State, b.State, c.State)
	}
	if tot := m.Totals(); tot.Running != 2 || tot.Pending != 1 || tot.MemoryReserved != 128<<20 {
		t.Errorf("Totals = %+v, want 2 running, 1 pending, 128 MiB reserved", tot)
	}
	// The third starts when one ends; Watch sees it go running.
	running := make(chan struct{})
	watchErr := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		var once sync.Once
		watchErr <- m.Watch(wctx, c.ID, time.Second, func(st Status) error {
			if st.State == StateRunning {
				once.Do(func() { close(running) })
			}
			return nil
		})
	}()
	grace := time.Duration(0)
	if _, err := m.Stop(ctx, a.ID, &grace); err != nil {
		t.Fatal(err)
	}
	select {
	case <-running:
	case <-time.After(time.Minute):
		t.Fatal("the pending job did not start after one ended")
	}
	for _, id := range []string{b.ID, c.ID} {
		if st, err := m.Stop(ctx, id, &grace); err != nil || st.State != StateStopped {
			t.Errorf("Stop(%s) = %s, %v", id, st.State, err)
		}
	}
	if err := <-watchErr; err != nil {
		t.Errorf("Watch = %v, want nil when the job ended", err)
	}

	// A pending job that is stopped never runs.
	x, _ := m.Start(req)
	y, _ := m.Start(req)
	z, err := m.Start(req)
	if err != nil || z.State != StatePending {
		t.Fatalf("third job: %s, %v; want pending", z.State, err)
	}
	if st, err := m.Stop(ctx, z.ID, nil); err != nil || st.State != StateStopped || !st.Started.IsZero() {
		t.Errorf("stopping a pending job: %s started %v, %v", st.State, st.Started, err)
	}
	m.Stop(ctx, x.ID, &grace)
	m.Stop(ctx, y.ID, &grace)
}

// TestExecFailedInQueue: a queued job whose command is gone when its turn
// comes fails with exec_failed.
func TestExecFailedInQueue(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MaxRunning = 1
	m := open(t, cfg)
	prog := filepath.Join(testchild.PublicDir(t), "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	blocker, err := m.Start(Request{Owner: "alice", Command: "sleep", Args: []string{"1000"}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := m.Start(Request{Owner: "alice", Command: prog})
	if err != nil || q.State != StatePending {
		t.Fatalf("queued job: %s, %v", q.State, err)
	}
	os.Remove(prog)
	grace := time.Duration(0)
	m.Stop(context.Background(), blocker.ID, &grace)
	st := wait(t, m, q.ID)
	if st.State != StateFailed || st.Reason != ReasonExecFailed || !strings.Contains(st.Message, "not found") {
		t.Errorf("queued job with a vanished command: %s/%s %q, want failed/exec_failed, not found", st.State, st.Reason, st.Message)
	}
}

// TestRestart: a server with a running job that writes output is
// SIGKILLed; a new Manager on its state directory reports the job FAILED
// server_restarted with its output intact up to the kill, and nothing of
// the job is left running.
func TestRestart(t *testing.T) {
	e := newEnv(t)
	// The child server sets up the same parent and moves itself into its
	// supervisor cgroup; the test process goes back to its own.
	if err := cgroupfs.AddProc(filepath.Dir(e.parent), 0); err != nil {
		t.Fatal(err)
	}
	child := testchild.Command("server")
	child.Env = append(child.Env, "STATE="+e.state, "PARENT="+e.parent)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child server: %v", err)
	}
	id := strings.TrimSpace(line)
	jobCgroup := filepath.Join(e.parent, "jobs", "user-alice", id)
	procs, err := os.ReadFile(filepath.Join(jobCgroup, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	pids := strings.Fields(string(procs))
	if len(pids) == 0 {
		t.Fatal("the job runs no process")
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()

	m := open(t, e.config(t))
	st, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateFailed || st.Reason != ReasonServerRestarted {
		t.Errorf("after the restart the job is %s/%s, want failed/server_restarted", st.State, st.Reason)
	}
	got := output(t, m, id)
	var want strings.Builder
	for i := 0; want.Len() < len(got)+20; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if len(got) < 4096 || !strings.HasPrefix(want.String(), got) {
		t.Errorf("output after restart: %d bytes, a prefix of the job's stream: %v", len(got), strings.HasPrefix(want.String(), got))
	}
	if _, err := os.Stat(jobCgroup); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the job's cgroup is still there: %v", err)
	}
	for _, p := range pids {
		if b, err := os.ReadFile("/proc/" + p + "/stat"); err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("process %s of the job survived the restart", p)
		}
	}
}

// TestLoad: 200 jobs from 20 goroutines, each printing a known payload, all
// complete with byte-exact output, and nothing is left: no cgroup, process,
// goroutine or file descriptor.
func TestLoad(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MaxRunning = 16
	fdsBefore := countFDs(t)
	goroutinesBefore := runtime.NumGoroutine()
	m, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const (
		workers = 20
		perW    = 10
	)
	script := `i=0; while [ $i -lt 300 ]; do echo "$1 $i"; i=$((i+1)); done; printf "end %s" "$1"`
	var wg sync.WaitGroup
	errs := make(chan error, workers*perW)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perW {
				tag := fmt.Sprintf("job-%d-%d", w, k)
				st, err := m.Start(Request{Owner: fmt.Sprintf("user%d", w%4), Command: "sh", Args: []string{"-c", script, "sh", tag}})
				if err != nil {
					errs <- err
					continue
				}
				done, _ := jobDone(m, st.ID)
				<-done
				st, _ = m.Get(st.ID)
				var want strings.Builder
				for i := range 300 {
					fmt.Fprintf(&want, "%s %d\n", tag, i)
				}
				fmt.Fprintf(&want, "end %s", tag)
				log, _ := m.Output(st.ID)
				r := log.NewReader(context.Background(), 0, false)
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || st.State != StateCompleted || string(got) != want.String() {
					errs <- fmt.Errorf("%s: %s, %d bytes (want %d), %v", tag, st.State, len(got), want.Len(), err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(m.List(Filter{States: []State{StateCompleted}})); n != workers*perW {
		t.Errorf("%d jobs completed, want %d", n, workers*perW)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if users, _ := filepath.Glob(filepath.Join(e.parent, "jobs", "user-*")); len(users) != 0 {
		t.Errorf("cgroups left: %v", users)
	}
	if procs, _ := os.ReadFile(filepath.Join(e.parent, "supervisor", "cgroup.procs")); strings.TrimSpace(string(procs)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("processes in the supervisor cgroup: %q, want only the test", procs)
	}
	if got := runtime.NumGoroutine(); got > goroutinesBefore {
		t.Errorf("goroutines: %d before, %d after", goroutinesBefore, got)
	}
	if got := countFDs(t); got > fdsBefore {
		t.Errorf("file descriptors: %d before, %d after", fdsBefore, got)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestRetentionCount: past RetainCount finished jobs, the oldest go, with
// their directories.
func TestRetentionCount(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.RetainCount = 2
	m := open(t, cfg)
	var ids []string
	for range 3 {
		st, err := m.Start(Request{Owner: "alice", Command: "true"})
		if err != nil {
			t.Fatal(err)
		}
		wait(t, m, st.ID)
		ids = append(ids, st.ID)
	}
	if _, err := m.Get(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("the oldest of 3 finished jobs with RetainCount 2: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(e.state, "jobs", ids[0])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("its directory: %v, want it removed", err)
	}
	for _, id := range ids[1:] {
		if _, err := m.Get(id); err != nil {
			t.Errorf("a retained job: %v", err)
		}
	}
}

// TestStopRacesEnd: stops that race the job's own end (a job that exits at
// once, stopped without a grace as it does) report its final state and no
// error (OnError fails the test), and leave nothing waiting on the removed
// cgroup: Close returns at once afterwards.
func TestStopRacesEnd(t *testing.T) {
	e := newEnv(t)
	m := open(t, e.config(t))
	ctx := context.Background()
	zero := time.Duration(0)
	for i := range 300 {
		st, err := m.Start(Request{Owner: "alice", Command: "true"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Stop(ctx, st.ID, &zero)
		if err != nil {
			t.Fatalf("round %d: stop: %v", i, err)
		}
		if !got.State.Ended() {
			t.Fatalf("round %d: stop returned the job %s, want it ended", i, got.State)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatalf("Close after the racing stops: %v (a stop's kill still waits)", err)
	}
}
