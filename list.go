package main

import (
	"context"
	"fmt"
	"strings"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// listCmd is `jobworker list`.
type listCmd struct {
	clientFlags `embed:""`

	jobFilter `kong:"embed,set='in_state=jobs in this state',set='jobs=jobs'"`
	Limit     int `placeholder:"N" help:"Show at most N jobs, the newest (default: all)."`
}

// jobFilter is the selection list and events share. Its help names what is
// selected: ${jobs} (jobs, events of jobs), ${in_state} (by the state).
type jobFilter struct {
	State []string          `placeholder:"STATE" enum:"pending,running,paused,completed,failed,stopped" help:"Only ${in_state} (repeatable): pending, running, paused, completed, failed, stopped."`
	User  []string          `placeholder:"NAME" help:"Only ${jobs} of this user (repeatable)."`
	Name  string            `placeholder:"NAME" help:"Only ${jobs} of this name."`
	Label map[string]string `mapsep:"none" placeholder:"K=V" help:"Only ${jobs} with this label (repeatable: all must match)."`
}

// states are the filter's states as the API's.
func (f *jobFilter) states() []jobworkerv1.JobState {
	var states []jobworkerv1.JobState
	for _, s := range f.State {
		states = append(states, jobworkerv1.JobState(jobworkerv1.JobState_value["JOB_STATE_"+strings.ToUpper(s)]))
	}
	return states
}

// Run lists jobs.
func (c *listCmd) Run(e *env) error {
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	req := &jobworkerv1.ListJobsRequest{States: c.states(), Owners: c.User, Name: c.Name, Labels: c.Label}
	if c.Limit < 0 {
		return fmt.Errorf("--limit %d: want a number of jobs, at least 1", c.Limit)
	}
	jobs, err := listAll(e.ctx, api, req, c.Limit)
	if err != nil {
		return c.rpcError("list jobs", err)
	}
	if c.JSON {
		for _, j := range jobs {
			if err := printJSON(e.stdout, j); err != nil {
				return err
			}
		}
		return nil
	}
	return printJobTable(e.stdout, jobs)
}

// listAll follows ListJobs' pages until the last one, or until it has
// limit jobs (0: no limit).
func listAll(ctx context.Context, api jobworkerv1.JobWorkerServiceClient, req *jobworkerv1.ListJobsRequest, limit int) ([]*jobworkerv1.Job, error) {
	var jobs []*jobworkerv1.Job
	for {
		if limit > 0 {
			req.PageSize = uint32(min(limit-len(jobs), 1000))
		}
		r, err := api.ListJobs(ctx, req)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, r.GetJobs()...)
		if limit > 0 && len(jobs) >= limit {
			return jobs[:limit], nil
		}
		if r.GetNextPageToken() == "" {
			return jobs, nil
		}
		req.PageToken = r.GetNextPageToken()
	}
}
