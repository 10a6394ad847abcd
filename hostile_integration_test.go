//go:build integration

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	be "encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/auth"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// rawCodec sends and receives messages as the bytes they are, so a test
// can send what the generated code would refuse to encode.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// tlsConfig is the client TLS configuration of who.
func (s *devServer) tlsConfig(who string) *tls.Config {
	s.t.Helper()
	f := s.flags(s.addr, who)
	cfg, err := auth.ClientConfig(f.CA, f.Cert, f.Key, "127.0.0.1")
	if err != nil {
		s.t.Fatal(err)
	}
	return cfg
}

// hostileCase is one hostile request and the answer it must get.
type hostileCase struct {
	name string
	call func(ctx context.Context) error
	code codes.Code
	msg  string // a part of the status message
}

// TestHostileRequests: requests built to break the server each get the
// documented status code and a message that says what is wrong, and the
// server serves on with its memory untouched.
func TestHostileRequests(t *testing.T) {
	s := startDevServer(t, rootDir(t))
	user, admin := s.client("user"), s.client("admin")
	id := s.detach("user", "echo", "a job to ask about")
	s.wait(id)

	start := func(c jobworkerv1.JobWorkerServiceClient, req *jobworkerv1.StartJobRequest) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.StartJob(ctx, req)
			return err
		}
	}
	args := func(n, size int) []string {
		a := make([]string, n)
		for i := range a {
			a[i] = strings.Repeat("a", size)
		}
		return a
	}
	env := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprintf("K%06d", i)] = "v"
		}
		return m
	}
	limits := func(l *jobworkerv1.Limits) *jobworkerv1.StartJobRequest {
		return &jobworkerv1.StartJobRequest{Command: "true", Limits: l}
	}
	jobStatus := func(id string) func(context.Context) error {
		return func(ctx context.Context) error {
			st, err := user.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: id})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}
	}
	output := func(req *jobworkerv1.GetJobOutputRequest) func(context.Context) error {
		return func(ctx context.Context) error {
			st, err := user.GetJobOutput(ctx, req)
			if err != nil {
				return err
			}
			for {
				if _, err := st.Recv(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		}
	}

	tests := []hostileCase{
		{"NUL in the command", start(user, &jobworkerv1.StartJobRequest{Command: "/bin/true\x00/bin/sh"}), codes.InvalidArgument, "command holds a NUL byte"},
		{"NUL in an argument", start(user, &jobworkerv1.StartJobRequest{Command: "echo", Args: []string{"a", "b\x00c"}}), codes.InvalidArgument, "argument 2 holds a NUL byte"},
		{"NUL in an environment value", start(user, &jobworkerv1.StartJobRequest{Command: "true", Env: map[string]string{"A": "x\x00LD_PRELOAD=/x"}}), codes.InvalidArgument, "environment variable A holds a NUL byte"},
		{"10 MB of arguments", start(user, &jobworkerv1.StartJobRequest{Command: "true", Args: args(10, 1<<20)}), codes.ResourceExhausted, "received message larger than max"},
		{"1 MB of arguments", start(user, &jobworkerv1.StartJobRequest{Command: "true", Args: args(1, 1<<20)}), codes.ResourceExhausted, "received message larger than max"},
		{"300 KiB of arguments", start(user, &jobworkerv1.StartJobRequest{Command: "true", Args: args(3, 100<<10)}), codes.InvalidArgument, "arguments are 307200 bytes, over the limit of 262144"},
		{"5000 arguments", start(user, &jobworkerv1.StartJobRequest{Command: "true", Args: args(5000, 1)}), codes.InvalidArgument, "5000 arguments, over the limit of 4096"},
		{"100k environment entries", start(user, &jobworkerv1.StartJobRequest{Command: "true", Env: env(100000)}), codes.ResourceExhausted, "received message larger than max"},
		{"2000 environment entries", start(user, &jobworkerv1.StartJobRequest{Command: "true", Env: env(2000)}), codes.InvalidArgument, "2000 environment variables, over the limit of 1024"},
		{"environment name with =", start(user, &jobworkerv1.StartJobRequest{Command: "true", Env: map[string]string{"PATH=/tmp:x": "y"}}), codes.InvalidArgument, "environment variable name"},
		{"environment JOBWORKER_JOB_ID", start(user, &jobworkerv1.StartJobRequest{Command: "true", Env: map[string]string{"JOBWORKER_JOB_ID": id}}), codes.InvalidArgument, "set by the server"},
		{"relative working dir", start(user, &jobworkerv1.StartJobRequest{Command: "true", WorkingDir: "../../etc"}), codes.InvalidArgument, "not an absolute path"},
		{"working dir with ..", start(user, &jobworkerv1.StartJobRequest{Command: "true", WorkingDir: "/tmp/../../etc"}), codes.InvalidArgument, "not a clean path"},
		{"working dir the job may not enter", start(user, &jobworkerv1.StartJobRequest{Command: "true", WorkingDir: s.state}), codes.FailedPrecondition, "permission denied"},
		{"relative command with ..", start(user, &jobworkerv1.StartJobRequest{Command: "../../bin/sh"}), codes.InvalidArgument, "is a relative path"},
		{"command not found", start(user, &jobworkerv1.StartJobRequest{Command: "no-such-command"}), codes.FailedPrecondition, "not found"},
		{"empty command", start(user, &jobworkerv1.StartJobRequest{}), codes.InvalidArgument, "empty command"},
		{"negative cpus", start(user, limits(&jobworkerv1.Limits{Cpus: proto.Float64(-1)})), codes.InvalidArgument, "cpus -1 is out of range"},
		{"NaN cpus", start(user, limits(&jobworkerv1.Limits{Cpus: proto.Float64(math.NaN())})), codes.InvalidArgument, "out of range"},
		{"huge cpus", start(user, limits(&jobworkerv1.Limits{Cpus: proto.Float64(math.MaxFloat64)})), codes.InvalidArgument, "out of range"},
		{"cpu weight 0", start(user, limits(&jobworkerv1.Limits{CpuWeight: proto.Uint32(0)})), codes.InvalidArgument, "cpu_weight 0 is out of range 1-10000"},
		{"cpu weight 10001", start(user, limits(&jobworkerv1.Limits{CpuWeight: proto.Uint32(10001)})), codes.InvalidArgument, "cpu_weight 10001 is out of range"},
		{"memory 1 byte", start(user, limits(&jobworkerv1.Limits{MemoryMaxBytes: proto.Uint64(1)})), codes.InvalidArgument, "below the minimum"},
		{"memory 2^64-1 as a user", start(user, limits(&jobworkerv1.Limits{MemoryMaxBytes: proto.Uint64(math.MaxUint64)})), codes.PermissionDenied, "only an admin may lift it"},
		{"memory 2^64-1 as admin", start(admin, limits(&jobworkerv1.Limits{MemoryMaxBytes: proto.Uint64(math.MaxUint64)})), codes.ResourceExhausted, "exceeds the server's memory capacity"},
		{"pids 0", start(user, limits(&jobworkerv1.Limits{PidsMax: proto.Uint64(0)})), codes.InvalidArgument, "pids_max 0"},
		{"pids 2^64-1 as a user", start(user, limits(&jobworkerv1.Limits{PidsMax: proto.Uint64(math.MaxUint64)})), codes.PermissionDenied, "only an admin may lift it"},
		{"io weight 0", start(user, limits(&jobworkerv1.Limits{IoWeight: proto.Uint32(0)})), codes.InvalidArgument, "io_weight 0 is out of range"},
		{"io device path traversal", start(user, limits(&jobworkerv1.Limits{IoMax: []*jobworkerv1.IOMax{{Device: "/dev/../etc/passwd", ReadBps: 1}}})), codes.InvalidArgument, "not a block device"},
		{"io device garbage", start(user, limits(&jobworkerv1.Limits{IoMax: []*jobworkerv1.IOMax{{Device: "8:0\nmax", ReadBps: 1}}})), codes.InvalidArgument, "want a block device path or MAJ:MIN"},
		{"negative timeout", start(user, &jobworkerv1.StartJobRequest{Command: "true", Timeout: durationpb.New(-time.Second)}), codes.InvalidArgument, "invalid job request: negative timeout -1s"},
		{"timeout past what a duration holds", start(user, &jobworkerv1.StartJobRequest{Command: "true", Timeout: &durationpb.Duration{Seconds: math.MaxInt64}}), codes.InvalidArgument, "timeout of 9223372036854775807 s and 0 ns is not a duration (at most 10000 years, seconds and nanoseconds of one sign)"},
		{"invalid UTF-8 in the command", func(ctx context.Context) error {
			return s.rawCall(ctx, "user", "/jobworker.v1.JobWorkerService/StartJob", protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "/bin/\xff\xfe"))
		}, codes.InvalidArgument, "command is not valid UTF-8"},
		{"invalid UTF-8 in an env value", start(user, &jobworkerv1.StartJobRequest{Command: "true", Env: map[string]string{"A": "ok\xc3"}}), codes.InvalidArgument, `env["A"] is not valid UTF-8`},
		{"invalid UTF-8 in the job ID of a stream", output(&jobworkerv1.GetJobOutputRequest{Id: "\xff" + id[1:]}), codes.InvalidArgument, "id is not valid UTF-8"},
		{"invalid UTF-8 in an owner filter", func(ctx context.Context) error {
			_, err := admin.ListJobs(ctx, &jobworkerv1.ListJobsRequest{Owners: []string{"dev-user", "\xfe"}})
			return err
		}, codes.InvalidArgument, "owners[1] is not valid UTF-8"},
		{"garbage for a message", func(ctx context.Context) error {
			return s.rawCall(ctx, "user", "/jobworker.v1.JobWorkerService/StartJob", []byte{0xff, 0xff, 0xff, 0xff, 0xff})
		}, codes.Internal, "failed to unmarshal"},
		{"a 1 GB message announced", func(ctx context.Context) error { return s.hugeMessage(ctx) }, codes.ResourceExhausted, "received message larger than max (1073741824 vs. 524288)"},
		{"empty job ID", jobStatus(""), codes.InvalidArgument, "malformed job ID"},
		{"job ID with path traversal", jobStatus("../../../../etc/passwd"), codes.InvalidArgument, "malformed job ID"},
		{"job ID of 100k bytes", jobStatus(strings.Repeat("a", 100000)), codes.InvalidArgument, "malformed job ID"},
		{"job ID in upper case", jobStatus(strings.ToUpper(id)), codes.InvalidArgument, "malformed job ID"},
		{"unknown job ID", jobStatus("6f9619ff-8b86-4011-b42d-00c04fc964ff"), codes.NotFound, "not found"},
		{"output offset past the end", output(&jobworkerv1.GetJobOutputRequest{Id: id, Offset: math.MaxInt64}), codes.OutOfRange, "past the end of the output"},
		{"output offset most negative", func(ctx context.Context) error {
			// The most negative offset counts back past the start: the
			// whole output.
			st, err := user.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: id, Offset: math.MinInt64})
			if err != nil {
				return err
			}
			var got []byte
			for {
				r, err := st.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				got = append(got, r.GetData()...)
			}
			if string(got) != "a job to ask about\n" {
				return fmt.Errorf("the whole output is %q, got %q", "a job to ask about\n", got)
			}
			return nil
		}, codes.OK, ""},
		{"negative stop grace", func(ctx context.Context) error {
			_, err := user.StopJob(ctx, &jobworkerv1.StopJobRequest{Id: id, Grace: durationpb.New(-time.Second)})
			return err
		}, codes.InvalidArgument, "grace must be a non-negative duration"},
		{"watch interval of 1ns", func(ctx context.Context) error {
			st, err := user.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: id, Watch: true, Interval: durationpb.New(1)})
			if err == nil {
				_, err = st.Recv()
			}
			return err
		}, codes.InvalidArgument, "interval must be at least 100ms"},
		{"unknown state filter", func(ctx context.Context) error {
			_, err := user.ListJobs(ctx, &jobworkerv1.ListJobsRequest{States: []jobworkerv1.JobState{99}})
			return err
		}, codes.InvalidArgument, "state filter 99 is not a job state"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := tt.call(ctx)
		cancel()
		st := statusOf(err)
		t.Logf("%-36s %-18v %s", tt.name, st.Code(), st.Message())
		if st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) {
			t.Errorf("%s: %v %q, want %v and %q", tt.name, st.Code(), st.Message(), tt.code, tt.msg)
		}
	}

	// The server serves on, and never held the hostile sizes in memory.
	if r := s.cli("user", "run", "--", "echo", "still serving"); r.out != "still serving\n" {
		t.Errorf("a job after the hostile requests: %q %q", r.out, r.err)
	}
	if hwm := procStatus(t, s.pid(), "VmHWM"); hwm > 200<<10 {
		t.Errorf("server peak RSS %d KiB, want under 200 MiB", hwm)
	} else {
		t.Logf("server peak RSS after the hostile requests: %d KiB", hwm)
	}
	if log := s.serverLog(); strings.Contains(log, "panic") {
		t.Errorf("the server log holds a panic:\n%s", log)
	}
}

