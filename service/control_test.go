//go:build !integration

package service

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/jobworker/jobworker/testcerts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// controlCalls are the job control RPCs, each with a request that is valid
// but for the job it names.
var controlCalls = map[string]func(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string) error{
	"SignalJob": func(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string) error {
		_, err := c.SignalJob(ctx, &jobworkerv1.SignalJobRequest{Id: id, Signal: "USR1"})
		return err
	},
	"PauseJob": func(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string) error {
		_, err := c.PauseJob(ctx, &jobworkerv1.PauseJobRequest{Id: id})
		return err
	},
	"ResumeJob": func(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string) error {
		_, err := c.ResumeJob(ctx, &jobworkerv1.ResumeJobRequest{Id: id})
		return err
	},
	"UpdateJob": func(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string) error {
		w := uint32(50)
		_, err := c.UpdateJob(ctx, &jobworkerv1.UpdateJobRequest{Id: id, Limits: &jobworkerv1.Limits{CpuWeight: &w}})
		return err
	},
}

// TestServiceControlRoles: the role table and the ownership rule for the
// job control RPCs, over mutual TLS. A reader may call none of them
// (PermissionDenied, before any job is looked at); a user reaches its own
// jobs only, another user's answering NotFound as a job that does not
// exist, by whole ID or by prefix; an admin reaches every job. The jobs
// have ended, so a call that reaches one is FailedPrecondition.
func TestServiceControlRoles(t *testing.T) {
	s := testcerts.New(t)
	addr := rbacServe(t, s)
	clients := map[string]jobworkerv1.JobWorkerServiceClient{
		"admin":  rbacDial(t, addr, s.CA.CertFile, s.Admin),
		"alice":  rbacDial(t, addr, s.CA.CertFile, s.User),
		"bob":    rbacDial(t, addr, s.CA.CertFile, s.User2),
		"reader": rbacDial(t, addr, s.CA.CertFile, s.Reader),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const (
		unknown  = "00000000-0000-4000-8000-00000000f00d"
		aliceJob = "00000000-0000-4000-8000-00000000a001"
		bobJob   = "00000000-0000-4000-8000-00000000b001"
		bobPre   = "00000000-0000-4000-8000-00000000b"
		carolJob = "00000000-0000-4000-8000-00000000c001"
	)
	tests := []struct {
		caller, id string
		want       codes.Code
	}{
		{"alice", aliceJob, codes.FailedPrecondition},
		{"alice", bobJob, codes.NotFound},
		{"alice", bobPre, codes.NotFound},
		{"alice", carolJob, codes.NotFound},
		{"bob", bobJob, codes.FailedPrecondition},
		{"bob", "00000000", codes.FailedPrecondition}, // his only job
		{"bob", aliceJob, codes.NotFound},
		{"admin", aliceJob, codes.FailedPrecondition},
		{"admin", carolJob, codes.FailedPrecondition},
		{"admin", unknown, codes.NotFound},
		{"reader", aliceJob, codes.PermissionDenied},
		{"reader", bobJob, codes.PermissionDenied},
		{"reader", unknown, codes.PermissionDenied},
	}
	for rpc, call := range controlCalls {
		for _, tt := range tests {
			err := call(ctx, clients[tt.caller], tt.id)
			if got := status.Code(err); got != tt.want {
				t.Errorf("%s: %s(%s) = %v, want code %v", tt.caller, rpc, tt.id, err, tt.want)
				continue
			}
			if tt.want == codes.NotFound {
				if want := "job " + tt.id + " not found"; status.Convert(err).Message() != want {
					t.Errorf("%s: %s(%s) = %q, want %q, as for a job that does not exist", tt.caller, rpc, tt.id, status.Convert(err).Message(), want)
				}
			}
			if tt.want == codes.FailedPrecondition && !strings.Contains(status.Convert(err).Message(), "it has ended (completed)") {
				t.Errorf("%s: %s(%s) = %q, want it to say the job has ended", tt.caller, rpc, tt.id, status.Convert(err).Message())
			}
		}
	}
}

// TestServicePrefixes: every RPC that names a job takes a unique prefix of
// its ID among the caller's jobs; an ambiguous one is InvalidArgument
// listing the caller's candidates only; a prefix of other users' jobs only
// is NotFound, worded as for a prefix of no job.
func TestServicePrefixes(t *testing.T) {
	s := testcerts.New(t)
	addr := rbacServe(t, s)
	alice := rbacDial(t, addr, s.CA.CertFile, s.User)
	bob := rbacDial(t, addr, s.CA.CertFile, s.User2)
	admin := rbacDial(t, addr, s.CA.CertFile, s.Admin)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Each RPC that names a job, by a prefix of one job of bob's.
	for rpc, call := range rbacCalls {
		gotID, _, out, err := call(ctx, bob, "00000000-0000-4000")
		if rpc == "GetJobOutput" {
			gotID = "00000000-0000-4000-8000-00000000b001" // the output says which job
		}
		if err != nil || gotID != "00000000-0000-4000-8000-00000000b001" {
			t.Errorf("bob: %s(prefix of his only job) = %s, %v; want that job", rpc, gotID, err)
		}
		if rpc == "GetJobOutput" && out != rbacOutput("00000000-0000-4000-8000-00000000b001") {
			t.Errorf("bob: GetJobOutput by prefix = %q, want the job's output", out)
		}
	}

	status1 := func(c jobworkerv1.JobWorkerServiceClient, id string) error {
		_, _, _, err := rbacCalls["GetJobStatus"](ctx, c, id)
		return err
	}
	err := status1(alice, "00000000-0000-4000-8000-00000000")
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("alice: GetJobStatus(a prefix of her two jobs) = %v, want InvalidArgument", err)
	}
	msg := status.Convert(err).Message()
	for _, id := range rbacIDs("alice") {
		if !strings.Contains(msg, id) {
			t.Errorf("alice: the ambiguous prefix's error %q does not list her job %s", msg, id)
		}
	}
	for _, id := range rbacIDs("bob", "carol", "admin") {
		if strings.Contains(msg, id) {
			t.Errorf("alice: the ambiguous prefix's error %q lists %s, another user's job", msg, id)
		}
	}
	if err := status1(admin, "00000000"); status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "matches 5 jobs") {
		t.Errorf("admin: GetJobStatus(a prefix of every job) = %v, want InvalidArgument naming 5 jobs", err)
	}

	// A prefix of bob's job only, and one of no job: the same answer.
	other, none := status1(alice, "00000000-0000-4000-8000-00000000b0"), status1(alice, "00000000-0000-4000-8000-00000000e0")
	if status.Code(other) != codes.NotFound || status.Code(none) != codes.NotFound ||
		strings.ReplaceAll(status.Convert(other).Message(), "b0", "e0") != status.Convert(none).Message() {
		t.Errorf("alice: a prefix of bob's job = %v, one of no job = %v; want the same NotFound", other, none)
	}
	for _, bad := range []string{"0000000", "00000000-0000-4000-8000-00000000a0010", "ZZZZZZZZ", ""} {
		if err := status1(alice, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("alice: GetJobStatus(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}

// TestServiceUpdateRules: UpdateJob checks its limits before the job's
// state, with StartJob's rule: a user may not lift the memory or pids
// limit past the server's default (an admin may) nor past the job's own
// limit when an admin set it higher, but may lower it; and memory high and
// io max cannot be updated.
func TestServiceUpdateRules(t *testing.T) {
	s := testcerts.New(t)
	addr := rbacServe(t, s)
	alice := rbacDial(t, addr, s.CA.CertFile, s.User)
	admin := rbacDial(t, addr, s.CA.CertFile, s.Admin)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const aliceJob = "00000000-0000-4000-8000-00000000a001"
	u32 := func(v uint32) *uint32 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	f64 := func(v float64) *float64 { return &v }
	tests := []struct {
		caller string
		limits *jobworkerv1.Limits
		want   codes.Code
	}{
		{"alice", &jobworkerv1.Limits{MemoryMaxBytes: u64(rbacDefaultMemory + 1)}, codes.PermissionDenied},
		{"alice", &jobworkerv1.Limits{PidsMax: u64(rbacDefaultPids + 1)}, codes.PermissionDenied},
		{"alice", &jobworkerv1.Limits{MemoryMaxBytes: u64(rbacDefaultMemory)}, codes.FailedPrecondition}, // allowed; the job has ended
		{"admin", &jobworkerv1.Limits{MemoryMaxBytes: u64(rbacDefaultMemory + 1)}, codes.FailedPrecondition},
		{"admin", &jobworkerv1.Limits{PidsMax: u64(rbacDefaultPids * 10)}, codes.FailedPrecondition},
		{"alice", &jobworkerv1.Limits{MemoryMaxBytes: u64(1024)}, codes.InvalidArgument},
		{"alice", &jobworkerv1.Limits{CpuWeight: u32(0)}, codes.InvalidArgument},
		{"alice", &jobworkerv1.Limits{CpuWeight: u32(10001)}, codes.InvalidArgument},
		{"alice", &jobworkerv1.Limits{Cpus: f64(0)}, codes.FailedPrecondition}, // 0: remove the cap
		{"alice", &jobworkerv1.Limits{Cpus: f64(0.001)}, codes.InvalidArgument},
		{"alice", &jobworkerv1.Limits{PidsMax: u64(0)}, codes.InvalidArgument},
		{"alice", &jobworkerv1.Limits{MemoryHighBytes: u64(32 << 20)}, codes.InvalidArgument},
		{"alice", &jobworkerv1.Limits{IoMax: []*jobworkerv1.IOMax{{Device: "8:0", ReadBps: 1}}}, codes.InvalidArgument},
		{"alice", &jobworkerv1.Limits{}, codes.InvalidArgument}, // nothing to change
		{"alice", nil, codes.InvalidArgument},
	}
	for _, tt := range tests {
		c := map[string]jobworkerv1.JobWorkerServiceClient{"alice": alice, "admin": admin}[tt.caller]
		_, err := c.UpdateJob(ctx, &jobworkerv1.UpdateJobRequest{Id: aliceJob, Limits: tt.limits})
		if got := status.Code(err); got != tt.want {
			t.Errorf("%s: UpdateJob(%v) = %v, want code %v", tt.caller, tt.limits, err, tt.want)
		}
	}

	// A job whose limits an admin lifted past the defaults: its user may
	// lower them (to a value still past the default), not raise them.
	lifted := []struct {
		limits *jobworkerv1.Limits
		want   codes.Code
	}{
		{&jobworkerv1.Limits{MemoryMaxBytes: u64(rbacLiftedMemory / 2)}, codes.FailedPrecondition}, // allowed; the job has ended
		{&jobworkerv1.Limits{MemoryMaxBytes: u64(rbacLiftedMemory)}, codes.FailedPrecondition},
		{&jobworkerv1.Limits{PidsMax: u64(rbacLiftedPids / 2)}, codes.FailedPrecondition},
		{&jobworkerv1.Limits{MemoryMaxBytes: u64(rbacLiftedMemory + 1)}, codes.PermissionDenied},
		{&jobworkerv1.Limits{PidsMax: u64(rbacLiftedPids + 1)}, codes.PermissionDenied},
	}
	for _, tt := range lifted {
		_, err := alice.UpdateJob(ctx, &jobworkerv1.UpdateJobRequest{Id: rbacLiftedJob, Limits: tt.limits})
		if got := status.Code(err); got != tt.want {
			t.Errorf("alice: UpdateJob(%v) of her job lifted by an admin = %v, want code %v", tt.limits, err, tt.want)
		}
	}
	if _, err := alice.SignalJob(ctx, &jobworkerv1.SignalJobRequest{Id: aliceJob, Signal: "STOP"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("SignalJob(STOP) = %v, want InvalidArgument", err)
	}
}

// TestJobControlErrorCodes: the job control errors of the job library, as
// its Update and Signal wrap them, answer the codes the API promises: a
// higher memory limit that does not fit now or ever RESOURCE_EXHAUSTED, one
// below the job's usage and a control the job's state does not allow
// FAILED_PRECONDITION, with the library's message kept.
func TestJobControlErrorCodes(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("%w: job x asks 1 bytes", job.ErrNoRoom), codes.ResourceExhausted},
		{fmt.Errorf("%w: 2 bytes asked, capacity 1", job.ErrNeverFits), codes.ResourceExhausted},
		{fmt.Errorf("%w: job x uses 5 bytes now", job.ErrBelowUsage), codes.FailedPrecondition},
		{fmt.Errorf("wrapped: %w", job.ErrJobState), codes.FailedPrecondition},
	}
	for _, tt := range tests {
		err := jobError(tt.err)
		if got := status.Code(err); got != tt.want {
			t.Errorf("jobError(%v) = %v, want code %v", tt.err, err, tt.want)
		}
		if status.Convert(err).Message() != tt.err.Error() {
			t.Errorf("jobError(%v) says %q, want the library's message", tt.err, status.Convert(err).Message())
		}
	}
}
