package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// eventsCmd is `jobworker events`.
type eventsCmd struct {
	clientFlags `embed:""`

	jobFilter `kong:"embed,set='in_state=events that leave a job in this state',set='jobs=events of jobs'"`
	After     uint64 `placeholder:"SEQ" help:"Start after the event of this sequence number (the first column) instead of now."`
}

// Run prints job events as they come, until interrupted. A stream the
// server ends because this client fell behind resumes after the last event
// printed, with a note on stderr, so that no event is missed.
func (c *eventsCmd) Run(e *env) error {
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	req := &jobworkerv1.WatchJobsRequest{States: c.states(), Owners: c.User, Name: c.Name, Labels: c.Label, After: c.After}
	return c.watch(e, api, req)
}

// watch prints the events of req's stream, resuming after the last one
// printed when the server ends it for falling behind.
func (c *eventsCmd) watch(e *env, api jobworkerv1.JobWorkerServiceClient, req *jobworkerv1.WatchJobsRequest) error {
	for {
		stream, err := api.WatchJobs(e.ctx, req)
		if err != nil {
			return c.rpcError("watch jobs", err)
		}
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if status.Code(err) == codes.ResourceExhausted && req.After > 0 {
				fmt.Fprintf(e.stderr, "jobworker: %s; resuming after event %d\n", status.Convert(err).Message(), req.After)
				break
			}
			if err != nil {
				if e.ctx.Err() != nil {
					return nil
				}
				return c.rpcError("watch jobs", err)
			}
			ev := r.GetEvent()
			req.After = ev.GetSequence()
			if c.JSON {
				err = printJSON(e.stdout, ev)
			} else {
				err = printEvent(e.stdout, ev)
			}
			if err != nil {
				return err
			}
		}
	}
}

// printEvent prints one event on a line: sequence number, time, type, job
// ID, owner, the job's state (with its reason once ended), name.
func printEvent(w io.Writer, ev *jobworkerv1.JobEvent) error {
	j := ev.GetJob()
	typ := strings.ToLower(strings.TrimPrefix(ev.GetType().String(), "JOB_EVENT_TYPE_"))
	_, err := fmt.Fprintf(w, "%-8d  %-25s  %-14s  %-36s  %-12s  %-28s  %s\n", ev.GetSequence(), humanTime(ev.GetTime().AsTime()), typ, safe(j.GetId()), ownerName(j), outcome(j), jobName(j))
	return err
}
