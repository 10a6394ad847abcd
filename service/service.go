// Package service is jobworker's gRPC API over the job library: the
// handlers, the conversions between the API's messages and the library's
// types, and the server that puts them behind mutual TLS, the role table
// and the request checks.
package service

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"time"

	"github.com/jobworker/jobworker/auth"
	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/internal/codec"
	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/jobworker/jobworker/ringlog"
	"github.com/jobworker/jobworker/shim"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Config is what the service serves and how.
type Config struct {
	Jobs    *job.Manager
	Cgroups *cgroupfs.Hierarchy // whose controllers GetServerStatus reports
	TLS     *tls.Config         // the server's mutual TLS configuration
	Log     *slog.Logger        // one audit line per RPC
	Version string              // what GetServerStatus reports

	// DefaultMemory and DefaultPids are the limits only an admin may lift
	// (0: no such bound).
	DefaultMemory uint64
	DefaultPids   uint64
	// DefaultNetwork is the network of a job that asks for none
	// (empty: the host's); only an admin may ask for the host's network
	// when it is job.NetworkNone.
	DefaultNetwork job.Network
	// MaxStreams bounds the concurrent streams of one connection.
	MaxStreams uint32
	// Metrics, when set, are counted (its OnEvent should be the job
	// manager's); NewServer adds the job manager's figures to them.
	Metrics *Metrics
	// Conns bounds and tracks the connections (nil: NewConns(0)).
	Conns *Conns
}

// MaxRequestBytes bounds a request message: a job's command, arguments
// and environment together are bounded to job.MaxRequestBytes (256 KiB)
// by the job library; the rest (names, labels, limits) is small.
const MaxRequestBytes = 512 << 10

// writeBufferBytes is how much of the HTTP/2 frames a connection's writer
// gathers before it hands them to TLS: sixteen of gRPC's 16 KiB frames.
const writeBufferBytes = 256 << 10

// Server is the gRPC server of the API, with the health and reflection
// services beside it.
type Server struct {
	grpc   *grpc.Server
	health *health.Server
	conns  *Conns
}

