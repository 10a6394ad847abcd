package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// behindServer's first stream sends events 1 and 2, then ends as a server
// ends a watcher that fell behind; a stream after 2 sends 3, then ends.
type behindServer struct {
	jobworkerv1.JobWorkerServiceClient
	afters []uint64
}

func (c *behindServer) WatchJobs(_ context.Context, r *jobworkerv1.WatchJobsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[jobworkerv1.WatchJobsResponse], error) {
	c.afters = append(c.afters, r.GetAfter())
	ev := func(seq uint64) *jobworkerv1.WatchJobsResponse {
		return &jobworkerv1.WatchJobsResponse{Event: &jobworkerv1.JobEvent{Sequence: seq, Type: jobworkerv1.JobEventType_JOB_EVENT_TYPE_STARTED, Time: timestamppb.Now(),
			Job: &jobworkerv1.Job{Id: "6f9619ff-8b86-4011-b42d-00c04fc964ff", Owner: "alice", State: jobworkerv1.JobState_JOB_STATE_RUNNING}}}
	}
	if r.GetAfter() == 0 {
		return &eventStream{events: []*jobworkerv1.WatchJobsResponse{ev(1), ev(2)}, end: status.Error(codes.ResourceExhausted, "watch jobs: the watcher fell 2049 events behind (at most 2048 may be waiting): resume after event 2")}, nil
	}
	return &eventStream{events: []*jobworkerv1.WatchJobsResponse{ev(r.GetAfter() + 1)}, end: io.EOF}, nil
}

type eventStream struct {
	grpc.ServerStreamingClient[jobworkerv1.WatchJobsResponse]
	events []*jobworkerv1.WatchJobsResponse
	end    error
}

func (s *eventStream) Recv() (*jobworkerv1.WatchJobsResponse, error) {
	if len(s.events) == 0 {
		return nil, s.end
	}
	r := s.events[0]
	s.events = s.events[1:]
	return r, nil
}

// TestEventsResumeAfterBehind: `jobworker events`, ended by the server for
// falling behind, says so on stderr and resumes after the last event it
// printed, so that it prints every event once.
func TestEventsResumeAfterBehind(t *testing.T) {
	api := &behindServer{}
	var out, notes bytes.Buffer
	c := &eventsCmd{}
	err := c.watch(&env{ctx: context.Background(), stdout: &out, stderr: &notes}, api, &jobworkerv1.WatchJobsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(api.afters) != 2 || api.afters[0] != 0 || api.afters[1] != 2 {
		t.Errorf("watches after %v, want 0 then 2", api.afters)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("printed %q, want events 1, 2 and 3", out.String())
	}
	for i, l := range lines {
		if f := strings.Fields(l); f[0] != string(rune('1'+i)) || f[4] != "started" || f[6] != "alice" || f[7] != "running" {
			t.Errorf("line %d: %q, want event %d, started, alice, running", i, l, i+1)
		}
	}
	if !strings.Contains(notes.String(), "resuming after event 2") {
		t.Errorf("stderr %q, want the note of the resume", notes.String())
	}
}
