//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/auth"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// eventsCLI is a running `jobworker events`.
type eventsCLI struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *bytes.Buffer
}

func (s *devServer) events(who string, args ...string) *eventsCLI {
	s.t.Helper()
	e := &eventsCLI{cmd: exec.Command(binary(s.t), append([]string{"events"}, args...)...), lines: make(chan string, 100), stderr: &bytes.Buffer{}}
	e.cmd.Env = s.cliEnv(s.addr, who)
	e.cmd.Stderr = e.stderr
	out, err := e.cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := e.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		defer close(e.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			e.lines <- sc.Text()
		}
	}()
	s.t.Cleanup(func() {
		e.cmd.Process.Kill()
		for range e.lines {
		}
		e.cmd.Wait()
	})
	return e
}

// next is the next line the CLI printed.
func (e *eventsCLI) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-e.lines:
		if !ok {
			t.Fatalf("events ended; stderr %q", e.stderr)
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatalf("no event in 30s; stderr %q", e.stderr)
	}
	return ""
}

// TestE2EEvents follows a job's life with `jobworker events`: created,
// started, paused, resumed, limits_updated, ended (with the reason) and
// pruned, in order and numbered; --after replays what came before the
// watcher started; a user sees only its own jobs' events, and a reader
// every user's, with the filters of list.
func TestE2EEvents(t *testing.T) {
	s := startDevServer(t, t.TempDir(), "--retain-count", "1")
	id := s.detach("user", "sleep", "1000") // events 1 and 2 of a fresh server
	user := s.events("user", "--json", "--after", "1")
	bob := s.events("bob", "--after", "1")
	reader := s.events("reader", "--state", "stopped", "--after", "1")
	failed := s.events("reader", "--state", "failed", "--user", "dev-user", "--after", "1")

	for _, verb := range [][]string{{"pause", id}, {"resume", id}, {"update", "--memory-limit", "24M", id}, {"stop", "--grace", "0s", id}} {
		if r := s.cli("user", verb...); r.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", verb, r.code, r.err)
		}
	}
	// A second finished job: --retain-count 1 prunes the first.
	if r := s.cli("user", "run", "--", "sh", "-c", "exit 3"); r.code != 3 {
		t.Fatalf("run exit 3: exit %d, stderr %q", r.code, r.err)
	}
	type want struct {
		typ   jobworkerv1.JobEventType
		state jobworkerv1.JobState
		first bool // the event of the first job, else the second's
	}
	wants := []want{
		{jobworkerv1.JobEventType_JOB_EVENT_TYPE_STARTED, jobworkerv1.JobState_JOB_STATE_RUNNING, true},
		{jobworkerv1.JobEventType_JOB_EVENT_TYPE_PAUSED, jobworkerv1.JobState_JOB_STATE_PAUSED, true},
		{jobworkerv1.JobEventType_JOB_EVENT_TYPE_RESUMED, jobworkerv1.JobState_JOB_STATE_RUNNING, true},
		{jobworkerv1.JobEventType_JOB_EVENT_TYPE_LIMITS_UPDATED, jobworkerv1.JobState_JOB_STATE_RUNNING, true},
		{jobworkerv1.JobEventType_JOB_EVENT_TYPE_ENDED, jobworkerv1.JobState_JOB_STATE_STOPPED, true},
		{jobworkerv1.JobEventType_JOB_EVENT_TYPE_CREATED, jobworkerv1.JobState_JOB_STATE_RUNNING, false},
		{jobworkerv1.JobEventType_JOB_EVENT_TYPE_STARTED, jobworkerv1.JobState_JOB_STATE_RUNNING, false},
		{jobworkerv1.JobEventType_JOB_EVENT_TYPE_ENDED, jobworkerv1.JobState_JOB_STATE_FAILED, false},
		{jobworkerv1.JobEventType_JOB_EVENT_TYPE_PRUNED, jobworkerv1.JobState_JOB_STATE_STOPPED, true},
	}
	var second string
	for i, w := range wants {
		line := user.next(t)
		ev := &jobworkerv1.JobEvent{}
		if err := protojson.Unmarshal([]byte(line), ev); err != nil {
			t.Fatalf("event %d: %v in %q", i, err, line)
		}
		if second == "" && !w.first {
			second = ev.GetJob().GetId()
		}
		wantID := id
		if !w.first {
			wantID = second
		}
		if ev.GetSequence() != uint64(i+2) || ev.GetType() != w.typ || ev.GetJob().GetState() != w.state || ev.GetJob().GetId() != wantID || ev.GetTime() == nil {
			t.Errorf("event %d: %s; want sequence %d, %v, %v, job %s", i, line, i+2, w.typ, w.state, wantID)
		}
		if w.typ == jobworkerv1.JobEventType_JOB_EVENT_TYPE_LIMITS_UPDATED && ev.GetJob().GetLimits().GetMemoryMaxBytes() != 24<<20 {
			t.Errorf("limits_updated: memory limit %d, want 24M", ev.GetJob().GetLimits().GetMemoryMaxBytes())
		}
		if w.state == jobworkerv1.JobState_JOB_STATE_FAILED && (ev.GetJob().GetReason() != jobworkerv1.FailureReason_FAILURE_REASON_EXIT_CODE || ev.GetJob().GetExitCode() != 3) {
			t.Errorf("ended: %s; want exit_code 3", line)
		}
	}
	// The reader's stream, filtered on the stopped state: the stop and the
	// prune, human, with the job's outcome.
	for _, typ := range []string{"ended", "pruned"} {
		l := reader.next(t)
		if f := strings.Fields(l); len(f) < 8 || f[4] != typ || f[5] != id || f[6] != "dev-user" || f[7] != "stopped" {
			t.Errorf("reader's event %q, want %s of %s by dev-user, stopped", l, typ, id)
		}
	}
	if l := failed.next(t); !strings.Contains(l, " ended ") || !strings.Contains(l, second) || !strings.Contains(l, "failed (exit code 3)") {
		t.Errorf("reader's failed event %q, want the second job's end", l)
	}
	// bob's watcher, replaying the same events, saw none of them: a job of
	// bob's own is its first event.
	bobs := s.detach("bob", "true")
	if l := bob.next(t); !strings.Contains(l, " created ") || !strings.Contains(l, bobs) {
		t.Errorf("bob's first event %q, want the creation of its own job %s", l, bobs)
	}
}