// NewServer builds the server: every call is authenticated by the client
// certificate, authorized by the role table (MethodRoles), and its strings
// checked for UTF-8, before a handler sees it.
func NewServer(cfg Config) *Server {
	authz := auth.NewAuthorizer(cfg.Log, MethodRoles())
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Conns == nil {
		cfg.Conns = NewConns(0)
	}
	a := newAPI(cfg, authz)
	cfg.Metrics.reg.MustRegister(newJobsCollector(cfg.Jobs, a.out))
	srv := grpc.NewServer(
		grpc.Creds(cfg.Conns.Credentials(credentials.NewTLS(cfg.TLS))),
		grpc.ConnectionTimeout(HandshakeTimeout),
		// Metrics first: a call the authorizer refuses is counted too.
		grpc.ChainUnaryInterceptor(cfg.Metrics.unaryInterceptor, authz.UnaryInterceptor, utf8Unary),
		grpc.ChainStreamInterceptor(cfg.Metrics.streamInterceptor, authz.StreamInterceptor, utf8Stream),
		grpc.StatsHandler(connStats{cfg.Metrics}),
		grpc.MaxConcurrentStreams(cfg.MaxStreams),
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, MaxConnectionIdle: IdleTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Output chunks are sent from the buffers they were read into
		// (codec.Chunk); gRPC's buffers are not cleared before each use.
		grpc.ForceServerCodecV2(codec.New()),
		experimental.BufferPool(codec.NewPool()),
		// Frames go to TLS in batches of writeBufferBytes (the buffer is
		// a connection's only while it writes); what arrives is read
		// from TLS, which buffers a record, without a copy into a
		// buffer of gRPC's as well.
		grpc.WriteBufferSize(writeBufferBytes),
		grpc.ReadBufferSize(0),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	registerReflection(srv)
	jobworkerv1.RegisterJobWorkerServiceServer(srv, a)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(jobworkerv1.JobWorkerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	return &Server{grpc: srv, health: hs, conns: cfg.Conns}
}

// Serve serves on lis, within the bound of connections, until Shutdown or
// Stop.
func (s *Server) Serve(lis net.Listener) error { return s.grpc.Serve(s.conns.Listener(lis)) }

// Shutdown reports the server not serving, accepts no new connection and
// no new call, and returns once the calls in progress have ended.
func (s *Server) Shutdown() {
	s.health.Shutdown()
	s.grpc.GracefulStop()
}

// Stop ends every connection and call at once.
func (s *Server) Stop() { s.grpc.Stop() }

// api is the JobWorkerService over the job library. The interceptors have
// authenticated the caller and checked its role for the RPC; api applies
// the ownership rule and validates requests.
type api struct {
	jobworkerv1.UnimplementedJobWorkerServiceServer
	m        *job.Manager
	authz    *auth.Authorizer
	h        *cgroupfs.Hierarchy
	version  string
	defaults defaults
	out      outputStreams
	metrics  *Metrics
}

// defaults are the limits only an admin may lift.
type defaults struct {
	memory  uint64
	pids    uint64
	network job.Network
}

func newAPI(cfg Config, authz *auth.Authorizer) *api {
	return &api{
		m: cfg.Jobs, authz: authz, h: cfg.Cgroups, version: cfg.Version,
		defaults: defaults{memory: cfg.DefaultMemory, pids: cfg.DefaultPids, network: cfg.DefaultNetwork},
		out:      newOutputStreams(),
		metrics:  cfg.Metrics,
	}
}

func identity(ctx context.Context) auth.Identity {
	id, _ := auth.FromContext(ctx)
	return id
}

// jobError maps the job library's errors to gRPC status errors with a
// message that says what is wrong.
func jobError(err error) error {
	var se *shim.StartError
	var mce *cgroupfs.MissingControllerError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, job.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, job.ErrNeverFits), errors.Is(err, job.ErrNoRoom), errors.Is(err, job.ErrQuota):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, job.ErrJobState), errors.Is(err, job.ErrBelowUsage):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, job.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ringlog.ErrRemoved):
		return status.Error(codes.NotFound, "the job's output was removed by retention")
	case errors.Is(err, job.ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.As(err, &se):
		return status.Errorf(codes.FailedPrecondition, "cannot start the command: %v", se)
	case errors.As(err, &mce), errors.Is(err, cgroupfs.ErrNoIOWeight):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, job.ErrUIDsExhausted):
		return status.Errorf(codes.ResourceExhausted, "%v: the server needs a wider --uid-range for a new user", err)
	case errors.Is(err, job.ErrStateFull):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, err.Error())
}

// lookup finds a job the caller may see by its ID or a unique prefix of
// it, for every RPC that names a job: the returned status has the whole
// ID, which the handler then uses. A malformed ID is InvalidArgument; an
// unknown one, a prefix of none of the caller's jobs, or another user's
// job (for a user) NotFound, with the same message; a prefix of several
// of the caller's jobs InvalidArgument, listing those only.
func (s *api) lookup(ctx context.Context, method, id string) (job.Status, error) {
	if !job.ValidIDPrefix(id) {
		return job.Status{}, status.Errorf(codes.InvalidArgument, "malformed job ID %q: want a UUID like 6f9619ff-8b86-4011-b42d-00c04fc964ff, or a unique prefix of it of at least %d characters", truncate(id, 64), job.MinIDPrefix)
	}
	full := id
	if !job.ValidID(id) {
		// A whole ID goes to AuthorizeJob as it is, which logs a denial.
		caller := identity(ctx)
		var err error
		full, err = s.m.Resolve(id, func(owner string) bool { return auth.JobVisible(caller, owner) })
		if errors.Is(err, job.ErrAmbiguous) {
			return job.Status{}, status.Error(codes.InvalidArgument, err.Error())
		}
		if err != nil {
			return job.Status{}, status.Errorf(codes.NotFound, "job %s not found", id)
		}
	}
	st, err := s.m.Get(full)
	if err != nil {
		return job.Status{}, status.Errorf(codes.NotFound, "job %s not found", id)
	}
	if err := s.authz.AuthorizeJob(ctx, method, full, st.Owner); err != nil {
		return job.Status{}, status.Errorf(codes.NotFound, "job %s not found", id)
	}
	return st, nil
}

