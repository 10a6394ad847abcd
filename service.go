package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobworker/jobworker/auth"
	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/jobworker/jobworker/ringlog"
	"github.com/jobworker/jobworker/shim"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// service is the gRPC API over the job library. The interceptors have
// authenticated the caller and checked its role for the RPC; the service
// applies the ownership rule and validates requests.
type service struct {
	jobworkerv1.UnimplementedJobWorkerServiceServer
	m        *job.Manager
	authz    *auth.Authorizer
	h        *cgroupfs.Hierarchy
	defaults serviceDefaults

	streams atomic.Int64 // GetJobOutput streams open now
}

// serviceDefaults are the limits only an admin may lift.
type serviceDefaults struct {
	memory uint64
	pids   uint64
}

// A GetJobOutput message carries at most about 1 MiB: large enough for
// throughput, well under the default 4 MiB message limit. When many
// streams are open each gets an equal share of outputBudget, down to
// about minOutputChunk, so that the output in flight stays near the budget
// however many follow (a stream whose send waits for flow control holds
// its chunk, and gRPC's send queue about one more).
//
// Each chunk is a power of two less chunkHeadroom, so that the encoded
// message (the data and at most 28 bytes of fields) fits a buffer of that
// power of two: gRPC encodes and decodes each message in a buffer from a
// pool of power-of-two sizes and clears the whole buffer first, so a
// message just over a power of two would cost a buffer twice its size, and
// its clearing, on both ends.
const (
	minOutputChunk = 16 << 10
	chunkHeadroom  = 64
	outputBudget   = 16 << 20
)

// chunkPools hold the coalescing buffers of GetJobOutput streams, one pool
// per chunk size: (minOutputChunk << i) - chunkHeadroom, from 16 KiB to
// 1 MiB.
var chunkPools [7]sync.Pool

func init() {
	for i := range chunkPools {
		size := minOutputChunk<<i - chunkHeadroom
		chunkPools[i].New = func() any { b := make([]byte, size); return &b }
	}
}

// chunkPool is the pool of the largest chunk size within the share of the
// output budget of each of n open streams.
func chunkPool(n int64) *sync.Pool {
	share := outputBudget / max(n, 1)
	i := len(chunkPools) - 1
	for i > 0 && int64(minOutputChunk<<i) > share {
		i--
	}
	return &chunkPools[i]
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
	case errors.Is(err, job.ErrNeverFits):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, job.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, job.ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.As(err, &se):
		return status.Errorf(codes.FailedPrecondition, "cannot start the command: %v", se)
	case errors.As(err, &mce):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, job.ErrStateFull):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, err.Error())
}

// lookup finds a job the caller may see: a malformed ID is InvalidArgument,
// an unknown one or another user's (for a user) NotFound.
func (s *service) lookup(ctx context.Context, method, id string) (job.Status, error) {
	if !job.ValidID(id) {
		return job.Status{}, status.Errorf(codes.InvalidArgument, "malformed job ID %q: want a UUID like 6f9619ff-8b86-4011-b42d-00c04fc964ff", truncate(id, 64))
	}
	st, err := s.m.Get(id)
	if err != nil {
		return job.Status{}, status.Errorf(codes.NotFound, "job %s not found", id)
	}
	if err := s.authz.AuthorizeJob(ctx, method, id, st.Owner); err != nil {
		return job.Status{}, err
	}
	return st, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// StartJob starts a job for the caller.
func (s *service) StartJob(ctx context.Context, req *jobworkerv1.StartJobRequest) (*jobworkerv1.StartJobResponse, error) {
	id := identity(ctx)
	limits, err := limitsFromProto(req.GetLimits())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if id.Role != auth.RoleAdmin {
		if s.defaults.memory > 0 && limits.MemoryMax > s.defaults.memory {
			return nil, status.Errorf(codes.PermissionDenied, "memory limit %d bytes is above the server's default of %d: only an admin may lift it", limits.MemoryMax, s.defaults.memory)
		}
		if s.defaults.pids > 0 && limits.PidsMax > s.defaults.pids {
			return nil, status.Errorf(codes.PermissionDenied, "pids limit %d is above the server's default of %d: only an admin may lift it", limits.PidsMax, s.defaults.pids)
		}
	}
	var timeout time.Duration
	if t := req.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "timeout: %v", err)
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
	})
	if err != nil {
		return nil, jobError(err)
	}
	return &jobworkerv1.StartJobResponse{Job: jobToProto(st)}, nil
}

