//go:build !integration

package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/auth"
	"github.com/jobworker/jobworker/internal/testchild"
	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/jobworker/jobworker/ringlog"
	"github.com/jobworker/jobworker/testcerts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// The jobs of rbacServe's server, by owner. alice and bob are the users of
// testcerts; carol has no certificate; admin is the admin's own job.
var rbacJobs = []struct{ id, owner string }{
	{"00000000-0000-4000-8000-00000000a001", "alice"},
	{"00000000-0000-4000-8000-00000000a002", "alice"},
	{"00000000-0000-4000-8000-00000000b001", "bob"},
	{"00000000-0000-4000-8000-00000000c001", "carol"},
	{"00000000-0000-4000-8000-0000000ad001", "admin"},
}

// rbacIDs are the IDs of rbacJobs owned by any of owners (all: none given),
// sorted.
func rbacIDs(owners ...string) []string {
	var ids []string
	for _, j := range rbacJobs {
		if len(owners) == 0 || slices.Contains(owners, j.owner) {
			ids = append(ids, j.id)
		}
	}
	slices.Sort(ids)
	return ids
}

// The server defaults of rbacServe's server, which only an admin may lift.
const (
	rbacDefaultMemory = 64 << 20
	rbacDefaultPids   = 100
)

// rbacLiftedJob is a job of alice's whose memory and pids limits an admin
// lifted past the defaults, to rbacLiftedMemory and rbacLiftedPids.
const (
	rbacLiftedJob    = "00000000-0000-4000-8000-00000000a002"
	rbacLiftedMemory = 4 * rbacDefaultMemory
	rbacLiftedPids   = 4 * rbacDefaultPids
)

// rbacOutput is what job id printed.
func rbacOutput(id string) string { return "output of " + id + "\n" }

// rbacServe serves the real service over the real job.Manager, behind the
// interceptors serveCmd.Run installs, with mutual TLS on loopback. The
// manager is opened as a restarted server opens one: on a state directory
// holding the records and output of rbacJobs, finished jobs of several
// owners. Its cgroup hierarchy is the real cgroupfs.Setup over a directory
// standing in for a cgroup2 mount with no controllers: no job is started,
// so none is needed, and the test needs neither root nor cgroups.
func rbacServe(t *testing.T, s *testcerts.Set) string {
	t.Helper()
	h := testchild.FakeHierarchy(t)

	state := t.TempDir()
	created := time.Now().Add(-time.Hour)
	for i, j := range rbacJobs {
		dir := filepath.Join(state, "jobs", j.id)
		log, err := ringlog.Create(filepath.Join(dir, "output"), ringlog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(log, rbacOutput(j.id)); err != nil {
			t.Fatal(err)
		}
		if err := log.Close(); err != nil {
			t.Fatal(err)
		}
		// A record as the job library writes it (job/record.go).
		rec := map[string]any{
			"version": 1, "id": j.id, "owner": j.owner, "command": "/bin/echo", "args": []string{"output", "of", j.id}, "dir": "/",
			"state": string(job.StateCompleted), "exit_code": 0,
			"created": created.Add(time.Duration(i) * time.Second), "started": created, "ended": created.Add(time.Minute),
			"limits": map[string]any{}, "usage": map[string]any{},
		}
		if j.id == rbacLiftedJob {
			rec["limits"] = map[string]any{"MemoryMax": rbacLiftedMemory, "PidsMax": rbacLiftedPids}
		}
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "job.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m, err := job.Open(job.Config{StateDir: state, Cgroups: h, OnError: func(err error) { t.Errorf("job manager: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.List(job.Filter{})); got != len(rbacJobs) {
		t.Fatalf("the job manager loaded %d jobs, want %d", got, len(rbacJobs))
	}

	tlsState, err := auth.NewServerTLS(s.Server.CertFile, s.Server.KeyFile, s.CA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Config{Jobs: m, Cgroups: h, TLS: tlsState.Config(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DefaultMemory: rbacDefaultMemory, DefaultPids: rbacDefaultPids})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		<-done
		if err := m.Close(context.Background()); err != nil {
			t.Errorf("close the job manager: %v", err)
		}
	})
	return lis.Addr().String()
}

func rbacDial(t *testing.T, addr, ca string, c testcerts.Cert) jobworkerv1.JobWorkerServiceClient {
	t.Helper()
	cfg, err := auth.ClientConfig(ca, c.CertFile, c.KeyFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return jobworkerv1.NewJobWorkerServiceClient(conn)
}

// rbacCall is one call of a job's RPC; it returns the ID and owner of the
// job the answer describes, and the output for GetJobOutput.
type rbacCall func(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string) (gotID, owner, output string, err error)

var rbacCalls = map[string]rbacCall{
	"GetJobStatus": func(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string) (string, string, string, error) {
		ss, err := c.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: id})
		if err != nil {
			return "", "", "", err
		}
		resp, err := ss.Recv()
		return resp.GetJob().GetId(), resp.GetJob().GetOwner(), "", err
	},
	"StopJob": func(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string) (string, string, string, error) {
		resp, err := c.StopJob(ctx, &jobworkerv1.StopJobRequest{Id: id})
		return resp.GetJob().GetId(), resp.GetJob().GetOwner(), "", err
	},
	"GetJobOutput": func(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string) (string, string, string, error) {
		ss, err := c.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: id})
		if err != nil {
			return "", "", "", err
		}
		var out strings.Builder
		for {
			resp, err := ss.Recv()
			if errors.Is(err, io.EOF) {
				return id, "", out.String(), nil
			}
			if err != nil {
				return "", "", out.String(), err
			}
			out.Write(resp.GetData())
		}
	},
}