// checkLift applies the rule of limits at start and at update: only an
// admin may lift the memory or pids limit past the server's default.
func (s *api) checkLift(ctx context.Context, memory, pids uint64) error {
	if identity(ctx).Role == auth.RoleAdmin {
		return nil
	}
	if s.defaults.memory > 0 && memory > s.defaults.memory {
		return status.Errorf(codes.PermissionDenied, "memory limit %d bytes is above the server's default of %d: only an admin may lift it", memory, s.defaults.memory)
	}
	if s.defaults.pids > 0 && pids > s.defaults.pids {
		return status.Errorf(codes.PermissionDenied, "pids limit %d is above the server's default of %d: only an admin may lift it", pids, s.defaults.pids)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// StartJob starts a job for the caller.
func (s *api) StartJob(ctx context.Context, req *jobworkerv1.StartJobRequest) (*jobworkerv1.StartJobResponse, error) {
	id := identity(ctx)
	limits, err := limitsFromProto(req.GetLimits())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.checkLift(ctx, limits.MemoryMax, limits.PidsMax); err != nil {
		return nil, err
	}
	network, err := s.network(id, req.GetNetwork())
	if err != nil {
		return nil, err
	}
	var timeout time.Duration
	if t := req.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			// In the service's own words: protobuf's vary on purpose.
			return nil, status.Errorf(codes.InvalidArgument, "timeout of %d s and %d ns is not a duration (at most 10000 years, seconds and nanoseconds of one sign)", t.GetSeconds(), t.GetNanos())
		}
		timeout = t.AsDuration()
	}
	st, err := s.m.Start(job.Request{
		Owner:   id.User,
		Command: req.GetCommand(),
		Args:    req.GetArgs(),
		Env:     req.GetEnv(),
		Dir:     req.GetWorkingDir(),
		Limits:  limits,
		Timeout: timeout,
		// Another user's request ID is another key: Owner is part of it.
		RequestID: req.GetRequestId(),
		Network:   network,
		SecretEnv: req.GetSecretEnv(),
		Name:      req.GetName(),
		Labels:    req.GetLabels(),
	})
	if err != nil {
		return nil, jobError(err)
	}
	return &jobworkerv1.StartJobResponse{Job: jobToProto(st)}, nil
}

// network is the network a job of the caller's asks for: the default when
// it asks for none. Like a limit, a user may restrict it (none where the
// default is the host's) but only an admin may lift it past the default.
func (s *api) network(id auth.Identity, n jobworkerv1.Network) (job.Network, error) {
	def := s.defaults.network
	if def == "" {
		def = job.NetworkHost
	}
	switch n {
	case jobworkerv1.Network_NETWORK_UNSPECIFIED:
		return def, nil
	case jobworkerv1.Network_NETWORK_NONE:
		return job.NetworkNone, nil
	case jobworkerv1.Network_NETWORK_HOST:
		if def == job.NetworkNone && id.Role != auth.RoleAdmin {
			return "", status.Error(codes.PermissionDenied, "the host's network is past the server's default network none: only an admin may ask for it")
		}
		return job.NetworkHost, nil
	}
	return "", status.Errorf(codes.InvalidArgument, "network %d is not one of host, none", n)
}