// limitsFromProto checks and converts requested limits; unset fields stay
// zero (the server's defaults), explicit zeros are refused.
func limitsFromProto(l *jobworkerv1.Limits) (cgroupfs.Limits, error) {
	var out cgroupfs.Limits
	if l == nil {
		return out, nil
	}
	if l.CpuWeight != nil {
		if *l.CpuWeight < 1 || *l.CpuWeight > cgroupfs.MaxCPUWeight {
			return out, fmt.Errorf("cpu_weight %d is out of range 1-%d", *l.CpuWeight, cgroupfs.MaxCPUWeight)
		}
		out.CPUWeight = *l.CpuWeight
	}
	if l.Cpus != nil && *l.Cpus != 0 {
		if math.IsNaN(*l.Cpus) || *l.Cpus < cgroupfs.MinCPUs || *l.Cpus > cgroupfs.MaxCPUs {
			return out, fmt.Errorf("cpus %v is out of range %v-%d", *l.Cpus, cgroupfs.MinCPUs, cgroupfs.MaxCPUs)
		}
		out.CPUs = *l.Cpus
	}
	if l.MemoryMaxBytes != nil {
		if *l.MemoryMaxBytes < cgroupfs.MinMemory {
			return out, fmt.Errorf("memory_max_bytes %d is below the minimum of %d (1 MiB)", *l.MemoryMaxBytes, cgroupfs.MinMemory)
		}
		out.MemoryMax = *l.MemoryMaxBytes
	}
	if l.MemoryHighBytes != nil {
		if *l.MemoryHighBytes < cgroupfs.MinMemory {
			return out, fmt.Errorf("memory_high_bytes %d is below the minimum of %d (1 MiB)", *l.MemoryHighBytes, cgroupfs.MinMemory)
		}
		out.MemoryHigh = *l.MemoryHighBytes
	}
	if l.IoWeight != nil {
		if *l.IoWeight < 1 || *l.IoWeight > cgroupfs.MaxIOWeight {
			return out, fmt.Errorf("io_weight %d is out of range 1-%d", *l.IoWeight, cgroupfs.MaxIOWeight)
		}
		out.IOWeight = *l.IoWeight
	}
	for _, m := range l.IoMax {
		if m.GetReadBps() == 0 && m.GetWriteBps() == 0 && m.GetReadIops() == 0 && m.GetWriteIops() == 0 {
			return out, fmt.Errorf("io_max for %q sets no rate", m.GetDevice())
		}
		out.IOMax = append(out.IOMax, cgroupfs.IOMax{Device: m.GetDevice(), ReadBPS: m.GetReadBps(), WriteBPS: m.GetWriteBps(), ReadIOPS: m.GetReadIops(), WriteIOPS: m.GetWriteIops()})
	}
	if l.PidsMax != nil {
		if *l.PidsMax < 1 {
			return out, errors.New("pids_max 0: a job needs at least one process")
		}
		out.PidsMax = *l.PidsMax
	}
	return out, out.Validate()
}

