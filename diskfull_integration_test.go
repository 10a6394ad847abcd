//go:build integration

package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestDiskFilledByOneUser: dev-user's job fills the state directory's
// filesystem (a 48 MiB tmpfs) while bob's job runs. dev-user's job, the
// one that filled it, fails output_lost; new jobs are refused below the
// reserve, naming its flag; bob's job then writes 4 MiB more onto the full
// disk, which frees dev-user's output for it, and completes with every
// byte; and with dev-user's output gone, jobs run again.
func TestDiskFilledByOneUser(t *testing.T) {
	state := t.TempDir()
	if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size=48m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(state, unix.MNT_DETACH) })
	s := startDevServer(t, state, "--output-cap", "64M", "--user-output", "1G", "--state-dir-reserve", "8M")
	g := newGate(t)
	bob := s.detach("bob", "sh", "-c", `i=0; while [ $i -lt 200 ]; do echo bob line $i; i=$((i+1)); done; `+g.wait()+`; yes bob | head -n 1048576`)
	s.waitOutput("bob", bob, "bob line 199\n")

	r, err := s.client("user").StartJob(context.Background(), &jobworkerv1.StartJobRequest{Command: "head", Args: []string{"-c", "62914560", "/dev/zero"}})
	if err != nil {
		t.Fatal(err)
	}
	st := s.wait(r.GetJob().GetId())
	if st.GetReason() != jobworkerv1.FailureReason_FAILURE_REASON_OUTPUT_LOST {
		t.Errorf("dev-user's job writing 60 MiB onto 48: %v %v %q, want FAILED output_lost", st.GetState(), st.GetReason(), st.GetMessage())
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(state, &fs); err != nil {
		t.Fatal(err)
	}
	if free := fs.Bavail * uint64(fs.Bsize); free >= 8<<20 {
		t.Fatalf("the state directory has %d bytes free after dev-user's job (%v %q), want it full", free, st.GetState(), st.GetMessage())
	}
	for _, who := range []string{"admin", "user"} {
		_, err := s.client(who).StartJob(context.Background(), &jobworkerv1.StartJobRequest{Command: "true"})
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--state-dir-reserve") {
			t.Errorf("a start by %s on the full disk: %v, want ResourceExhausted naming --state-dir-reserve", who, err)
		}
	}

	g.open(t)
	st = s.wait(bob)
	if st.GetState() != jobworkerv1.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("bob's job on the full disk: %v %v %q, want COMPLETED", st.GetState(), st.GetReason(), st.GetMessage())
	}
	var want strings.Builder
	for i := range 200 {
		fmt.Fprintf(&want, "bob line %d\n", i)
	}
	want.WriteString(strings.Repeat("bob\n", 1048576))
	if out := s.cli("bob", "logs", bob).out; out != want.String() {
		t.Errorf("bob's output on the full disk: %d bytes, want all %d", len(out), want.Len())
	}
	if !strings.Contains(s.serverLog(), "the state directory is full: removed job "+r.GetJob().GetId()) {
		t.Errorf("the server did not say it removed dev-user's job; its log:\n%s", s.serverLog())
	}
	if out := s.runJob("user", 0, "--", "sh", "-c", "echo again"); out != "again\n" {
		t.Errorf("dev-user's job once its output was removed printed %q", out)
	}
}