// StopJob stops a job and returns its final state.
func (s *api) StopJob(ctx context.Context, req *jobworkerv1.StopJobRequest) (*jobworkerv1.StopJobResponse, error) {
	found, err := s.lookup(ctx, "StopJob", req.GetId())
	if err != nil {
		return nil, err
	}
	var grace *time.Duration
	if g := req.GetGrace(); g != nil {
		if err := g.CheckValid(); err != nil || g.AsDuration() < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "grace must be a non-negative duration")
		}
		d := g.AsDuration()
		grace = &d
	}
	st, err := s.m.Stop(ctx, found.ID, grace)
	if err != nil {
		return nil, jobError(err)
	}
	return &jobworkerv1.StopJobResponse{Job: jobToProto(st)}, nil
}

// GetJobStatus sends a snapshot, or with watch a stream until the job ends.
func (s *api) GetJobStatus(req *jobworkerv1.GetJobStatusRequest, ss grpc.ServerStreamingServer[jobworkerv1.GetJobStatusResponse]) error {
	ctx := ss.Context()
	st, err := s.lookup(ctx, "GetJobStatus", req.GetId())
	if err != nil {
		return err
	}
	if !req.GetWatch() {
		return ss.Send(&jobworkerv1.GetJobStatusResponse{Job: jobToProto(st)})
	}
	interval := time.Second
	if d := req.GetInterval(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 100*time.Millisecond {
			return status.Error(codes.InvalidArgument, "interval must be at least 100ms")
		}
		interval = d.AsDuration()
	}
	return jobError(s.m.Watch(ctx, st.ID, interval, func(st job.Status) error {
		return ss.Send(&jobworkerv1.GetJobStatusResponse{Job: jobToProto(st)})
	}))
}

// ListJobs lists the jobs the caller may see.
func (s *api) ListJobs(ctx context.Context, req *jobworkerv1.ListJobsRequest) (*jobworkerv1.ListJobsResponse, error) {
	f, none, err := visibleFilter(ctx, req.GetOwners(), req.GetStates(), req.GetName(), req.GetLabels())
	if err != nil || none {
		return &jobworkerv1.ListJobsResponse{}, err
	}
	resp, err := s.listPage(f, req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return resp, nil
}

// visibleFilter is the filter of ListJobs and WatchJobs: the one asked,
// narrowed to the jobs the caller may see. none reports that it matches no
// job the caller may see.
func visibleFilter(ctx context.Context, owners []string, states []jobworkerv1.JobState, name string, labels map[string]string) (f job.Filter, none bool, err error) {
	id := identity(ctx)
	f = job.Filter{Owners: owners, Name: name, Labels: labels}
	if f.Name != "" {
		if err := job.CheckName(f.Name); err != nil {
			return f, false, jobError(err)
		}
	}
	if err := job.CheckLabels(f.Labels); err != nil {
		return f, false, jobError(err)
	}
	for _, st := range states {
		js, ok := stateFromProto[st]
		if !ok {
			return f, false, status.Errorf(codes.InvalidArgument, "state filter %v is not a job state", st)
		}
		f.States = append(f.States, js)
	}
	if !auth.JobVisible(id, "") {
		// A user sees its own jobs only, whatever owners it asks for.
		if len(f.Owners) > 0 && !slices.Contains(f.Owners, id.User) {
			return f, true, nil
		}
		f.Owners = []string{id.User}
	}
	return f, false, nil
}

// GetServerStatus reports the server-wide figures.
func (s *api) GetServerStatus(ctx context.Context, req *jobworkerv1.GetServerStatusRequest) (*jobworkerv1.GetServerStatusResponse, error) {
	t := s.m.Totals()
	return &jobworkerv1.GetServerStatusResponse{
		Version:             s.version,
		JobsRunning:         uint32(t.Running),
		JobsPending:         uint32(t.Pending),
		MaxRunning:          uint32(t.MaxRunning),
		MemoryCapacityBytes: t.MemoryCapacity,
		MemoryReservedBytes: t.MemoryReserved,
		Usage:               usageToProto(t.Usage),
		CgroupControllers:   s.h.Controllers(),
		CpuCount:            uint32(runtime.NumCPU()),
	}, nil
}
