package main

import (
	"fmt"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// pauseCmd is `jobworker pause`.
type pauseCmd struct {
	clientFlags `embed:""`

	ID string `arg:"" name:"id" help:"Job ID, or a unique prefix of it (at least 8 characters)."`
}

// Run freezes the job and says so once it is frozen.
func (c *pauseCmd) Run(e *env) error {
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	r, err := api.PauseJob(e.ctx, &jobworkerv1.PauseJobRequest{Id: c.ID})
	if err != nil {
		return c.rpcError("pause job "+c.ID, err)
	}
	return printControlled(e, c.JSON, r.GetJob())
}

// resumeCmd is `jobworker resume`.
type resumeCmd struct {
	clientFlags `embed:""`

	ID string `arg:"" name:"id" help:"Job ID, or a unique prefix of it (at least 8 characters)."`
}

// Run thaws the job.
func (c *resumeCmd) Run(e *env) error {
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	r, err := api.ResumeJob(e.ctx, &jobworkerv1.ResumeJobRequest{Id: c.ID})
	if err != nil {
		return c.rpcError("resume job "+c.ID, err)
	}
	return printControlled(e, c.JSON, r.GetJob())
}

// printControlled prints a job a control verb changed: as JSON, or its ID
// and state on stderr.
func printControlled(e *env, asJSON bool, j *jobworkerv1.Job) error {
	if asJSON {
		return printJSON(e.stdout, j)
	}
	fmt.Fprintf(e.stderr, "job %s %s\n", j.GetId(), outcome(j))
	return nil
}
