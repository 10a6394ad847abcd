//go:build integration

package main

import (
	"encoding/json"
	"strings"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// jsonJob parses the one Job a --json verb printed.
func jsonJob(t *testing.T, what string, r result) *jobworkerv1.Job {
	t.Helper()
	if r.code != 0 || strings.Count(r.out, "\n") != 1 {
		t.Fatalf("%s: exit %d, stdout %q, stderr %q; want one JSON line", what, r.code, r.out, r.err)
	}
	j := &jobworkerv1.Job{}
	if err := protojson.Unmarshal([]byte(r.out), j); err != nil {
		t.Fatalf("%s: %v in %q", what, err, r.out)
	}
	return j
}

// TestE2EJobControl drives each job control verb through the CLI, human
// and --json: names and labels (run, status, list and its filters), ID
// prefixes, signal, pause and resume, update, and the stop of a paused job.
func TestE2EJobControl(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	script := `trap 'echo got USR1' USR1; trap 'echo got HUP' HUP; trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done`
	id := s.detachWith("user", []string{"--name", "build-7", "--label", "team=infra", "--label", "tier=batch job"}, "sh", "-c", script)
	other := s.detach("user", "sleep", "1000")
	prefix := id[:8]
	s.waitOutput("user", id, "ready\n")

	// Names and labels: status and list show them, list filters by them.
	r := s.cli("user", "status", prefix)
	if r.code != 0 || !strings.Contains(r.out, "ID        "+id+"\n") || !strings.Contains(r.out, "Name      build-7\n") || !strings.Contains(r.out, "Labels    team=infra, tier=batch job\n") {
		t.Errorf("status by prefix: exit %d, stdout:\n%s\nstderr %q; want the job with its name and labels", r.code, r.out, r.err)
	}
	j := jsonJob(t, "status --json", s.cli("user", "status", "--json", id))
	if j.GetName() != "build-7" || j.GetLabels()["team"] != "infra" || j.GetLabels()["tier"] != "batch job" {
		t.Errorf("status --json: name %q labels %v", j.GetName(), j.GetLabels())
	}
	r = s.cli("user", "list", "--name", "build-7")
	if lines := strings.Split(strings.TrimSpace(r.out), "\n"); r.code != 0 || len(lines) != 2 || !strings.Contains(lines[0], "NAME") || !strings.Contains(lines[1], id) || !strings.Contains(lines[1], "build-7") || !strings.Contains(lines[0], "LABELS") || !strings.Contains(lines[1], "team=infra,tier=batch job") {
		t.Errorf("list --name build-7: exit %d, stdout:\n%s\nwant the header and the job with its name and labels", r.code, r.out)
	}
	r = s.cli("user", "list", "--json", "--label", "team=infra", "--label", "tier=batch job")
	if r.code != 0 || strings.Count(r.out, "\n") != 1 || !strings.Contains(r.out, id) {
		t.Errorf("list --json --label team=infra --label 'tier=batch job': exit %d, stdout %q; want the one job", r.code, r.out)
	}
	r = s.cli("user", "list", "--label", "team=infra", "--label", "tier=web")
	if r.code != 0 || strings.Contains(r.out, id) {
		t.Errorf("list with a label that does not match: exit %d, stdout %q; want no job (all labels must match)", r.code, r.out)
	}
	if r := s.cli("user", "run", "-d", "--name", "bad name", "--", "true"); r.code != 125 || !strings.Contains(r.err, "job name") {
		t.Errorf("run --name 'bad name': exit %d, stderr %q; want exit 125 naming the job name", r.code, r.err)
	}

	// signal, by prefix and by number.
	r = s.cli("user", "signal", prefix, "USR1")
	if r.code != 0 || r.err != "job "+id+" sent SIGUSR1\n" {
		t.Errorf("signal %s USR1: exit %d, stderr %q", prefix, r.code, r.err)
	}
	s.waitOutput("user", id, "got USR1\n")
	j = jsonJob(t, "signal --json", s.cli("user", "signal", "--json", id, "1"))
	if j.GetId() != id || j.GetState() != jobworkerv1.JobState_JOB_STATE_RUNNING {
		t.Errorf("signal --json: %v", j)
	}
	s.waitOutput("user", id, "got HUP\n")
	if r := s.cli("user", "signal", id, "STOP"); r.code != 2 || !strings.Contains(r.err, "USR1") {
		t.Errorf("signal STOP: exit %d, stderr %q; want exit 2 listing the signals", r.code, r.err)
	}

	// pause and resume: state paused in status and list --state paused.
	r = s.cli("user", "pause", prefix)
	if r.code != 0 || r.err != "job "+id+" paused\n" {
		t.Errorf("pause: exit %d, stderr %q", r.code, r.err)
	}
	if r := s.cli("user", "status", id); !strings.Contains(r.out, "State     paused\n") {
		t.Errorf("status of a paused job:\n%s", r.out)
	}
	r = s.cli("user", "list", "--state", "paused")
	if !strings.Contains(r.out, id) || strings.Contains(r.out, other) {
		t.Errorf("list --state paused:\n%s\nwant %s only", r.out, id)
	}
	j = jsonJob(t, "pause --json", s.cli("user", "pause", "--json", id))
	if j.GetState() != jobworkerv1.JobState_JOB_STATE_PAUSED {
		t.Errorf("pause --json of a paused job: state %v, want PAUSED", j.GetState())
	}
	r = s.cli("user", "resume", prefix)
	if r.code != 0 || r.err != "job "+id+" running\n" {
		t.Errorf("resume: exit %d, stderr %q", r.code, r.err)
	}
	j = jsonJob(t, "resume --json", s.cli("user", "resume", "--json", id))
	if j.GetState() != jobworkerv1.JobState_JOB_STATE_RUNNING {
		t.Errorf("resume --json: state %v, want RUNNING", j.GetState())
	}

	// update: lower (a user may), lift past the default (a user may not).
	r = s.cli("user", "update", "--memory-limit", "24M", "--pids-limit", "50", prefix)
	if r.code != 0 || !strings.Contains(r.err, "job "+id+" running, limits ") || !strings.Contains(r.err, "memory 24 MiB") || !strings.Contains(r.err, "pids 50") {
		t.Errorf("update --memory-limit 24M --pids-limit 50: exit %d, stderr %q", r.code, r.err)
	}
	j = jsonJob(t, "update --json", s.cli("user", "update", "--json", "--cpu-weight", "40", id))
	if j.GetLimits().GetCpuWeight() != 40 || j.GetLimits().GetMemoryMaxBytes() != 24<<20 {
		t.Errorf("update --json --cpu-weight 40: limits %v", j.GetLimits())
	}
	if r := s.cli("user", "update", "--memory-limit", "64M", id); r.code != 1 || !strings.Contains(r.err, "permission denied") || !strings.Contains(r.err, "only an admin may lift it") {
		t.Errorf("update past the default as a user: exit %d, stderr %q; want exit 1, permission denied", r.code, r.err)
	}
	if r := s.cli("admin", "update", "--memory-limit", "64M", id); r.code != 0 || !strings.Contains(r.err, "memory 64 MiB") {
		t.Errorf("update past the default as admin: exit %d, stderr %q", r.code, r.err)
	}
	if r := s.cli("user", "update", "--memory-limit", "48M", id); r.code != 0 || !strings.Contains(r.err, "memory 48 MiB") {
		t.Errorf("update as a user, lowering the limit an admin lifted to a value still past the default: exit %d, stderr %q; want it done", r.code, r.err)
	}
	if r := s.cli("user", "update", "--memory-limit", "56M", id); r.code != 1 || !strings.Contains(r.err, "only an admin may lift it") {
		t.Errorf("update as a user, raising the limit again past the default: exit %d, stderr %q; want permission denied", r.code, r.err)
	}
	if r := s.cli("user", "update", "--cpu-weight", "0", id); r.code != 1 || !strings.Contains(r.err, "--cpu-weight 0 is out of range") {
		t.Errorf("update --cpu-weight 0: exit %d, stderr %q; want the flag named", r.code, r.err)
	}
	if r := s.cli("user", "update", id); r.code != 2 {
		t.Errorf("update without a limit: exit %d, stderr %q; want 2", r.code, r.err)
	}

	// Roles: a reader may not, another user finds no such job, by whole
	// ID or by prefix.
	for _, verb := range [][]string{{"signal", id, "USR1"}, {"pause", id}, {"resume", id}, {"update", "--pids-limit", "10", id}} {
		if r := s.cli("reader", verb...); r.code != 1 || !strings.Contains(r.err, "permission denied") {
			t.Errorf("reader: %s: exit %d, stderr %q; want permission denied", strings.Join(verb, " "), r.code, r.err)
		}
		verb[len(verb)-1] = prefix
		if verb[0] == "signal" {
			verb = []string{"signal", prefix, "USR1"}
		}
		if r := s.cli("bob", verb...); r.code != 1 || !strings.Contains(r.err, "job "+prefix+" not found") {
			t.Errorf("bob: %s: exit %d, stderr %q; want not found", strings.Join(verb, " "), r.code, r.err)
		}
	}
	if r := s.cli("user", "status", "1234567"); r.code != 1 || !strings.Contains(r.err, "malformed job ID") {
		t.Errorf("status of a 7-character prefix: exit %d, stderr %q", r.code, r.err)
	}

	// The stop of a paused job runs its TERM handler.
	if r := s.cli("user", "pause", id); r.code != 0 {
		t.Fatalf("pause: exit %d, stderr %q", r.code, r.err)
	}
	r = s.cli("user", "stop", "--grace", "1m", prefix)
	if r.code != 0 || r.err != "job "+id+" stopped (exit code 0)\n" {
		t.Errorf("stop of a paused job: exit %d, stderr %q; want stopped (exit code 0)", r.code, r.err)
	}
	if r := s.cli("user", "logs", id); !strings.HasSuffix(r.out, "bye\n") {
		t.Errorf("output of the job stopped while paused: %q, want its handler's bye at the end", r.out)
	}
	if r := s.cli("user", "signal", id, "TERM"); r.code != 1 || !strings.Contains(r.err, "it has ended (stopped)") {
		t.Errorf("signal of an ended job: exit %d, stderr %q", r.code, r.err)
	}
	var raw map[string]any
	if r := s.cli("user", "status", "--json", id); json.Unmarshal([]byte(r.out), &raw) != nil || raw["name"] != "build-7" {
		t.Errorf("status --json of the ended job: %q; want its name kept", r.out)
	}
	s.cli("user", "stop", "--grace", "0s", other)
}