// TestServiceOwnership: the service's ownership rule, end to end over mutual
// TLS. ListJobs shows admin and reader every job and a user only its own,
// whatever owners it asks for; a user's GetJobStatus, StopJob and
// GetJobOutput on another user's job answer NotFound with the message of a
// job that does not exist, while on its own job, and for admin and reader
// on anyone's, they answer for that job.
func TestServiceOwnership(t *testing.T) {
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

	lists := []struct {
		caller string
		owners []string // the request's owner filter
		want   []string
	}{
		{"admin", nil, rbacIDs()},
		{"admin", []string{"bob"}, rbacIDs("bob")},
		{"admin", []string{"alice", "carol"}, rbacIDs("alice", "carol")},
		{"reader", nil, rbacIDs()},
		{"reader", []string{"carol"}, rbacIDs("carol")},
		{"alice", nil, rbacIDs("alice")},
		{"alice", []string{"alice"}, rbacIDs("alice")},
		{"alice", []string{"bob"}, nil},
		{"alice", []string{"bob", "carol"}, nil},
		{"alice", []string{"alice", "bob"}, rbacIDs("alice")},
		{"bob", nil, rbacIDs("bob")},
		{"bob", []string{"alice", "admin"}, nil},
	}
	for _, tt := range lists {
		resp, err := clients[tt.caller].ListJobs(ctx, &jobworkerv1.ListJobsRequest{Owners: tt.owners})
		if err != nil {
			t.Errorf("%s: ListJobs(owners %q) = %v, want OK", tt.caller, tt.owners, err)
			continue
		}
		var got []string
		for _, j := range resp.GetJobs() {
			got = append(got, j.GetId())
			if !slices.Contains(rbacIDs(j.GetOwner()), j.GetId()) {
				t.Errorf("%s: ListJobs(owners %q) gives job %s with owner %q, want its owner", tt.caller, tt.owners, j.GetId(), j.GetOwner())
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: ListJobs(owners %q) = %q, want %q", tt.caller, tt.owners, got, tt.want)
		}
	}

	const (
		unknown  = "00000000-0000-4000-8000-00000000f00d" // no such job
		aliceJob = "00000000-0000-4000-8000-00000000a001"
		bobJob   = "00000000-0000-4000-8000-00000000b001"
		carolJob = "00000000-0000-4000-8000-00000000c001"
		adminJob = "00000000-0000-4000-8000-0000000ad001"
	)
	owner := map[string]string{aliceJob: "alice", bobJob: "bob", carolJob: "carol", adminJob: "admin"}
	tests := []struct {
		caller, rpc, id string
		want            codes.Code
	}{
		{"alice", "GetJobStatus", aliceJob, codes.OK},
		{"alice", "GetJobStatus", bobJob, codes.NotFound},
		{"alice", "GetJobStatus", carolJob, codes.NotFound},
		{"alice", "GetJobStatus", adminJob, codes.NotFound},
		{"alice", "StopJob", aliceJob, codes.OK},
		{"alice", "StopJob", bobJob, codes.NotFound},
		{"alice", "StopJob", adminJob, codes.NotFound},
		{"alice", "GetJobOutput", aliceJob, codes.OK},
		{"alice", "GetJobOutput", bobJob, codes.NotFound},
		{"alice", "GetJobOutput", carolJob, codes.NotFound},
		{"bob", "GetJobStatus", aliceJob, codes.NotFound},
		{"bob", "StopJob", aliceJob, codes.NotFound},
		{"bob", "GetJobOutput", aliceJob, codes.NotFound},
		{"bob", "GetJobOutput", bobJob, codes.OK},
		{"admin", "GetJobStatus", bobJob, codes.OK},
		{"admin", "StopJob", carolJob, codes.OK},
		{"admin", "GetJobOutput", aliceJob, codes.OK},
		{"reader", "GetJobStatus", aliceJob, codes.OK},
		{"reader", "GetJobOutput", bobJob, codes.OK},
		{"reader", "StopJob", bobJob, codes.PermissionDenied}, // the role table, before ownership
	}
	for _, tt := range tests {
		call := rbacCalls[tt.rpc]
		gotID, gotOwner, out, err := call(ctx, clients[tt.caller], tt.id)
		if got := status.Code(err); got != tt.want {
			t.Errorf("%s: %s(%s's job) = %v, want code %v", tt.caller, tt.rpc, owner[tt.id], err, tt.want)
			continue
		}
		switch {
		case tt.want == codes.NotFound:
			// Indistinguishable from a job that does not exist.
			_, _, _, unknownErr := call(ctx, clients[tt.caller], unknown)
			want := strings.ReplaceAll(status.Convert(unknownErr).Message(), unknown, tt.id)
			if got := status.Convert(err).Message(); status.Code(unknownErr) != codes.NotFound || got != want {
				t.Errorf("%s: %s(%s's job) = %q, want %q, as for a job that does not exist (%v)", tt.caller, tt.rpc, owner[tt.id], got, want, unknownErr)
			}
			if out != "" {
				t.Errorf("%s: %s(%s's job) sent output %q before NotFound", tt.caller, tt.rpc, owner[tt.id], out)
			}
		case tt.want == codes.OK && tt.rpc == "GetJobOutput":
			if want := rbacOutput(tt.id); out != want {
				t.Errorf("%s: GetJobOutput(%s's job) = %q, want %q", tt.caller, owner[tt.id], out, want)
			}
		case tt.want == codes.OK:
			if gotID != tt.id || gotOwner != owner[tt.id] {
				t.Errorf("%s: %s(%s's job) answers for job %s of %q, want %s of %q", tt.caller, tt.rpc, owner[tt.id], gotID, gotOwner, tt.id, owner[tt.id])
			}
		}
	}
}
