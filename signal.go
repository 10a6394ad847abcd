package main

import (
	"fmt"
	"strings"

	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// signalCmd is `jobworker signal`.
type signalCmd struct {
	clientFlags `embed:""`

	ID     string `arg:"" name:"id" help:"Job ID, or a unique prefix of it (at least 8 characters)."`
	Signal string `arg:"" name:"signal" help:"HUP, INT, QUIT, USR1, USR2, TERM, KILL, CONT or WINCH, by name (SIGUSR1 too) or number."`
}

// Run sends the signal to the job's process group.
func (c *signalCmd) Run(e *env) error {
	sig, err := job.ParseSignal(c.Signal)
	if err != nil {
		return &exitCodeError{code: exitUsage, msg: "signal: " + strings.TrimPrefix(err.Error(), job.ErrInvalid.Error()+": ")}
	}
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	r, err := api.SignalJob(e.ctx, &jobworkerv1.SignalJobRequest{Id: c.ID, Signal: c.Signal})
	if err != nil {
		return c.rpcError("signal job "+c.ID, err)
	}
	if c.JSON {
		return printJSON(e.stdout, r.GetJob())
	}
	fmt.Fprintf(e.stderr, "job %s sent SIG%s\n", r.GetJob().GetId(), job.SignalName(sig))
	return nil
}
