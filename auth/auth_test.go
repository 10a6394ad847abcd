//go:build !integration

package auth_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/auth"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/jobworker/jobworker/service"
	"github.com/jobworker/jobworker/testcerts"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeService is a tiny JobWorkerService with one job per user, owned by
// that user, so that the RBAC table can be tested without the job library.
type fakeService struct {
	jobworkerv1.UnimplementedJobWorkerServiceServer
	authz *auth.Authorizer
	jobs  map[string]string // id -> owner
}

func (f *fakeService) job(ctx context.Context, method, id string) (*jobworkerv1.Job, error) {
	owner, ok := f.jobs[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "job %s not found", id)
	}
	if err := f.authz.AuthorizeJob(ctx, method, id, owner); err != nil {
		return nil, err
	}
	return &jobworkerv1.Job{Id: id, Owner: owner}, nil
}

func (f *fakeService) StartJob(ctx context.Context, req *jobworkerv1.StartJobRequest) (*jobworkerv1.StartJobResponse, error) {
	id, _ := auth.FromContext(ctx)
	return &jobworkerv1.StartJobResponse{Job: &jobworkerv1.Job{Id: "new", Owner: id.User}}, nil
}

func (f *fakeService) StopJob(ctx context.Context, req *jobworkerv1.StopJobRequest) (*jobworkerv1.StopJobResponse, error) {
	j, err := f.job(ctx, "StopJob", req.GetId())
	if err != nil {
		return nil, err
	}
	return &jobworkerv1.StopJobResponse{Job: j}, nil
}

func (f *fakeService) GetJobStatus(req *jobworkerv1.GetJobStatusRequest, ss grpc.ServerStreamingServer[jobworkerv1.GetJobStatusResponse]) error {
	j, err := f.job(ss.Context(), "GetJobStatus", req.GetId())
	if err != nil {
		return err
	}
	return ss.Send(&jobworkerv1.GetJobStatusResponse{Job: j})
}

func (f *fakeService) GetJobOutput(req *jobworkerv1.GetJobOutputRequest, ss grpc.ServerStreamingServer[jobworkerv1.GetJobOutputResponse]) error {
	if _, err := f.job(ss.Context(), "GetJobOutput", req.GetId()); err != nil {
		return err
	}
	return ss.Send(&jobworkerv1.GetJobOutputResponse{Data: []byte("out")})
}

func (f *fakeService) ListJobs(ctx context.Context, req *jobworkerv1.ListJobsRequest) (*jobworkerv1.ListJobsResponse, error) {
	id, _ := auth.FromContext(ctx)
	resp := &jobworkerv1.ListJobsResponse{}
	for jid, owner := range f.jobs {
		if auth.JobVisible(id, owner) {
			resp.Jobs = append(resp.Jobs, &jobworkerv1.Job{Id: jid, Owner: owner})
		}
	}
	return resp, nil
}

// startServer serves the fake service over mutual TLS on loopback, with
// jobworker's method table.
func startServer(t *testing.T, st *auth.ServerTLS) string {
	t.Helper()
	return startServerTable(t, st, service.MethodRoles())
}

