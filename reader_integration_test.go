//go:build integration

package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/auth"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// cpuTicks is the CPU time (user and system, in clock ticks) pid used so
// far.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// utime and stime are fields 14 and 15; the command name, in
	// parentheses, may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// slowClient is an API client as who whose connection lets the server send
// only a little ahead of what the test receives, so that a stream's server
// side is still reading the log when the test acts.
func (s *devServer) slowClient(who string) jobworkerv1.JobWorkerServiceClient {
	s.t.Helper()
	f := s.flags(s.addr, who)
	tc, err := auth.ClientConfig(f.CA, f.Cert, f.Key, "127.0.0.1")
	if err != nil {
		s.t.Fatal(err)
	}
	cc, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cc.Close() })
	return jobworkerv1.NewJobWorkerServiceClient(cc)
}

// TestReaderOfPrunedJob: a reader in the middle of a finished job's output
// when retention removes the job gets NOT_FOUND; the server's CPU stays
// idle afterwards; and a follower of the pruned job, and the reader's
// stream, leave no goroutine behind once their clients cancel.
func TestReaderOfPrunedJob(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "debug.sock")
	s := startDevServer(t, t.TempDir(), "--retain-count", "1", "--debug-socket", sock)
	api := s.client("user")
	start := func(args ...string) string {
		r, err := api.StartJob(context.Background(), &jobworkerv1.StartJobRequest{Command: "sh", Args: append([]string{"-c"}, args...)})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetJob().GetId()
	}
	// 64 MiB of output, more than the stream can hold in flight.
	big := start("head -c 67108864 /dev/zero")
	if st := s.wait(big); st.GetOutputSize() != 64<<20 {
		t.Fatalf("the big job's output is %d bytes, want 64 MiB", st.GetOutputSize())
	}
	slow := s.slowClient("user")
	if _, err := slow.ListJobs(context.Background(), &jobworkerv1.ListJobsRequest{PageSize: 1}); err != nil {
		t.Fatal(err)
	}
	g0 := s.goroutines() // with the slow client's connection made
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := slow.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: big})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	// The next job's end prunes the big one (--retain-count 1).
	s.wait(start("true"))
	var got int64
	for {
		r, err := stream.Recv()
		if err == nil {
			got += int64(len(r.GetData()))
			continue
		}
		if status.Code(err) != codes.NotFound {
			t.Fatalf("the reader of a pruned job after %d more bytes: %v, want NOT_FOUND", got, err)
		}
		t.Logf("the reader of the pruned job got %d more bytes, then %v", got, err)
		break
	}
	if got >= 64<<20-1<<20 {
		t.Fatalf("the reader got all the output (%d bytes) before the prune; the test proves nothing", got)
	}
	// A reader of the pruned job from now on: NOT_FOUND at once.
	late, err := api.GetJobOutput(context.Background(), &jobworkerv1.GetJobOutputRequest{Id: big, Follow: true})
	if err == nil {
		_, err = late.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("a new reader of the pruned job: %v, want NOT_FOUND", err)
	}
	// Idle: over two seconds the server uses at most 5% of a CPU.
	c0 := cpuTicks(t, s.pid())
	time.Sleep(2 * time.Second) // the measurement window, not a synchronisation
	if used := cpuTicks(t, s.pid()) - c0; used > 10 {
		t.Errorf("the server used %d clock ticks in 2 s after the reader of a pruned job ended, want it idle (at most 10)", used)
	}
	cancel()
	eventually(t, 10*time.Second, "the server's goroutines back to the baseline", func() bool { return s.goroutines() <= g0 })
}