// StopJob stops a job and returns its final state.
func (s *service) StopJob(ctx context.Context, req *jobworkerv1.StopJobRequest) (*jobworkerv1.StopJobResponse, error) {
	if _, err := s.lookup(ctx, "StopJob", req.GetId()); err != nil {
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
	st, err := s.m.Stop(ctx, req.GetId(), grace)
	if err != nil {
		return nil, jobError(err)
	}
	return &jobworkerv1.StopJobResponse{Job: jobToProto(st)}, nil
}

// GetJobStatus sends a snapshot, or with watch a stream until the job ends.
func (s *service) GetJobStatus(req *jobworkerv1.GetJobStatusRequest, ss grpc.ServerStreamingServer[jobworkerv1.GetJobStatusResponse]) error {
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
	return jobError(s.m.Watch(ctx, req.GetId(), interval, func(st job.Status) error {
		return ss.Send(&jobworkerv1.GetJobStatusResponse{Job: jobToProto(st)})
	}))
}

// GetJobOutput streams output from an offset, following if asked.
func (s *service) GetJobOutput(req *jobworkerv1.GetJobOutputRequest, ss grpc.ServerStreamingServer[jobworkerv1.GetJobOutputResponse]) error {
	ctx := ss.Context()
	if _, err := s.lookup(ctx, "GetJobOutput", req.GetId()); err != nil {
		return err
	}
	log, err := s.m.Output(req.GetId())
	if err != nil {
		return jobError(err)
	}
	off := log.Resolve(req.GetOffset())
	if off > log.Size() {
		return status.Errorf(codes.OutOfRange, "offset %d is past the end of the output (%d bytes)", off, log.Size())
	}
	var dropped int64
	if start := log.Start(); off < start {
		dropped, off = start-off, start
	}
	r := log.NewReader(ctx, off, false)
	defer func() { r.Close() }() // r is replaced when the disk cap overtakes it
	s.streams.Add(1)
	defer s.streams.Add(-1)
	for {
		// A follower waiting for output holds no buffer: thousands of
		// them wait at once. One whose send waits for flow control holds
		// a chunk; chunks shrink as streams grow (chunkPool), which bounds
		// the memory in flight.
		pool := chunkPool(s.streams.Load())
		bp := pool.Get().(*[]byte)
		buf := *bp
		// Coalesce what is there now into one chunk.
		at := r.Offset()
		n := 0
		var err error
		for n < len(buf) {
			var k int
			k, err = r.Read(buf[n:])
			n += k
			if err != nil || k == 0 {
				break
			}
		}
		// The disk cap overtook this reader: skip to what is kept, and say
		// how much was skipped on the chunk after the gap.
		var gap int64
		var de *ringlog.DroppedError
		if errors.As(err, &de) {
			gap = de.Start - r.Offset()
			r.Close()
			r = log.NewReader(ctx, de.Start, false)
			err = nil
		}
		if err != nil && err != io.EOF {
			pool.Put(bp)
			return jobError(err)
		}
		if n > 0 {
			err := ss.Send(&jobworkerv1.GetJobOutputResponse{Offset: at, Data: buf[:n], Dropped: dropped})
			pool.Put(bp)
			if err != nil {
				return err
			}
			dropped = gap
			continue
		}
		pool.Put(bp)
		if de != nil {
			dropped += gap
			continue
		}
		// Nothing more now: done, or wait for more.
		if !req.GetFollow() || log.Closed() && r.Offset() >= log.Size() {
			return nil
		}
		select {
		case <-log.Wait(r.Offset()):
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// ListJobs lists the jobs the caller may see.
func (s *service) ListJobs(ctx context.Context, req *jobworkerv1.ListJobsRequest) (*jobworkerv1.ListJobsResponse, error) {
	id := identity(ctx)
	f := job.Filter{Owners: req.GetOwners()}
	for _, st := range req.GetStates() {
		js, ok := stateFromProto[st]
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "state filter %v is not a job state", st)
		}
		f.States = append(f.States, js)
	}
	if !auth.JobVisible(id, "") {
		// A user sees its own jobs only, whatever owners it asks for.
		if len(f.Owners) > 0 && !slices.Contains(f.Owners, id.User) {
			return &jobworkerv1.ListJobsResponse{}, nil
		}
		f.Owners = []string{id.User}
	}
	resp := &jobworkerv1.ListJobsResponse{}
	for _, st := range s.m.List(f) {
		resp.Jobs = append(resp.Jobs, jobToProto(st))
	}
	return resp, nil
}

// GetServerStatus reports the server-wide figures.
func (s *service) GetServerStatus(ctx context.Context, req *jobworkerv1.GetServerStatusRequest) (*jobworkerv1.GetServerStatusResponse, error) {
	t := s.m.Totals()
	return &jobworkerv1.GetServerStatusResponse{
		Version:             versionString(),
		JobsRunning:         uint32(t.Running),
		JobsPending:         uint32(t.Pending),
		MaxRunning:          uint32(t.MaxRunning),
		MemoryCapacityBytes: t.MemoryCapacity,
		MemoryReservedBytes: t.MemoryReserved,
		Usage:               usageToProto(t.Usage),
		CgroupControllers:   s.h.Controllers(),
	}, nil
}

var stateToProto = map[job.State]jobworkerv1.JobState{
	job.StatePending:   jobworkerv1.JobState_JOB_STATE_PENDING,
	job.StateRunning:   jobworkerv1.JobState_JOB_STATE_RUNNING,
	job.StateCompleted: jobworkerv1.JobState_JOB_STATE_COMPLETED,
	job.StateFailed:    jobworkerv1.JobState_JOB_STATE_FAILED,
	job.StateStopped:   jobworkerv1.JobState_JOB_STATE_STOPPED,
}

var stateFromProto = func() map[jobworkerv1.JobState]job.State {
	m := map[jobworkerv1.JobState]job.State{}
	for k, v := range stateToProto {
		m[v] = k
	}
	return m
}()

var reasonToProto = map[job.Reason]jobworkerv1.FailureReason{
	job.ReasonNone:            jobworkerv1.FailureReason_FAILURE_REASON_UNSPECIFIED,
	job.ReasonExitCode:        jobworkerv1.FailureReason_FAILURE_REASON_EXIT_CODE,
	job.ReasonSignal:          jobworkerv1.FailureReason_FAILURE_REASON_SIGNAL,
	job.ReasonOOMKilled:       jobworkerv1.FailureReason_FAILURE_REASON_OOM_KILLED,
	job.ReasonTimedOut:        jobworkerv1.FailureReason_FAILURE_REASON_TIMED_OUT,
	job.ReasonExecFailed:      jobworkerv1.FailureReason_FAILURE_REASON_EXEC_FAILED,
	job.ReasonServerRestarted: jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED,
	job.ReasonOutputLost:      jobworkerv1.FailureReason_FAILURE_REASON_OUTPUT_LOST,
}

func jobToProto(st job.Status) *jobworkerv1.Job {
	j := &jobworkerv1.Job{
		Id:          st.ID,
		Owner:       st.Owner,
		Command:     st.Command,
		Args:        st.Args,
		Env:         st.Env,
		WorkingDir:  st.Dir,
		Limits:      limitsToProto(st.Limits),
		State:       stateToProto[st.State],
		Reason:      reasonToProto[st.Reason],
		Message:     st.Message,
		CreateTime:  timestamppb.New(st.Created),
		Usage:       usageToProto(st.Usage),
		OutputSize:  st.OutputSize,
		OutputStart: st.OutputStart,
	}
	if st.Timeout > 0 {
		j.Timeout = durationpb.New(st.Timeout)
	}
	if st.ExitCode != nil {
		c := int32(*st.ExitCode)
		j.ExitCode = &c
	}
	if st.Signal != nil {
		sig := int32(*st.Signal)
		j.Signal = &sig
	}
	if !st.Started.IsZero() {
		j.StartTime = timestamppb.New(st.Started)
	}
	if !st.Ended.IsZero() {
		j.EndTime = timestamppb.New(st.Ended)
	}
	return j
}

func limitsToProto(l cgroupfs.Limits) *jobworkerv1.Limits {
	p := &jobworkerv1.Limits{}
	if l.CPUWeight != 0 {
		p.CpuWeight = &l.CPUWeight
	}
	if l.CPUs != 0 {
		p.Cpus = &l.CPUs
	}
	if l.MemoryMax != 0 {
		p.MemoryMaxBytes = &l.MemoryMax
	}
	if l.MemoryHigh != 0 {
		p.MemoryHighBytes = &l.MemoryHigh
	}
	if l.IOWeight != 0 {
		p.IoWeight = &l.IOWeight
	}
	for _, m := range l.IOMax {
		p.IoMax = append(p.IoMax, &jobworkerv1.IOMax{Device: m.Device, ReadBps: m.ReadBPS, WriteBps: m.WriteBPS, ReadIops: m.ReadIOPS, WriteIops: m.WriteIOPS})
	}
	if l.PidsMax != 0 {
		p.PidsMax = &l.PidsMax
	}
	return p
}

func usageToProto(u cgroupfs.Usage) *jobworkerv1.Usage {
	return &jobworkerv1.Usage{
		CpuUsageUsec:       u.CPUUsageUsec,
		CpuUserUsec:        u.CPUUserUsec,
		CpuSystemUsec:      u.CPUSystemUsec,
		MemoryCurrentBytes: u.MemoryCurrent,
		MemoryPeakBytes:    u.MemoryPeak,
		IoReadBytes:        u.IOReadBytes,
		IoWriteBytes:       u.IOWriteBytes,
		IoReadOps:          u.IOReadOps,
		IoWriteOps:         u.IOWriteOps,
		PidsCurrent:        u.PidsCurrent,
		OomKills:           u.OOMKills,
	}
}
