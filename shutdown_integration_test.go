//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var cgroupParentRE = regexp.MustCompile(`cgroup_parent=(\S+)`)

// cgroupParent is the cgroup directory the server places jobs under, from
// its serving line (which its stderr may bring after the exports on its
// stdout).
func (s *devServer) cgroupParent() string {
	s.t.Helper()
	var m []string
	eventually(s.t, time.Minute, "the server's serving line", func() bool {
		m = cgroupParentRE.FindStringSubmatch(s.serverLog())
		return m != nil
	})
	return m[1]
}

// jobProcesses lists the processes (pid, command, cgroup) whose cgroup is
// a job's under parent: one of its user levels or below.
func jobProcesses(t *testing.T, parent string) []string {
	t.Helper()
	mount, err := cgroupfs.FindMount()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil {
			continue // gone meanwhile
		}
		for line := range strings.Lines(string(b)) {
			rel, ok := strings.CutPrefix(strings.TrimSpace(line), "0::")
			if !ok {
				continue
			}
			if cg := filepath.Join(mount, rel); strings.HasPrefix(cg, parent+"/jobs/user-") && alive(pid) {
				comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
				found = append(found, e.Name()+" ("+strings.TrimSpace(string(comm))+") in "+cg)
			}
		}
	}
	return found
}

var anyUUIDRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// TestE2EShutdownRacesStarts: SIGTERM arrives while 200 StartJobs are
// under way. The server exits 0 and leaves no job's process behind; every
// job it acknowledged was stopped by the shutdown and is recorded so: after
// a restart on the same state directory it is listed, STOPPED, and no job
// at all is in another state (a job the shutdown missed would be recorded
// as running, and come back FAILED server_restarted).
//
// The jobs ignore SIGTERM, so the shutdown kills each one only after the
// whole grace (2 s here): a job the shutdown did not wait for is still
// running when the server exits. SIGTERM comes either as the first start
// reaches the job manager (its job directory appears), when the shutdown
// may have no running job to wait for while starts are under way (the
// case that lost jobs; a race, so it is run three times), or once ten jobs
// run.
func TestE2EShutdownRacesStarts(t *testing.T) {
	for _, tt := range []struct {
		name  string
		acks  int // jobs acknowledged before SIGTERM; 0: at the first job directory
		times int
	}{
		{"at the first start", 0, 3},
		{"after ten jobs", 10, 1},
	} {
		for i := range tt.times {
			t.Run(fmt.Sprintf("%s %d", tt.name, i+1), func(t *testing.T) { shutdownRacesStarts(t, tt.acks) })
		}
	}
}

func shutdownRacesStarts(t *testing.T, acks int) {
	state := t.TempDir()
	// Memory capacity is only counted, never taken: enough for every job
	// to start at once rather than queue.
	s := startDevServer(t, state, "--memory-capacity", "100G")
	parent := s.cgroupParent()
	const n, conns = 200, 4
	clients := make([]jobworkerv1.JobWorkerServiceClient, conns)
	for i := range clients {
		clients[i] = s.dial(s.addr, "admin", t)
	}
	req := &jobworkerv1.StartJobRequest{Command: "sh", Args: []string{"-c", "trap '' TERM; exec sleep 1000"}}
	// Start makes a job's directory first of all: inotify says when.
	inotify, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(inotify)
	if _, err := unix.InotifyAddWatch(inotify, filepath.Join(state, "jobs"), unix.IN_CREATE); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var acked []string
	refused := map[codes.Code]int{}
	go1 := make(chan struct{})
	ackedOne := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go1
			resp, err := clients[i%conns].StartJob(context.Background(), req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused[status.Code(err)]++
				if status.Code(err) != codes.Unavailable {
					t.Errorf("StartJob during the shutdown: %v, want OK or Unavailable", err)
				}
				return
			}
			acked = append(acked, resp.GetJob().GetId())
			ackedOne <- struct{}{}
		}()
	}
	close(go1)
	if acks == 0 {
		buf := make([]byte, 4096)
		if _, err := unix.Read(inotify, buf); err != nil {
			t.Fatalf("waiting for a job directory: %v", err)
		}
	}
	for range acks {
		select {
		case <-ackedOne:
		case <-time.After(2 * time.Minute):
			t.Fatalf("fewer than %d jobs started within two minutes; log:\n%s", acks, s.serverLog())
		}
	}
	s.ended.Store(true)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	select {
	case <-s.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the server did not exit within three minutes of SIGTERM; log:\n%s", s.serverLog())
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the server exited %v after SIGTERM, want 0; log:\n%s", s.cmd.ProcessState, s.serverLog())
	}
	t.Logf("%d jobs acknowledged, refused: %v", len(acked), refused)
	if left := jobProcesses(t, parent); len(left) > 0 {
		t.Errorf("after the server exited, job processes are left:\n%s", strings.Join(left, "\n"))
	}
	for _, id := range acked {
		if cg := jobCgroup(t, id); cg != "" {
			t.Errorf("job %s: its cgroup %s is left after the server exited", id, cg)
		}
	}

	s2 := startDevServer(t, state)
	listed := s2.cli("admin", "list")
	for _, id := range acked {
		if !strings.Contains(listed.out, id) {
			t.Errorf("job %s, acknowledged, is not listed after the restart", id)
			continue
		}
		if j := s2.job(id); j.GetState() != jobworkerv1.JobState_JOB_STATE_STOPPED || j.GetEndTime() == nil {
			t.Errorf("job %s after the restart: %v (%v), ended %v; want STOPPED by the shutdown", id, j.GetState(), j.GetReason(), j.GetEndTime() != nil)
		}
	}
	other := s2.cli("admin", "list", "--state", "pending", "--state", "running", "--state", "completed", "--state", "failed")
	if ids := anyUUIDRE.FindAllString(other.out, -1); len(ids) > 0 || other.code != 0 {
		t.Errorf("after the restart, jobs not stopped by the shutdown (exit %d):\n%s", other.code, other.out)
	}
}