// startServerTable is startServer with the method-to-role table given.
func startServerTable(t *testing.T, st *auth.ServerTLS, table map[string][]auth.Role) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	authz := auth.NewAuthorizer(log, table)
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(st.Config())),
		grpc.UnaryInterceptor(authz.UnaryInterceptor),
		grpc.StreamInterceptor(authz.StreamInterceptor),
	)
	jobworkerv1.RegisterJobWorkerServiceServer(srv, &fakeService{authz: authz, jobs: map[string]string{
		"job-admin": "admin", "job-alice": "alice", "job-bob": "bob", "job-reader": "reader",
	}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

func dial(t *testing.T, addr string, cfg *tls.Config) jobworkerv1.JobWorkerServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return jobworkerv1.NewJobWorkerServiceClient(conn)
}

func clientConfig(t *testing.T, ca string, c testcerts.Cert) *tls.Config {
	t.Helper()
	cfg, err := auth.ClientConfig(ca, c.CertFile, c.KeyFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newServerTLS(t *testing.T, s *testcerts.Set) *auth.ServerTLS {
	t.Helper()
	st, err := auth.NewServerTLS(s.Server.CertFile, s.Server.KeyFile, s.CA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestHandshake: every valid role gets in; every bad client is refused
// during the handshake. Each case is tried twice: over raw TLS, where the
// server's alert is read back exactly (the client always presents its
// certificate, even one the server's CA list does not name), and as a gRPC
// call, which fails with Unavailable.
func TestHandshake(t *testing.T) {
	s := testcerts.New(t)
	addr := startServer(t, newServerTLS(t, s))

	tests := []struct {
		name  string
		cert  *testcerts.Cert // nil: no client certificate
		tls12 bool
		alert string // "" for success
	}{
		{"admin", &s.Admin, false, ""},
		{"user", &s.User, false, ""},
		{"reader", &s.Reader, false, ""},
		{"untrusted CA", &s.Untrusted, false, "tls: unknown certificate authority"},
		{"expired", &s.Expired, false, "tls: expired certificate"},
		{"not yet valid", &s.NotYetValid, false, "tls: expired certificate"},
		{"no client certificate", nil, false, "tls: certificate required"},
		{"server usage as client", &s.ServerAsClient, false, "tls: bad certificate"},
		{"no role", &s.NoRole, false, "tls: bad certificate"},
		{"unknown role", &s.UnknownRole, false, "tls: bad certificate"},
		{"unsafe common name", &s.BadName, false, "tls: bad certificate"},
		{"TLS 1.2 only", &s.Admin, true, "tls: protocol version not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clientConfig(t, s.CA.CertFile, s.Admin)
			cfg.Certificates = nil
			if tt.cert != nil {
				pair, err := tls.LoadX509KeyPair(tt.cert.CertFile, tt.cert.KeyFile)
				if err != nil {
					t.Fatal(err)
				}
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
			}
			if tt.tls12 {
				cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			}

			// Raw TLS: in TLS 1.3 the server judges the client's
			// certificate after the client's side of the handshake is done,
			// so its verdict arrives on the first read.
			raw := cfg.Clone()
			raw.NextProtos = []string{"h2"}
			conn, err := tls.Dial("tcp", addr, raw)
			if err == nil {
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			if tt.alert == "" {
				// A good client reads the server's HTTP/2 settings frame.
				if err != nil {
					t.Fatalf("raw TLS: %v, want a successful handshake", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.alert) {
				t.Fatalf("raw TLS: %v, want %q", err, tt.alert)
			}

			c := dial(t, addr, cfg)
			_, err = c.ListJobs(context.Background(), &jobworkerv1.ListJobsRequest{})
			want := codes.OK
			if tt.alert != "" {
				want = codes.Unavailable
			}
			if got := status.Code(err); got != want {
				t.Fatalf("gRPC ListJobs: %v, want code %v", err, want)
			}
		})
	}
}

// TestRBAC: 3 roles x 5 RPCs x (own job, another user's job).
func TestRBAC(t *testing.T) {
	s := testcerts.New(t)
	addr := startServer(t, newServerTLS(t, s))
	clients := map[string]jobworkerv1.JobWorkerServiceClient{
		"admin":  dial(t, addr, clientConfig(t, s.CA.CertFile, s.Admin)),
		"alice":  dial(t, addr, clientConfig(t, s.CA.CertFile, s.User)),
		"reader": dial(t, addr, clientConfig(t, s.CA.CertFile, s.Reader)),
	}
	ctx := context.Background()
	calls := map[string]func(c jobworkerv1.JobWorkerServiceClient, job string) error{
		"StartJob": func(c jobworkerv1.JobWorkerServiceClient, job string) error {
			_, err := c.StartJob(ctx, &jobworkerv1.StartJobRequest{Command: "/bin/true"})
			return err
		},
		"StopJob": func(c jobworkerv1.JobWorkerServiceClient, job string) error {
			_, err := c.StopJob(ctx, &jobworkerv1.StopJobRequest{Id: job})
			return err
		},
		"GetJobStatus": func(c jobworkerv1.JobWorkerServiceClient, job string) error {
			st, err := c.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: job})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		},
		"GetJobOutput": func(c jobworkerv1.JobWorkerServiceClient, job string) error {
			st, err := c.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: job})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		},
		"ListJobs": func(c jobworkerv1.JobWorkerServiceClient, job string) error {
			_, err := c.ListJobs(ctx, &jobworkerv1.ListJobsRequest{})
			return err
		},
	}
	const (
		ok = codes.OK
		pd = codes.PermissionDenied
		nf = codes.NotFound
	)
	tests := []struct {
		caller, rpc string
		own, other  codes.Code
	}{
		{"admin", "StartJob", ok, ok},
		{"admin", "StopJob", ok, ok},
		{"admin", "GetJobStatus", ok, ok},
		{"admin", "GetJobOutput", ok, ok},
		{"admin", "ListJobs", ok, ok},
		{"alice", "StartJob", ok, ok},
		{"alice", "StopJob", ok, nf},
		{"alice", "GetJobStatus", ok, nf},
		{"alice", "GetJobOutput", ok, nf},
		{"alice", "ListJobs", ok, ok},
		{"reader", "StartJob", pd, pd},
		{"reader", "StopJob", pd, pd},
		{"reader", "GetJobStatus", ok, ok},
		{"reader", "GetJobOutput", ok, ok},
		{"reader", "ListJobs", ok, ok},
	}
	for _, tt := range tests {
		c := clients[tt.caller]
		if got := status.Code(calls[tt.rpc](c, "job-"+tt.caller)); got != tt.own {
			t.Errorf("%s %s on own job: %v, want %v", tt.caller, tt.rpc, got, tt.own)
		}
		if got := status.Code(calls[tt.rpc](c, "job-bob")); got != tt.other {
			t.Errorf("%s %s on bob's job: %v, want %v", tt.caller, tt.rpc, got, tt.other)
		}
	}

	// ListJobs shows a user its own jobs only, everyone else every job.
	for caller, want := range map[string]string{
		"admin":  "job-admin job-alice job-bob job-reader",
		"alice":  "job-alice",
		"reader": "job-admin job-alice job-bob job-reader",
	} {
		resp, err := clients[caller].ListJobs(ctx, &jobworkerv1.ListJobsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range resp.GetJobs() {
			ids = append(ids, j.GetId())
		}
		sort.Strings(ids)
		if got := strings.Join(ids, " "); got != want {
			t.Errorf("%s ListJobs = %q, want %q", caller, got, want)
		}
	}

}

// TestMethodOutsideTable: a method missing from the table is denied to
// everyone, admin included, unary and streaming alike. The server's table is
// jobworker's without GetServerStatus (unary) and GetJobStatus (streaming);
// with the full table the same calls get through the interceptor, so the
// denial comes from the missing entry.
func TestMethodOutsideTable(t *testing.T) {
	s := testcerts.New(t)
	st := newServerTLS(t, s)
	missing := []string{
		jobworkerv1.JobWorkerService_GetServerStatus_FullMethodName,
		jobworkerv1.JobWorkerService_GetJobStatus_FullMethodName,
	}
	table := make(map[string][]auth.Role, len(service.MethodRoles()))
	for m, roles := range service.MethodRoles() {
		table[m] = roles
	}
	for _, m := range missing {
		if _, ok := table[m]; !ok {
			t.Fatalf("MethodRoles lacks %s already; the test would prove nothing", m)
		}
		delete(table, m)
	}
	partial := startServerTable(t, st, table)
	full := startServer(t, st)
	ctx := context.Background()
	calls := map[string]func(c jobworkerv1.JobWorkerServiceClient) error{
		jobworkerv1.JobWorkerService_GetServerStatus_FullMethodName: func(c jobworkerv1.JobWorkerServiceClient) error {
			_, err := c.GetServerStatus(ctx, &jobworkerv1.GetServerStatusRequest{})
			return err
		},
		jobworkerv1.JobWorkerService_GetJobStatus_FullMethodName: func(c jobworkerv1.JobWorkerServiceClient) error {
			ss, err := c.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: "job-admin"})
			if err != nil {
				return err
			}
			_, err = ss.Recv()
			return err
		},
	}
	serverStatus := jobworkerv1.JobWorkerService_GetServerStatus_FullMethodName
	jobStatus := jobworkerv1.JobWorkerService_GetJobStatus_FullMethodName
	tests := []struct {
		cert testcerts.Cert
		role auth.Role
		rpc  string
		full codes.Code // with the full table: past the interceptor
	}{
		// The fake service does not implement GetServerStatus.
		{s.Admin, auth.RoleAdmin, serverStatus, codes.Unimplemented},
		{s.User, auth.RoleUser, serverStatus, codes.PermissionDenied},
		{s.Reader, auth.RoleReader, serverStatus, codes.Unimplemented},
		{s.Admin, auth.RoleAdmin, jobStatus, codes.OK},
		{s.User, auth.RoleUser, jobStatus, codes.NotFound},
		{s.Reader, auth.RoleReader, jobStatus, codes.OK},
	}
	for _, tt := range tests {
		cfg := clientConfig(t, s.CA.CertFile, tt.cert)
		err := calls[tt.rpc](dial(t, partial, cfg))
		want := status.New(codes.PermissionDenied, fmt.Sprintf("role %s may not call %s", tt.role, tt.rpc))
		if got := status.Convert(err); got.Code() != want.Code() || got.Message() != want.Message() {
			t.Errorf("%s %s outside the table: %v, want %v", tt.role, tt.rpc, err, want.Err())
		}
		if got := status.Code(calls[tt.rpc](dial(t, full, cfg))); got != tt.full {
			t.Errorf("%s %s with the full table: %v, want %v", tt.role, tt.rpc, got, tt.full)
		}
	}
}

// TestReload: after a reload with a new client CA, clients of the old CA are
// refused on new connections, clients of the new one get in, a connection
// opened before the reload keeps working, and bad files are refused while
// the ones in use stay.
func TestReload(t *testing.T) {
	s := testcerts.New(t)
	st := newServerTLS(t, s)
	addr := startServer(t, st)
	ctx := context.Background()

	old := dial(t, addr, clientConfig(t, s.CA.CertFile, s.Admin))
	if _, err := old.ListJobs(ctx, &jobworkerv1.ListJobsRequest{}); err != nil {
		t.Fatalf("before reload: %v", err)
	}

	// The untrusted CA becomes the client CA.
	caPEM, err := os.ReadFile(s.UntrustedCA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.CA.CertFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	// The server certificate is still signed by the first CA; clients keep
	// verifying it with that CA, held in memory here.
	serverCA := s.Dir + "/server-ca.crt"
	if err := os.WriteFile(serverCA, s.CA.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	if _, err := old.ListJobs(ctx, &jobworkerv1.ListJobsRequest{}); err != nil {
		t.Errorf("connection opened before the reload: %v, want it to keep working", err)
	}
	fresh := dial(t, addr, clientConfig(t, serverCA, s.Admin))
	if _, err := fresh.ListJobs(ctx, &jobworkerv1.ListJobsRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("old-CA client after reload: %v, want Unavailable", err)
	}
	newCA := dial(t, addr, clientConfig(t, serverCA, s.Untrusted))
	if _, err := newCA.ListJobs(ctx, &jobworkerv1.ListJobsRequest{}); err != nil {
		t.Errorf("new-CA client after reload: %v, want OK", err)
	}

	// Bad files: refused, and the new CA stays in force.
	if err := os.WriteFile(s.CA.CertFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.Reload(); err == nil || !strings.Contains(err.Error(), s.CA.CertFile) {
		t.Errorf("Reload with a bad CA file = %v, want an error naming %s", err, s.CA.CertFile)
	}
	again := dial(t, addr, clientConfig(t, serverCA, s.Untrusted))
	if _, err := again.ListJobs(ctx, &jobworkerv1.ListJobsRequest{}); err != nil {
		t.Errorf("after a refused reload: %v, want the previous CA still in force", err)
	}
}

func TestIdentityFromCertificate(t *testing.T) {
	s := testcerts.New(t)
	tests := []struct {
		name    string
		c       testcerts.Cert
		want    auth.Identity
		wantErr bool
	}{
		{"admin", s.Admin, auth.Identity{User: "admin", Role: auth.RoleAdmin}, false},
		{"user", s.User, auth.Identity{User: "alice", Role: auth.RoleUser}, false},
		{"reader", s.Reader, auth.Identity{User: "reader", Role: auth.RoleReader}, false},
		{"no role", s.NoRole, auth.Identity{}, true},
		{"unknown role", s.UnknownRole, auth.Identity{}, true},
		{"server usage", s.ServerAsClient, auth.Identity{}, true},
		{"bad name", s.BadName, auth.Identity{}, true},
	}
	for _, tt := range tests {
		got, err := auth.IdentityFromCertificate(tt.c.Cert)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: IdentityFromCertificate = %+v, %v; want %+v, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestValidUserName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"alice", true},
		{"dev-user", true},
		{"A.b_c-1", true},
		{"0", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{".", false},
		{"..", false},
		{"-a", false},
		{"_a", false},
		{"a/b", false},
		{"a b", false},
		{"a\x00", false},
		{"ålice", false},
	}
	for _, tt := range tests {
		if got := auth.ValidUserName(tt.in); got != tt.want {
			t.Errorf("ValidUserName(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
