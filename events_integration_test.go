//go:build integration

package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
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
