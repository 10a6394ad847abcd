package service

import (
	"context"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The handlers of job control: signal, pause, resume, update. The role
// table lets admin and user call them; lookup applies the ownership rule.

// SignalJob sends a signal to a job's process group.
func (s *api) SignalJob(ctx context.Context, req *jobworkerv1.SignalJobRequest) (*jobworkerv1.SignalJobResponse, error) {
	found, err := s.lookup(ctx, "SignalJob", req.GetId())
	if err != nil {
		return nil, err
	}
	sig, err := job.ParseSignal(req.GetSignal())
	if err != nil {
		return nil, jobError(err)
	}
	st, err := s.m.Signal(found.ID, sig)
	if err != nil {
		return nil, jobError(err)
	}
	return &jobworkerv1.SignalJobResponse{Job: jobToProto(st)}, nil
}

// PauseJob freezes a job.
func (s *api) PauseJob(ctx context.Context, req *jobworkerv1.PauseJobRequest) (*jobworkerv1.PauseJobResponse, error) {
	found, err := s.lookup(ctx, "PauseJob", req.GetId())
	if err != nil {
		return nil, err
	}
	st, err := s.m.Pause(ctx, found.ID)
	if err != nil {
		return nil, jobError(err)
	}
	return &jobworkerv1.PauseJobResponse{Job: jobToProto(st)}, nil
}

// ResumeJob thaws a paused job.
func (s *api) ResumeJob(ctx context.Context, req *jobworkerv1.ResumeJobRequest) (*jobworkerv1.ResumeJobResponse, error) {
	found, err := s.lookup(ctx, "ResumeJob", req.GetId())
	if err != nil {
		return nil, err
	}
	st, err := s.m.Resume(ctx, found.ID)
	if err != nil {
		return nil, jobError(err)
	}
	return &jobworkerv1.ResumeJobResponse{Job: jobToProto(st)}, nil
}

// UpdateJob changes a job's limits, with StartJob's rule for lifting them.
func (s *api) UpdateJob(ctx context.Context, req *jobworkerv1.UpdateJobRequest) (*jobworkerv1.UpdateJobResponse, error) {
	found, err := s.lookup(ctx, "UpdateJob", req.GetId())
	if err != nil {
		return nil, err
	}
	c, err := changeFromProto(req.GetLimits())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// StartJob's rule, from the job's limits as they are: a user may
	// lower a limit, also one an admin lifted past the default, but not
	// raise one past the default. Its refusal is already the RPC's error.
	var refused error
	allow := func(old cgroupfs.Limits) error {
		var memory, pids uint64
		if c.MemoryMax != nil && *c.MemoryMax > old.MemoryMax {
			memory = *c.MemoryMax
		}
		if c.PidsMax != nil && *c.PidsMax > old.PidsMax {
			pids = *c.PidsMax
		}
		refused = s.checkLift(ctx, memory, pids)
		return refused
	}
	st, err := s.m.UpdateIf(found.ID, c, allow)
	if refused != nil {
		return nil, refused
	}
	if err != nil {
		return nil, jobError(err)
	}
	return &jobworkerv1.UpdateJobResponse{Job: jobToProto(st)}, nil
}
