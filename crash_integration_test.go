//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// TestCrashAfterStartJob: a job that StartJob returned is never lost. 50
// times the server is killed (SIGKILL) right after StartJob returned, once
// for a job that runs and once for one that waits PENDING behind it
// (--max-running 1); after each restart every job started so far is
// listed, those of the last round FAILED server_restarted, none damaged,
// and the server logged no damage.
func TestCrashAfterStartJob(t *testing.T) {
	state := t.TempDir()
	var ids []string
	for round := range 51 {
		s := startDevServer(t, state, "--max-running", "1")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r, err := s.client("admin").ListJobs(ctx, &jobworkerv1.ListJobsRequest{PageSize: 1000})
		if err != nil {
			cancel()
			t.Fatalf("round %d: list: %v", round, err)
		}
		byID := map[string]*jobworkerv1.Job{}
		for _, j := range r.GetJobs() {
			byID[j.GetId()] = j
		}
		for i, id := range ids {
			j, ok := byID[id]
			if !ok {
				cancel()
				t.Fatalf("round %d: job %s, started in round %d, is not listed after the restart; log:\n%s", round, id, i/2, s.serverLog())
			}
			if j.GetState() != jobworkerv1.JobState_JOB_STATE_FAILED || j.GetReason() != jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED || j.GetDamaged() != "" {
				t.Errorf("round %d: job %s: %v %v, damaged %q; want FAILED server_restarted, sound", round, id, j.GetState(), j.GetReason(), j.GetDamaged())
			}
		}
		if len(byID) != len(ids) {
			t.Errorf("round %d: %d jobs listed, want the %d started", round, len(byID), len(ids))
		}
		if log := s.serverLog(); strings.Contains(log, "damaged") || strings.Contains(log, "removing it") {
			t.Errorf("round %d: the server found damage:\n%s", round, log)
		}
		if round == 50 {
			cancel()
			return
		}
		for _, want := range []jobworkerv1.JobState{jobworkerv1.JobState_JOB_STATE_RUNNING, jobworkerv1.JobState_JOB_STATE_PENDING} {
			resp, err := s.client("user").StartJob(ctx, &jobworkerv1.StartJobRequest{Command: "sleep", Args: []string{"1000"}})
			if err != nil {
				cancel()
				t.Fatalf("round %d: StartJob: %v", round, err)
			}
			if got := resp.GetJob().GetState(); got != want {
				t.Errorf("round %d: StartJob answered %v, want %v", round, got, want)
			}
			ids = append(ids, resp.GetJob().GetId())
		}
		cancel()
		s.kill()
	}
}

// TestCrashDamagedStateDir: a state directory with a job whose output lost
// part of a segment and one whose record is torn before its ID still
// starts the server. list and status show both damaged (the torn one
// FAILED with an unknown owner, which a user cannot see), logs gives what
// is readable of the other, and the server logs what it found.
func TestCrashDamagedStateDir(t *testing.T) {
	state := t.TempDir()
	s := startDevServer(t, state, "--output-cap", "64K")
	partial := s.detach("user", "seq", "1", "10000")
	torn := s.detach("user", "echo", "torn")
	for _, id := range []string{partial, torn} {
		if j := s.wait(id); j.GetState() != jobworkerv1.JobState_JOB_STATE_COMPLETED {
			t.Fatalf("job %s: %v", id, j)
		}
	}
	whole := s.cli("user", "logs", partial).out
	s.stop()

	// Cut the second of the output's segments short, and tear the other
	// job's record before its ID.
	out := filepath.Join(state, "jobs", partial, "output")
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".seg") {
			segs = append(segs, e.Name())
		}
	}
	slices.Sort(segs)
	if len(segs) < 3 {
		t.Fatalf("the output of %d bytes is in %d segments, want at least 3", len(whole), len(segs))
	}
	var second, third int64
	fmt.Sscanf(segs[1], "%d.seg", &second)
	fmt.Sscanf(segs[2], "%d.seg", &third)
	if err := os.Truncate(filepath.Join(out, segs[1]), 100); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "jobs", torn, "job.json"), []byte("{\n  \"version\": 1,\n  \"i"), 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := startDevServer(t, state, "--output-cap", "64K")
	if log := s2.serverLog(); !strings.Contains(log, partial) || !strings.Contains(log, torn) || !strings.Contains(log, "damaged") {
		t.Errorf("the server's log does not say what it found damaged:\n%s", log)
	}
	list := s2.cli("admin", "list")
	for _, want := range []string{partial + "  completed (damaged, exit code 0)", torn + "  failed (damaged)"} {
		if !strings.Contains(list.out, want) {
			t.Errorf("admin list:\n%s\nwant a row with %q", list.out, want)
		}
	}
	gap := fmt.Sprintf("output bytes %d to %d are missing", second+100, third-1)
	if r := s2.cli("user", "status", partial); !strings.Contains(r.out, "Damaged   "+gap) {
		t.Errorf("status of the job with a gap: %q %q, want it to say %q", r.out, r.err, gap)
	}
	if r := s2.cli("reader", "status", torn); r.code != 0 || !strings.Contains(r.out, "Owner     (unknown)") || !strings.Contains(r.out, "its record is damaged") {
		t.Errorf("reader's status of the torn job: exit %d, %q %q", r.code, r.out, r.err)
	}
	if r := s2.cli("user", "status", torn); r.code == 0 {
		t.Errorf("a user sees the job without an owner: %q", r.out)
	}
	if r := s2.cli("user", "list"); strings.Contains(r.out, torn) {
		t.Errorf("a user's list holds the job without an owner:\n%s", r.out)
	}
	r := s2.cli("user", "logs", partial)
	if want := whole[:second+100] + whole[third:]; r.code != 0 || r.out != want {
		t.Errorf("logs of the job with a gap: exit %d, %d bytes, want the %d readable; stderr %q", r.code, len(r.out), len(want), r.err)
	}
	if !strings.Contains(r.err, fmt.Sprint(third-second-100)) {
		t.Errorf("logs of the job with a gap did not say %d bytes are skipped: %q", third-second-100, r.err)
	}
}
