//go:build !integration

package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestServerStatusControllers: the server's controllers are listed, and a
// server without any says so rather than printing an empty field.
func TestServerStatusControllers(t *testing.T) {
	tests := []struct {
		controllers []string
		want        string
	}{
		{[]string{"cpu", "io", "memory", "pids"}, "Controllers cpu io memory pids\n"},
		{[]string{"pids"}, "Controllers pids\n"},
		{nil, "Controllers none (jobs get their cgroups, without limits)\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		printServerStatus(&b, &jobworkerv1.GetServerStatusResponse{CgroupControllers: tt.controllers})
		if !strings.HasSuffix(b.String(), tt.want) {
			t.Errorf("status with controllers %q:\n%s\nwant it to end %q", tt.controllers, b.String(), tt.want)
		}
	}
}

// TestWithFlagNames: the server's limit errors name the run flag to change;
// other answers pass unchanged.
func TestWithFlagNames(t *testing.T) {
	tests := []struct {
		code codes.Code
		msg  string
		want string
	}{
		{codes.InvalidArgument, "memory_max_bytes 10240 is below the minimum of 1048576 (1 MiB)", "--memory-limit 10240 is below the minimum of 1048576 (1 MiB)"},
		{codes.InvalidArgument, "cpu_weight 0 is out of range 1-10000", "--cpu-weight 0 is out of range 1-10000"},
		{codes.InvalidArgument, "cpus -1 is out of range 0.01-4096", "--cpus -1 is out of range 0.01-4096"},
		{codes.InvalidArgument, "io_weight 0 is out of range 1-10000", "--io-weight 0 is out of range 1-10000"},
		{codes.InvalidArgument, "pids_max 0: a job needs at least one process", "--pids-limit 0: a job needs at least one process"},
		{codes.InvalidArgument, "cpusets are not limits", "cpusets are not limits"},
		{codes.InvalidArgument, "invalid job request: empty command", "invalid job request: empty command"},
		{codes.PermissionDenied, "cpu_weight 5 is not yours", "cpu_weight 5 is not yours"},
	}
	for _, tt := range tests {
		got := status.Convert(withFlagNames(status.Error(tt.code, tt.msg)))
		if got.Code() != tt.code || got.Message() != tt.want {
			t.Errorf("withFlagNames(%v %q) = %v %q, want %q", tt.code, tt.msg, got.Code(), got.Message(), tt.want)
		}
	}
}

// stoppingClient answers StopJob with stop (after the output's first
// chunk was taken) and streams first, then nothing until the call ends.
type stoppingClient struct {
	jobworkerv1.JobWorkerServiceClient
	first   string
	taken   chan struct{}
	stop    func() (*jobworkerv1.StopJobResponse, error)
	streams chan context.Context
}

func (c *stoppingClient) StopJob(ctx context.Context, _ *jobworkerv1.StopJobRequest, _ ...grpc.CallOption) (*jobworkerv1.StopJobResponse, error) {
	<-c.taken
	return c.stop()
}

func (c *stoppingClient) GetJobOutput(ctx context.Context, r *jobworkerv1.GetJobOutputRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[jobworkerv1.GetJobOutputResponse], error) {
	c.streams <- ctx
	return &silentStream{ctx: ctx, first: &jobworkerv1.GetJobOutputResponse{Offset: r.GetOffset(), Data: []byte(c.first)}, taken: c.taken}, nil
}

type silentStream struct {
	grpc.ServerStreamingClient[jobworkerv1.GetJobOutputResponse]
	ctx   context.Context
	first *jobworkerv1.GetJobOutputResponse
	taken chan struct{}
}

func (s *silentStream) Recv() (*jobworkerv1.GetJobOutputResponse, error) {
	if r := s.first; r != nil {
		s.first = nil
		return r, nil
	}
	close(s.taken)
	<-s.ctx.Done()
	return nil, status.FromContextError(s.ctx.Err()).Err()
}

// TestStopInterruptedEnds: an interrupted run prints the job's output while
// it stops and does not wait for ever for the rest of it: once the job has
// stopped, the output gets outputAfterStop, then run says what is missing
// and exits with the job's status; a stop that fails ends the output at
// once and exits 130.
func TestStopInterruptedEnds(t *testing.T) {
	code := int32(7)
	tests := []struct {
		name     string
		stop     func() (*jobworkerv1.StopJobResponse, error)
		exit     int
		stderr   string
		noStderr string
	}{
		{
			"stopped, the output never ends",
			func() (*jobworkerv1.StopJobResponse, error) {
				return &jobworkerv1.StopJobResponse{Job: &jobworkerv1.Job{Id: "j", State: jobworkerv1.JobState_JOB_STATE_STOPPED, ExitCode: &code}}, nil
			},
			7, "the rest of the output of job j: not received within 50ms of the job's end", "",
		},
		{
			"the stop fails",
			func() (*jobworkerv1.StopJobResponse, error) {
				return nil, status.Error(codes.Unavailable, "connection refused")
			},
			130, "", "the rest of the output",
		},
	}
	for _, tt := range tests {
		c := &stoppingClient{first: "last words\n", taken: make(chan struct{}), stop: tt.stop, streams: make(chan context.Context, 1)}
		var stdout, stderr strings.Builder
		err := (&runCmd{outputAfterStop: 50 * time.Millisecond}).stopInterrupted(&env{ctx: context.Background(), stdout: &stdout, stderr: &stderr}, c, "j", 0)
		var ee *exitCodeError
		if !errors.As(err, &ee) || ee.code != tt.exit {
			t.Errorf("%s: %v, want exit %d", tt.name, err, tt.exit)
		}
		if stdout.String() != "last words\n" {
			t.Errorf("%s: stdout %q, want the job's last words", tt.name, stdout.String())
		}
		if !strings.Contains(stderr.String(), tt.stderr) || (tt.noStderr != "" && strings.Contains(stderr.String(), tt.noStderr)) {
			t.Errorf("%s: stderr %q, want %q in it and not %q", tt.name, stderr.String(), tt.stderr, tt.noStderr)
		}
		if ctx := <-c.streams; ctx.Err() == nil {
			t.Errorf("%s: the output's call was not ended", tt.name)
		}
	}
}

// flakyStarter answers StartJob with the errors in fails, one per call,
// then with a job; it keeps every request it got.
type flakyStarter struct {
	jobworkerv1.JobWorkerServiceClient
	fails []error
	got   []*jobworkerv1.StartJobRequest
}

func (f *flakyStarter) StartJob(ctx context.Context, req *jobworkerv1.StartJobRequest, _ ...grpc.CallOption) (*jobworkerv1.StartJobResponse, error) {
	f.got = append(f.got, proto.Clone(req).(*jobworkerv1.StartJobRequest))
	if len(f.got) <= len(f.fails) {
		return nil, f.fails[len(f.got)-1]
	}
	return &jobworkerv1.StartJobResponse{Job: &jobworkerv1.Job{Id: "j"}}, nil
}

// TestStartJobRetries: run sends a request ID with its StartJob and, when
// the connection failed, sends the same request again (so that the server
// returns the first job if it had started one), a bounded number of times;
// an answer from the server is never retried.
func TestStartJobRetries(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "connection reset")
	tests := []struct {
		name  string
		fails []error
		tries int
		calls int
		code  codes.Code
	}{
		{"answered at once", nil, 5, 1, codes.OK},
		{"the connection failed twice", []error{unavailable, unavailable}, 5, 3, codes.OK},
		{"the connection always fails", []error{unavailable, unavailable, unavailable}, 3, 3, codes.Unavailable},
		{"the server refused", []error{status.Error(codes.InvalidArgument, "no")}, 5, 1, codes.InvalidArgument},
	}
	for _, tt := range tests {
		f := &flakyStarter{fails: tt.fails}
		req := &jobworkerv1.StartJobRequest{Command: "true", RequestId: job.NewID()}
		var notes strings.Builder
		_, err := startJob(context.Background(), f, req, tt.tries, &notes)
		if status.Code(err) != tt.code || len(f.got) != tt.calls {
			t.Errorf("%s: %v after %d calls, want %v after %d", tt.name, err, len(f.got), tt.code, tt.calls)
		}
		for i, r := range f.got {
			if r.GetRequestId() != req.GetRequestId() {
				t.Errorf("%s: call %d carried request ID %q, want %q", tt.name, i+1, r.GetRequestId(), req.GetRequestId())
			}
		}
	}

}
