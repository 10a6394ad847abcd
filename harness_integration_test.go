//go:build integration

package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobworker/jobworker/client"
	"github.com/jobworker/jobworker/internal/testchild"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"golang.org/x/sys/unix"
)

// Helpers the fault, hostile-input and load tests share with the
// end-to-end tests: an API client beside the CLI, and ways to look at the
// server process and the jobs' cgroups from outside.

// clientCache holds one API connection per identity for the whole test
// that started the server.
type clientCache struct {
	root  *testing.T // closes the connections when it ends
	mu    sync.Mutex
	byWho map[string]jobworkerv1.JobWorkerServiceClient
}

// in returns the server as seen from test t (a subtest): its helpers then
// report failures to t.
func (s *devServer) in(t *testing.T) *devServer {
	c := *s
	c.t = t
	return &c
}

// client is an API client of the server as who (admin, user, reader, bob):
// one connection per identity, made on first use.
func (s *devServer) client(who string) jobworkerv1.JobWorkerServiceClient {
	s.t.Helper()
	s.clients.mu.Lock()
	defer s.clients.mu.Unlock()
	if c, ok := s.clients.byWho[who]; ok {
		return c
	}
	c := s.dial(s.addr, who, s.clients.root)
	s.clients.byWho[who] = c
	return c
}

// flags are the CLI's client flags for who at addr, from the same files as
// certEnv.
func (s *devServer) flags(addr, who string) clientFlags {
	s.t.Helper()
	f := clientFlags{Server: addr}
	for _, kv := range s.certEnv(who) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "JOBWORKER_CA":
			f.CA = v
		case "JOBWORKER_CERT":
			f.Cert = v
		case "JOBWORKER_KEY":
			f.Key = v
		}
	}
	return f
}

// dial is a new API client of the server at addr as who, closed when
// owner ends.
func (s *devServer) dial(addr, who string, owner *testing.T) jobworkerv1.JobWorkerServiceClient {
	s.t.Helper()
	f := s.flags(addr, who)
	c, err := f.connect()
	if err != nil {
		s.t.Fatal(err)
	}
	owner.Cleanup(func() { c.Close() })
	return c
}

// job returns a job's status as admin.
func (s *devServer) job(id string) *jobworkerv1.Job {
	s.t.Helper()
	st, err := s.client("admin").GetJobStatus(context.Background(), &jobworkerv1.GetJobStatusRequest{Id: id})
	if err != nil {
		s.t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		s.t.Fatalf("status of %s: %v", id, err)
	}
	// The call ends with the one answer: nothing of it stays open.
	if _, err := st.Recv(); err != io.EOF {
		s.t.Fatalf("status of %s: after the answer %v, want the end of the stream", id, err)
	}
	return r.GetJob()
}

// wait waits for a job to end and returns its final status.
func (s *devServer) wait(id string) *jobworkerv1.Job {
	s.t.Helper()
	last, err := client.FinalStatus(context.Background(), s.client("admin"), id)
	if err != nil {
		s.t.Fatalf("watching %s: %v", id, err)
	}
	if last.GetEndTime() == nil {
		s.t.Fatalf("watching %s: the stream ended before the job (last %v)", id, last)
	}
	return last
}

// serverLog returns what the server logged so far.
func (s *devServer) serverLog() string {
	s.logw.mu.Lock()
	defer s.logw.mu.Unlock()
	return s.log.String()
}

// pid is the server's process ID.
func (s *devServer) pid() int { return s.cmd.Process.Pid }

// debugSocket is where a server started with --debug-socket serves pprof.
func (s *devServer) debugSocket() string {
	s.t.Helper()
	i := slices.Index(s.args, "--debug-socket")
	if i < 0 || i+1 >= len(s.args) {
		s.t.Fatalf("the server was started without --debug-socket: %q", s.args)
	}
	return s.args[i+1]
}

// procStatus reads a field of /proc/PID/status in kB (VmRSS, VmHWM) or as
// a count (Threads).
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// openFDs counts a process's open file descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// jobCgroup finds a job's cgroup directory under /sys/fs/cgroup, or "".
func jobCgroup(t *testing.T, id string) string {
	t.Helper()
	found := ""
	err := filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if d.Name() == id {
			found = path
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// alive reports whether pid names a process that has not exited (a zombie
// has).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// gate is a FIFO a job blocks on (`cat GATE >/dev/null`) until the test
// opens it: the job then goes on at a point the test chose.
type gate string

// newGate makes a gate in a directory the job's unprivileged user can reach.
func newGate(t *testing.T) gate {
	t.Helper()
	path := filepath.Join(testchild.PublicDir(t), "gate")
	if err := unix.Mkfifo(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	return gate(path)
}

// open lets the job blocked on g go on. It waits (up to two minutes) for
// the job to reach the gate if it has not yet.
func (g gate) open(t *testing.T) {
	t.Helper()
	opened := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(string(g), os.O_WRONLY, 0)
		if err == nil {
			err = f.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("no job reached the gate %s within two minutes", g)
	}
}

// wait is the shell command that blocks on g.
func (g gate) wait() string { return "cat " + string(g) + " >/dev/null" }

// eventually polls cond until it holds or d passes. It is for states that
// settle asynchronously (goroutines winding down), not for ordering.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !settles(d, cond) {
		t.Fatalf("%s: still not so after %v", what, d)
	}
}

// settles polls cond until it holds (true) or d passes (false).
func settles(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
