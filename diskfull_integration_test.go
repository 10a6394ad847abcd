//go:build integration

package main

import (
	"context"
	"strings"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestDiskFilledByOneUser: dev-user's jobs fill the state directory's
// filesystem (a 48 MiB tmpfs); bob's job, running meanwhile, keeps all of
// its output and completes; dev-user's oldest output is what goes.
func TestDiskFilledByOneUser(t *testing.T) {
	state := t.TempDir()
	if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size=48m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(state, unix.MNT_DETACH) })
	s := startDevServer(t, state, "--output-cap", "16M", "--user-output", "1G", "--state-dir-reserve", "1M")
	// bob writes a line every 20 ms for the whole test.
	bob := s.detach("bob", "sh", "-c", "i=0; while [ $i -lt 400 ]; do echo bob line $i; i=$((i+1)); sleep 0.02; done")
	// dev-user writes 5 × 15 MiB: more than the disk holds. (A start may
	// be refused below the reserve: that is the reserve at work.)
	refused := 0
	for range 5 {
		r, err := s.client("user").StartJob(context.Background(), &jobworkerv1.StartJobRequest{Command: "head", Args: []string{"-c", "15728640", "/dev/zero"}})
		if status.Code(err) == codes.ResourceExhausted {
			refused++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		s.wait(r.GetJob().GetId())
	}
	t.Logf("dev-user's starts refused below the reserve: %d of 5", refused)
	st := s.wait(bob)
	if st.GetState().String() != "JOB_STATE_COMPLETED" {
		t.Fatalf("bob's job beside a full disk: %v %v %q, want COMPLETED", st.GetState(), st.GetReason(), st.GetMessage())
	}
	out := s.cli("bob", "logs", bob).out
	if n := strings.Count(out, "\n"); n != 400 || !strings.HasPrefix(out, "bob line 0\n") || !strings.HasSuffix(out, "bob line 399\n") {
		t.Errorf("bob's output beside a full disk: %d lines, want all 400", n)
	}
	if !strings.Contains(s.serverLog(), "the state directory is full") {
		t.Errorf("the server did not say it freed space; its log:\n%s", s.serverLog())
	}
}