// dialSmallWindows is an API client of the server as who whose flow-control
// windows are gRPC's smallest fixed ones (64 KiB, no growth): a stream it
// does not read stops the server's sends after that much.
func (s *devServer) dialSmallWindows(who string) jobworkerv1.JobWorkerServiceClient {
	s.t.Helper()
	f := s.flags(s.addr, who)
	host, _, err := net.SplitHostPort(s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	tc, err := auth.ClientConfig(f.CA, f.Cert, f.Key, host)
	if err != nil {
		s.t.Fatal(err)
	}
	cc, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cc.Close() })
	return jobworkerv1.NewJobWorkerServiceClient(cc)
}

// TestE2EEventsSlowWatcher: while a watcher does not read, thousands of
// events happen: the RPCs that make them all complete, and another
// watcher gets every one in order, in time; when it reads again it gets
// what was sent to it, in order and without a gap, then RESOURCE_EXHAUSTED
// naming the last event it was sent; WatchJobs after that event resumes
// with the next one.
func TestE2EEventsSlowWatcher(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	id := s.detach("user", "sleep", "1000") // events 1 and 2 of a fresh server
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := s.dialSmallWindows("admin").WatchJobs(ctx, &jobworkerv1.WatchJobsRequest{After: 1})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := s.client("reader").WatchJobs(ctx, &jobworkerv1.WatchJobsRequest{After: 1})
	if err != nil {
		t.Fatal(err)
	}
	const updates = 3500 // well past half the server's 4096 events
	last := uint64(2 + updates)
	fastDone := make(chan error, 1)
	go func() {
		for want := uint64(2); want <= last; want++ {
			r, err := fast.Recv()
			if err != nil {
				fastDone <- fmt.Errorf("the other watcher at event %d: %v", want, err)
				return
			}
			if got := r.GetEvent().GetSequence(); got != want {
				fastDone <- fmt.Errorf("the other watcher got event %d, want %d", got, want)
				return
			}
		}
		fastDone <- nil
	}()
	user := s.client("user")
	began := time.Now()
	for i := range updates {
		pids := uint64(100 + i%2)
		if _, err := user.UpdateJob(ctx, &jobworkerv1.UpdateJobRequest{Id: id, Limits: &jobworkerv1.Limits{PidsMax: &pids}}); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	t.Logf("%d updates in %v while a watcher did not read", updates, time.Since(began))
	select {
	case err := <-fastDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the other watcher did not get every event within a minute of the last")
	}

	// The slow watcher reads again: what the server sent it, then its end.
	want := uint64(2)
	var end error
	for {
		r, err := slow.Recv()
		if err != nil {
			end = err
			break
		}
		if got := r.GetEvent().GetSequence(); got != want {
			t.Fatalf("the slow watcher got event %d, want %d", got, want)
		}
		want++
	}
	got := want - 1 // the last event it received
	if got >= last {
		t.Fatalf("the slow watcher got every event (%d); it was meant to fall behind", got)
	}
	st := status.Convert(end)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), fmt.Sprintf("resume after event %d", got)) || !strings.Contains(st.Message(), fmt.Sprintf("after=%d", got)) {
		t.Fatalf("the slow watcher's end after event %d: %v; want RESOURCE_EXHAUSTED naming event %d", got, end, got)
	}
	resumed, err := s.client("admin").WatchJobs(ctx, &jobworkerv1.WatchJobsRequest{After: got})
	if err != nil {
		t.Fatal(err)
	}
	r, err := resumed.Recv()
	if err != nil || r.GetEvent().GetSequence() != got+1 {
		t.Fatalf("resumed after %d: %v, %v; want event %d", got, r.GetEvent(), err, got+1)
	}
}
