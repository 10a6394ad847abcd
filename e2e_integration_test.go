//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/internal/testchild"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// The end-to-end tests drive the real binary ($JOBWORKER_BIN) like a user:
// a dev server in a temporary state directory, and the CLI.

type devServer struct {
	t     *testing.T
	state string
	args  []string // serve's arguments
	addr  string
	cmd   *exec.Cmd
	log   *bytes.Buffer
	logw  *lockedWriter
	done  chan struct{}
	// ended says the test itself ended the server (stop, kill): a later
	// stop then takes its exit for granted.
	ended *atomic.Bool

	clients *clientCache // shared by the copies in() makes
}

func binary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("JOBWORKER_BIN")
	if bin == "" {
		t.Fatal("JOBWORKER_BIN is not set")
	}
	return bin
}

// startDevServer starts `jobworker serve --dev` on a free port (unless extra
// flags give --listen) and waits for the export lines it prints once it
// serves. Extra flags come last, so they override the defaults here.
func startDevServer(t *testing.T, state string, extra ...string) *devServer {
	t.Helper()
	s := &devServer{t: t, state: state, log: &bytes.Buffer{}, done: make(chan struct{}), ended: new(atomic.Bool),
		clients: &clientCache{root: t, byWho: map[string]jobworkerv1.JobWorkerServiceClient{}}}
	args := []string{"serve", "--dev", "--state-dir", state, "--stop-grace", "2s", "--default-memory-limit", "32M"}
	if !slices.Contains(extra, "--listen") {
		args = append(args, "--listen", "127.0.0.1:0")
	}
	s.args = append(args, extra...)
	s.cmd = exec.Command(binary(t), s.args...)
	s.logw = &lockedWriter{w: s.log}
	s.cmd.Stderr = s.logw
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.stop)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "export JOBWORKER_SERVER="); ok {
			s.addr = v
		}
		if strings.HasPrefix(sc.Text(), "export JOBWORKER_KEY=") {
			break
		}
	}
	if s.addr == "" {
		t.Fatalf("the dev server printed no exports; its log:\n%s", s.serverLog())
	}
	go io.Copy(io.Discard, out)
	return s
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// stop sends SIGTERM and waits for a clean exit. A server that exited
// before (and that the test did not kill) fails the test.
func (s *devServer) stop() {
	select {
	case <-s.done:
		if !s.ended.Load() {
			s.t.Errorf("the server exited by itself (%v) before the test stopped it; log:\n%s", s.cmd.ProcessState, s.serverLog())
		}
		return
	default:
	}
	s.ended.Store(true)
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			s.t.Errorf("server exited %d after SIGTERM; log:\n%s", code, s.serverLog())
		}
	case <-time.After(time.Minute):
		s.cmd.Process.Kill()
		s.t.Errorf("server did not stop within a minute of SIGTERM")
	}
}

// kill ends the server with SIGKILL and waits for it to be gone.
func (s *devServer) kill() {
	s.t.Helper()
	s.ended.Store(true)
	if err := s.cmd.Process.Kill(); err != nil {
		s.t.Fatal(err)
	}
	<-s.done
}

// cliEnv is the whole environment of the CLI run as who against addr.
func (s *devServer) cliEnv(addr, who string) []string {
	return append([]string{"PATH=/bin", "JOBWORKER_SERVER=" + addr}, s.certEnv(who)...)
}

// identity files: admin, user (dev-user) and reader from the dev PKI; bob is
// a second user made with `jobworker certs client`.
func (s *devServer) certEnv(who string) []string {
	dir := filepath.Join(s.state, "dev")
	if who == "bob" {
		dir = filepath.Join(s.state, "bob")
		if _, err := os.Stat(filepath.Join(dir, "bob.crt")); err != nil {
			out, err := exec.Command(binary(s.t), "certs", "client", "--ca-dir", filepath.Join(s.state, "dev"), "--out", dir, "--user", "bob", "--role", "user").CombinedOutput()
			if err != nil {
				s.t.Fatalf("certs client: %v: %s", err, out)
			}
		}
	}
	return []string{
		"JOBWORKER_CA=" + filepath.Join(s.state, "dev", "ca.crt"),
		"JOBWORKER_CERT=" + filepath.Join(dir, who+".crt"),
		"JOBWORKER_KEY=" + filepath.Join(dir, who+".key"),
	}
}

type result struct {
	out, err string
	code     int
}

