package main

import (
	"fmt"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"

	"google.golang.org/protobuf/types/known/durationpb"
)

// stopCmd is `jobworker stop`.
type stopCmd struct {
	clientFlags `embed:""`

	Grace *time.Duration `placeholder:"DUR" help:"Time between SIGTERM and kill (default: the server's)."`
	ID    string         `arg:"" name:"id" help:"Job ID, or a unique prefix of it (at least 8 characters)."`
}

// Run stops a job and prints its final state.
func (c *stopCmd) Run(e *env) error {
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	req := &jobworkerv1.StopJobRequest{Id: c.ID}
	if c.Grace != nil {
		req.Grace = durationpb.New(*c.Grace)
	}
	r, err := api.StopJob(e.ctx, req)
	if err != nil {
		return c.rpcError("stop job "+c.ID, err)
	}
	if c.JSON {
		return printJSON(e.stdout, r.GetJob())
	}
	fmt.Fprintf(e.stderr, "job %s %s\n", r.GetJob().GetId(), outcome(r.GetJob()))
	return nil
}
