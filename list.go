package main

import (
	"strings"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// listCmd is `jobworker list`.
type listCmd struct {
	clientFlags `embed:""`

	State []string          `placeholder:"STATE" enum:"pending,running,paused,completed,failed,stopped" help:"Only jobs in this state (repeatable): pending, running, paused, completed, failed, stopped."`
	User  []string          `placeholder:"NAME" help:"Only jobs of this user (repeatable)."`
	Name  string            `placeholder:"NAME" help:"Only jobs of this name."`
	Label map[string]string `placeholder:"K=V" help:"Only jobs with this label (repeatable: all must match)."`
}

// Run lists jobs.
func (c *listCmd) Run(e *env) error {
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	req := &jobworkerv1.ListJobsRequest{Owners: c.User, Name: c.Name, Labels: c.Label}
	for _, s := range c.State {
		req.States = append(req.States, jobworkerv1.JobState(jobworkerv1.JobState_value["JOB_STATE_"+strings.ToUpper(s)]))
	}
	r, err := api.ListJobs(e.ctx, req)
	if err != nil {
		return c.rpcError("list jobs", err)
	}
	if c.JSON {
		for _, j := range r.GetJobs() {
			if err := printJSON(e.stdout, j); err != nil {
				return err
			}
		}
		return nil
	}
	return printJobTable(e.stdout, r.GetJobs())
}