// cli runs the CLI as who against addr (the server's, unless given).
func (s *devServer) cli(who string, args ...string) result {
	return s.cliAt(s.addr, who, args...)
}

func (s *devServer) cliAt(addr, who string, args ...string) result {
	s.t.Helper()
	cmd := exec.Command(binary(s.t), args...)
	cmd.Env = s.cliEnv(addr, who)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// waitOutput follows a job's output with the CLI until it holds want.
func (s *devServer) waitOutput(who, id, want string) {
	s.t.Helper()
	cmd := exec.Command(binary(s.t), "logs", "-f", id)
	cmd.Env = s.cliEnv(s.addr, who)
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(want)) {
		n, err := out.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			s.t.Fatalf("waiting for %q in job %s's output (got %q): %v", want, id, got, err)
		}
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$`)

// detach starts a job with `run -d` as who and returns its ID.
func (s *devServer) detach(who string, args ...string) string {
	s.t.Helper()
	return s.detachWith(who, nil, args...)
}

// detachWith is detach with run's flags.
func (s *devServer) detachWith(who string, flags []string, args ...string) string {
	s.t.Helper()
	r := s.cli(who, append(append(append([]string{"run", "-d"}, flags...), "--"), args...)...)
	if r.code != 0 || !uuidRE.MatchString(r.out) {
		s.t.Fatalf("run -d as %s: exit %d, stdout %q, stderr %q; want a job ID", who, r.code, r.out, r.err)
	}
	return strings.TrimSpace(r.out)
}

// TestE2ERunQueuedCommandGone: a queued job whose command is gone when its
// turn comes fails exec_failed, and `run`, which waited for it, exits 127
// as for a command not found at the start, saying why on stderr, not 1,
// which the command could have exited with.
func TestE2ERunQueuedCommandGone(t *testing.T) {
	s := startDevServer(t, t.TempDir(), "--max-running", "1")
	g := newGate(t)
	s.detach("user", "sh", "-c", g.wait()) // holds the one place
	prog := filepath.Join(testchild.PublicDir(t), "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := s.client("admin").WatchJobs(ctx, &jobworkerv1.WatchJobsRequest{States: []jobworkerv1.JobState{jobworkerv1.JobState_JOB_STATE_PENDING}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), "run", "--", prog)
	cmd.Env = s.cliEnv(s.addr, "user")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ev, err := events.Recv() // run's job, queued behind the gate's
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.GetEvent().GetJob().GetCommand(); got != prog {
		t.Fatalf("the pending job runs %q, want %q", got, prog)
	}
	if err := os.Remove(prog); err != nil {
		t.Fatal(err)
	}
	g.open(t)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 127 || !strings.Contains(stderr.String(), "exec_failed") || !strings.Contains(stderr.String(), "not found") {
		t.Errorf("run of a queued command removed before its turn: %v, stdout %q, stderr %q; want exit 127 saying exec_failed and not found", err, stdout.String(), stderr.String())
	}
}

func TestE2ERunExitCodes(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	dir := testchild.PublicDir(t)
	notExecutable, notProgram := filepath.Join(dir, "text"), filepath.Join(dir, "garbage")
	if err := os.WriteFile(notExecutable, []byte("echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notProgram, []byte("\x7fELF not really\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		flags []string
		args  []string
		code  int
		out   string
	}{
		{nil, []string{"sh", "-c", "echo hello"}, 0, "hello\n"},
		{nil, []string{"sh", "-c", "printf 'no newline\\000'; exit 3"}, 3, "no newline\x00"},
		{nil, []string{"sh", "-c", "ulimit -s 64; f() { f; }; f"}, 128 + 11, ""},
		{nil, []string{"/no/such/program"}, 127, ""},
		{nil, []string{notExecutable}, 126, ""},
		{nil, []string{notProgram}, 126, ""},
		// The timeout's SIGTERM ends sleep, as on a host.
		{[]string{"--timeout", "1s"}, []string{"sleep", "1000"}, 128 + 15, ""},
		{[]string{"--memory-limit", "32M"}, []string{"awk", `BEGIN { s = "x"; while (1) s = s s }`}, 128 + 9, ""},
	}
	for _, tt := range tests {
		r := s.cli("user", append(append(append([]string{"run"}, tt.flags...), "--"), tt.args...)...)
		if r.code != tt.code || r.out != tt.out {
			t.Errorf("run %q %q: exit %d, stdout %q (stderr %q); want exit %d, stdout %q", tt.flags, tt.args, r.code, r.out, r.err, tt.code, tt.out)
		}
	}
	// -d returns at once with the ID while the job still runs.
	id := s.detach("user", "sleep", "1000")
	if r := s.cli("user", "status", "--json", id); !strings.Contains(r.out, `"state":"JOB_STATE_RUNNING"`) {
		t.Errorf("status of a detached sleep: %q %q, want running", r.out, r.err)
	}
	if r := s.cli("user", "stop", "--grace", "1s", id); r.code != 0 || !strings.Contains(r.err, "stopped") {
		t.Errorf("stop: exit %d, %q", r.code, r.err)
	}
	// status --watch redraws until the job ends, the last view final: the
	// job ends only once the first view is out.
	g := newGate(t)
	id = s.detach("user", "sh", "-c", g.wait())
	watch := exec.Command(binary(t), "status", "--watch", id)
	watch.Env = s.cliEnv(s.addr, "user")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	var views bytes.Buffer
	sc := bufio.NewScanner(io.TeeReader(stdout, &views))
	for sc.Scan() && !strings.Contains(views.String(), "State     running") {
	}
	g.open(t)
	io.Copy(&views, stdout)
	werr := watch.Wait()
	all := strings.Split(strings.TrimSpace(views.String()), "\n\n")
	if werr != nil || len(all) < 2 || !strings.Contains(all[len(all)-1], "State     completed") || !strings.Contains(all[0], "State     running") {
		t.Errorf("status --watch: %v, %d views, output:\n%s", werr, len(all), views.String())
	}
}

// TestE2ESecondServerRefused: a second server on the same state directory,
// or on another state directory but the same cgroup parent, refuses to
// start and says which; the first server's running job runs on. (Without
// the locks the second server would take that job for a crash's leftover
// and kill it.)
func TestE2ESecondServerRefused(t *testing.T) {
	state := t.TempDir()
	s := startDevServer(t, state)
	id := s.detach("user", "sleep", "1000")
	tests := []struct{ name, state, want string }{
		{"same state directory", state, "state directory " + state + " is in use by another jobworker server (pid " + strconv.Itoa(s.pid()) + ")"},
		{"same cgroup parent", t.TempDir(), "is in use by another jobworker server: stop it, or give this one its own --cgroup-parent"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, binary(t), "serve", "--dev", "--state-dir", tt.state, "--listen", "127.0.0.1:0").CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tt.want) {
			t.Errorf("%s: second server %v, output:\n%s\nwant exit 1 and %q", tt.name, err, out, tt.want)
		}
	}
	if j := s.job(id); j.GetState() != jobworkerv1.JobState_JOB_STATE_RUNNING {
		t.Errorf("the first server's job after the refusals: %v, want running", j.GetState())
	}
}

// TestE2ERunInterrupted: Ctrl-C on `run` stops the job with its grace; the
// output the job writes while it stops (its SIGTERM handler's last words)
// is still printed, and run exits with the job's exit code. A second Ctrl-C
// kills the job at once, whatever the grace (here three minutes).
func TestE2ERunInterrupted(t *testing.T) {
	s := startDevServer(t, t.TempDir(), "--stop-grace", "3m")
	tests := []struct {
		name       string
		script     string
		interrupts int
		code       int
		stderr     string
	}{
		{"once: the handler exits", `trap 'echo last words; exit 7' TERM; echo started; while :; do sleep 0.1; done`, 1, 7, "stopped (exit code 7)"},
		{"twice: the handler does not exit", `trap 'echo last words' TERM; echo started; while :; do sleep 0.1; done`, 2, 128 + 9, "stopped (signal 9)"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary(t), "run", "--", "sh", "-c", tt.script)
		cmd.Env = s.cliEnv(s.addr, "user")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		errPipe, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stdout, stderr := bufio.NewReader(out), bufio.NewReader(errPipe)
		var errText strings.Builder
		// waitStderr reads the CLI's own lines until one holds want.
		waitStderr := func(want string) bool {
			for {
				line, err := stderr.ReadString('\n')
				errText.WriteString(line)
				if strings.Contains(line, want) {
					return true
				}
				if err != nil {
					return false
				}
			}
		}
		if line, err := stdout.ReadString('\n'); line != "started\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%s: first line of run: %q, %v", tt.name, line, err)
		}
		cmd.Process.Signal(os.Interrupt)
		var before string // stdout between the two interrupts
		if tt.interrupts == 2 {
			// The CLI says it is stopping once it listens for the second.
			if !waitStderr("interrupt again to kill it at once") {
				t.Errorf("%s: stderr %q, want the CLI to say a second interrupt kills", tt.name, errText.String())
			}
			// The job's last words while it stops reach the terminal.
			for !strings.HasSuffix(before, "last words\n") {
				line, err := stdout.ReadString('\n')
				before += line
				if err != nil {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("%s: stdout after the first interrupt %q, %v; want the handler's last words", tt.name, before, err)
				}
			}
			cmd.Process.Signal(os.Interrupt)
		}
		b, err := io.ReadAll(stdout)
		if err != nil {
			t.Fatal(err)
		}
		rest := string(b)
		waitStderr(tt.stderr)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tt.code || !strings.Contains(errText.String(), tt.stderr) {
			t.Errorf("%s: %v, stderr %q; want exit %d, %q on stderr", tt.name, err, errText.String(), tt.code, tt.stderr)
		}
		switch {
		case tt.interrupts == 1 && !strings.HasSuffix(rest, "last words\n"):
			t.Errorf("%s: stdout after the interrupt %q, want it to end in the handler's last words", tt.name, rest)
		case tt.interrupts == 2 && rest != "":
			// The kill sends no second SIGTERM: the handler does not run
			// again, nor does the shell report another sleep terminated.
			t.Errorf("%s: stdout after the second interrupt %q, want nothing (the job killed at once)", tt.name, rest)
		}
	}
}

func TestE2ERoles(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	adminJob := s.detach("admin", "sleep", "1000")
	userJob := s.detach("user", "sh", "-c", "echo from dev-user; exec sleep 1000")
	bobJob := s.detach("bob", "sh", "-c", "echo from bob")
	s.waitOutput("admin", userJob, "from dev-user\n")
	s.waitOutput("admin", bobJob, "from bob\n")

	type check struct {
		who  string
		args []string
		code int
		want string // substring of stdout+stderr
	}
	checks := []check{
		// admin: everything, everyone's jobs.
		{"admin", []string{"status", userJob}, 0, "Owner     dev-user"},
		{"admin", []string{"logs", bobJob}, 0, "from bob"},
		{"admin", []string{"list"}, 0, bobJob},
		{"admin", []string{"status"}, 0, "Controllers cpu io memory pids"},
		// user: its own jobs only; another's is not found.
		{"user", []string{"status", userJob}, 0, "dev-user"},
		{"user", []string{"logs", userJob}, 0, "from dev-user"},
		{"user", []string{"status", adminJob}, 1, "not found"},
		{"user", []string{"logs", bobJob}, 1, "not found"},
		{"user", []string{"stop", adminJob}, 1, "not found"},
		{"user", []string{"status"}, 1, "permission denied"},
		{"bob", []string{"status", userJob}, 1, "not found"},
		// reader: sees everything, starts and stops nothing.
		{"reader", []string{"status", adminJob}, 0, "admin"},
		{"reader", []string{"logs", userJob}, 0, "from dev-user"},
		{"reader", []string{"list"}, 0, userJob},
		{"reader", []string{"status"}, 0, "running"},
		{"reader", []string{"run", "--", "true"}, 125, "permission denied"}, // run: jobworker failed
		{"reader", []string{"stop", userJob}, 1, "permission denied"},
		// bad IDs
		{"admin", []string{"status", "not-a-uuid"}, 1, "malformed job ID"},
		{"admin", []string{"status", "00000000-0000-4000-8000-000000000000"}, 1, "not found"},
		// the user stops its own job; admin stops anyone's.
		{"user", []string{"stop", "--grace", "1s", userJob}, 0, "stopped"},
		{"admin", []string{"stop", "--grace", "1s", adminJob}, 0, "stopped"},
	}
	for _, c := range checks {
		r := s.cli(c.who, c.args...)
		if r.code != c.code || !strings.Contains(r.out+r.err, c.want) {
			t.Errorf("%s: jobworker %s: exit %d, out %q, err %q; want exit %d and %q", c.who, strings.Join(c.args, " "), r.code, r.out, r.err, c.code, c.want)
		}
		if r.code != 0 && strings.Count(r.err, "\n") != 1 {
			t.Errorf("%s: jobworker %s: error is not one line: %q", c.who, strings.Join(c.args, " "), r.err)
		}
	}
	// list as a user shows its own jobs only.
	r := s.cli("user", "list")
	if !strings.Contains(r.out, userJob) || strings.Contains(r.out, adminJob) || strings.Contains(r.out, bobJob) {
		t.Errorf("user list:\n%s\nwant only %s", r.out, userJob)
	}
	// Another user asking for dev-user's jobs gets none of them.
	r = s.cli("bob", "list", "--user", "dev-user")
	if r.code != 0 || !strings.HasPrefix(r.out, "ID") || strings.Contains(r.out, userJob) || strings.Contains(r.out, adminJob) {
		t.Errorf("bob list --user dev-user: exit %d, stdout:\n%s\nstderr %q; want the header and none of dev-user's or admin's jobs", r.code, r.out, r.err)
	}
	r = s.cli("bob", "list", "--json")
	if strings.Count(r.out, "\n") != 1 || !strings.Contains(r.out, bobJob) {
		t.Errorf("bob list --json:\n%s\nwant one line with %s", r.out, bobJob)
	}
}

// expectedLines is what lineJob prints.
func expectedLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// lineJob prints "line 0" to "line n-1", pausing now and then, so that
// followers see it arrive over a couple of seconds.
func lineJob(n int) []string {
	return []string{"sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i"; i=$((i+1)); [ $((i %% 100)) = 0 ] && sleep 0.2; done`, n)}
}