func statusOf(err error) *status.Status {
	if st, ok := status.FromError(err); ok {
		return st
	}
	return status.New(codes.Unknown, err.Error())
}

// rawCall sends msg, bytes as they are, to method as who.
func (s *devServer) rawCall(ctx context.Context, who, method string, msg []byte) error {
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(credentials.NewTLS(s.tlsConfig(who))))
	if err != nil {
		return err
	}
	defer conn.Close()
	var out []byte
	return conn.Invoke(ctx, method, msg, &out, grpc.ForceCodecV2(rawCodec{}))
}

// hugeMessage starts a StartJob call whose gRPC frame announces a 1 GiB
// message, sends the first MiB of it, and returns the status the server
// answers with, without ever holding 1 GiB on either side.
func (s *devServer) hugeMessage(ctx context.Context) error {
	cfg := s.tlsConfig("user")
	cfg.NextProtos = []string{"h2"}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true,
		DialContext: (&net.Dialer{}).DialContext}
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		var hdr [5]byte
		be.BigEndian.PutUint32(hdr[1:], 1<<30)
		pw.Write(hdr[:])
		pw.Write(make([]byte, 1<<20))
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+s.addr+"/jobworker.v1.JobWorkerService/StartJob", pr)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	code, msg := resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	if code == "" {
		io.Copy(io.Discard, resp.Body)
		code, msg = resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	}
	var c uint32
	if _, err := fmt.Sscan(code, &c); err != nil {
		return fmt.Errorf("HTTP %d with no grpc-status (%q)", resp.StatusCode, code)
	}
	return status.Error(codes.Code(c), decodeGRPCMessage(msg))
}

// decodeGRPCMessage undoes the percent-encoding of grpc-message.
func decodeGRPCMessage(m string) string {
	var b bytes.Buffer
	for i := 0; i < len(m); i++ {
		if m[i] == '%' && i+2 < len(m) {
			var v byte
			if _, err := fmt.Sscanf(m[i+1:i+3], "%02X", &v); err == nil {
				b.WriteByte(v)
				i += 2
				continue
			}
		}
		b.WriteByte(m[i])
	}
	return b.String()
}
