package service

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

var eventTypeToProto = map[job.EventType]jobworkerv1.JobEventType{
	job.EventCreated:       jobworkerv1.JobEventType_JOB_EVENT_TYPE_CREATED,
	job.EventStarted:       jobworkerv1.JobEventType_JOB_EVENT_TYPE_STARTED,
	job.EventPaused:        jobworkerv1.JobEventType_JOB_EVENT_TYPE_PAUSED,
	job.EventResumed:       jobworkerv1.JobEventType_JOB_EVENT_TYPE_RESUMED,
	job.EventEnded:         jobworkerv1.JobEventType_JOB_EVENT_TYPE_ENDED,
	job.EventLimitsUpdated: jobworkerv1.JobEventType_JOB_EVENT_TYPE_LIMITS_UPDATED,
	job.EventPruned:        jobworkerv1.JobEventType_JOB_EVENT_TYPE_PRUNED,
}

func eventToProto(ev job.Event) *jobworkerv1.JobEvent {
	return &jobworkerv1.JobEvent{
		Sequence: ev.Seq,
		Type:     eventTypeToProto[ev.Type],
		Time:     timestamppb.New(ev.Time),
		Job:      jobToProto(ev.Job),
	}
}

// WatchJobs streams the state changes of the jobs the caller may see that
// match the request's filters, until the client ends it.
func (s *api) WatchJobs(req *jobworkerv1.WatchJobsRequest, stream jobworkerv1.JobWorkerService_WatchJobsServer) error {
	ctx := stream.Context()
	f, none, err := visibleFilter(ctx, req.GetOwners(), req.GetStates(), req.GetName(), req.GetLabels())
	if err != nil {
		return err
	}
	w, err := s.m.WatchEvents(f, req.GetAfter())
	if err != nil {
		return watchError(err)
	}
	if none {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			return watchError(err)
		}
		if err := stream.Send(&jobworkerv1.WatchJobsResponse{Event: eventToProto(ev)}); err != nil {
			return err
		}
	}
}

func watchError(err error) error {
	var behind *job.BehindError
	switch {
	case errors.As(err, &behind):
		return status.Errorf(codes.ResourceExhausted, "watch jobs: %v (WatchJobs with after=%d)", err, behind.Last)
	case errors.Is(err, job.ErrEventsGone):
		return status.Errorf(codes.OutOfRange, "watch jobs: %v", err)
	}
	return jobError(err)
}