func TestE2EManyFollowers(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	const lines = 2000
	id := s.detach("user", lineJob(lines)...)
	var wg sync.WaitGroup
	results := make([]result, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.cli("user", "logs", "-f", id)
		}()
	}
	wg.Wait()
	want := expectedLines(lines)
	for i, r := range results {
		if r.code != 0 || r.out != want {
			t.Errorf("follower %d: exit %d, %d bytes (want %d), err %q", i, r.code, len(r.out), len(want), r.err)
		}
	}
	if r := s.cli("reader", "logs", id); r.out != want {
		t.Errorf("reader after the end: %d bytes, want %d identical", len(r.out), len(want))
	}
	if r := s.cli("reader", "logs", "--tail", "2", id); r.out != "line 1998\nline 1999\n" {
		t.Errorf("logs --tail 2 = %q", r.out)
	}
	if r := s.cli("reader", "logs", "--offset", "-10", id); r.out != want[len(want)-10:] {
		t.Errorf("logs --offset -10 = %q", r.out)
	}
}

// proxy forwards TCP to target and can cut every connection it carries.
type proxy struct {
	lis      net.Listener
	target   string
	accepted atomic.Int64 // connections it has carried
	mu       sync.Mutex
	conns    []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{lis: lis, target: target}
	t.Cleanup(func() { lis.Close(); p.cut() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	n := len(p.conns) / 2
	p.conns = nil
	return n
}

// TestE2EResumeAfterDroppedConnection: `logs -f` and `run` through a proxy
// whose connections are cut mid-stream resume and print every byte once;
// run then exits with the job's status. The job waits at a gate while each
// cut happens, so the output after it can only come over a new connection:
// the proxy counts them.
func TestE2EResumeAfterDroppedConnection(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	const part = 1000 // lines between cuts
	for _, verb := range []string{"logs", "run"} {
		t.Run(verb, func(t *testing.T) {
			s := s.in(t)
			p := newProxy(t, s.addr)
			gates := []gate{newGate(t), newGate(t)}
			script := fmt.Sprintf(`lines() { i=$1; while [ $i -lt $2 ]; do echo "line $i"; i=$((i+1)); done; }; lines 0 %d; %s; lines %d %d; %s; lines %d %d; exit 3`,
				part, gates[0].wait(), part, 2*part, gates[1].wait(), 2*part, 3*part)
			args, wantCode := []string{"run", "--", "sh", "-c", script}, 3
			if verb == "logs" {
				args, wantCode = []string{"logs", "-f", s.detach("user", "sh", "-c", script)}, 0
			}
			cmd := exec.Command(binary(t), args...)
			cmd.Env = s.cliEnv(p.lis.Addr().String(), "user")
			var errb bytes.Buffer
			cmd.Stderr = &errb
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			buf := make([]byte, 4096)
			for cut := range gates {
				// The job now waits at the gate: every line before it is out.
				want := expectedLines((cut + 1) * part)
				for got.Len() < len(want) {
					n, err := out.Read(buf)
					got.Write(buf[:n])
					if err != nil {
						t.Fatalf("%s ended after %d bytes, before the cut %d: %v: %s", verb, got.Len(), cut+1, err, errb.String())
					}
				}
				if got.String() != want {
					t.Fatalf("before cut %d: %d bytes, want the %d of lines 0-%d", cut+1, got.Len(), len(want), (cut+1)*part-1)
				}
				if p.cut() == 0 {
					t.Fatalf("cut %d: no connection to cut", cut+1)
				}
				gates[cut].open(t)
			}
			io.Copy(&got, out)
			err = cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != wantCode {
				t.Errorf("%s: %v, want exit %d: %s", verb, err, wantCode, errb.String())
			}
			if want := expectedLines(3 * part); got.String() != want {
				t.Errorf("after two cuts: %d bytes, want %d; identical: %v", got.Len(), len(want), got.String() == want)
			}
			if n := p.accepted.Load(); n < 3 {
				t.Errorf("the proxy carried %d connections, want at least 3 (one, and one after each cut)", n)
			}
			for cut := 1; cut <= 2; cut++ {
				if note := fmt.Sprintf("reconnected; resuming at byte %d\n", len(expectedLines(cut*part))); !strings.Contains(errb.String(), note) {
					t.Errorf("%s did not say %q; stderr:\n%s", verb, note, errb.String())
				}
			}
		})
	}
}

// TestE2ERestart: after a restart the old jobs are listed and their output
// streams.
func TestE2ERestart(t *testing.T) {
	state := t.TempDir()
	s := startDevServer(t, state)
	done := s.detach("user", "sh", "-c", "echo kept across restarts")
	r := s.cli("user", "logs", "-f", done)
	if r.out != "kept across restarts\n" {
		t.Fatalf("logs = %q", r.out)
	}
	running := s.detach("user", "sleep", "1000")
	s.stop()

	s2 := startDevServer(t, state)
	r = s2.cli("admin", "list")
	if !strings.Contains(r.out, done) || !strings.Contains(r.out, running) {
		t.Errorf("list after restart:\n%s\nwant %s and %s", r.out, done, running)
	}
	if r := s2.cli("user", "logs", done); r.out != "kept across restarts\n" {
		t.Errorf("logs after restart = %q, %q", r.out, r.err)
	}
	if r := s2.cli("user", "status", "--json", running); !strings.Contains(r.out, `"state":"JOB_STATE_STOPPED"`) {
		t.Errorf("a job running at a graceful shutdown: %s, want stopped", r.out)
	}
}

// TestE2EForeignClients: clients nobody here wrote: grpcurl through
// reflection, and grpc-health-probe.
func TestE2EForeignClients(t *testing.T) {
	grpcurl, probe := os.Getenv("JOBWORKER_GRPCURL"), os.Getenv("JOBWORKER_HEALTH_PROBE")
	if grpcurl == "" || probe == "" {
		t.Fatal("JOBWORKER_GRPCURL and JOBWORKER_HEALTH_PROBE must name the pinned tools (hack/test builds them)")
	}
	s := startDevServer(t, t.TempDir())
	id := s.detach("admin", "true")
	dev := filepath.Join(s.state, "dev")
	tlsArgs := []string{"-cacert", filepath.Join(dev, "ca.crt"), "-cert", filepath.Join(dev, "admin.crt"), "-key", filepath.Join(dev, "admin.key")}
	out, err := exec.Command(grpcurl, append(tlsArgs, s.addr, "list")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "jobworker.v1.JobWorkerService") || !strings.Contains(string(out), "grpc.health.v1.Health") {
		t.Errorf("grpcurl list: %v:\n%s", err, out)
	}
	out, err = exec.Command(grpcurl, append(tlsArgs, "-d", "{}", s.addr, "jobworker.v1.JobWorkerService/ListJobs")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), id) {
		t.Errorf("grpcurl ListJobs: %v:\n%s", err, out)
	}
	out, err = exec.Command(probe, "-addr="+s.addr, "-tls", "-tls-ca-cert="+filepath.Join(dev, "ca.crt"),
		"-tls-client-cert="+filepath.Join(dev, "reader.crt"), "-tls-client-key="+filepath.Join(dev, "reader.key")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SERVING") {
		t.Errorf("grpc-health-probe: %v: %s", err, out)
	}
}
