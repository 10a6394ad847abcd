package main

import (
	"fmt"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// updateCmd is `jobworker update`.
type updateCmd struct {
	clientFlags `embed:""`

	CPUWeight   *uint32   `name:"cpu-weight" placeholder:"N" help:"CPU weight, 1-10000 (cpu.weight)."`
	CPUs        *float64  `name:"cpus" placeholder:"F" help:"CPU cap in CPUs, e.g. 1.5 (cpu.max); 0 removes the cap."`
	MemoryLimit *byteSize `placeholder:"SIZE" help:"Hard memory limit (memory.max, and memory.high with it), e.g. 512M."`
	IOWeight    *uint32   `name:"io-weight" placeholder:"N" help:"I/O weight, 1-10000 (io.bfq.weight or io.weight)."`
	PidsLimit   *uint64   `placeholder:"N" help:"Most processes and threads (pids.max)."`
	ID          string    `arg:"" name:"id" help:"Job ID, or a unique prefix of it (at least 8 characters)."`
}

// Run changes the limits and prints them as they now are.
func (c *updateCmd) Run(e *env) error {
	l := &jobworkerv1.Limits{CpuWeight: c.CPUWeight, Cpus: c.CPUs, IoWeight: c.IOWeight, PidsMax: c.PidsLimit}
	if c.MemoryLimit != nil {
		v := uint64(*c.MemoryLimit)
		l.MemoryMaxBytes = &v
	}
	if c.CPUWeight == nil && c.CPUs == nil && c.MemoryLimit == nil && c.IOWeight == nil && c.PidsLimit == nil {
		return &exitCodeError{code: exitUsage, msg: "update: give at least one of --cpu-weight, --cpus, --memory-limit, --io-weight, --pids-limit"}
	}
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	r, err := api.UpdateJob(e.ctx, &jobworkerv1.UpdateJobRequest{Id: c.ID, Limits: l})
	if err != nil {
		return c.rpcError("update job "+c.ID, withFlagNames(err))
	}
	if c.JSON {
		return printJSON(e.stdout, r.GetJob())
	}
	fmt.Fprintf(e.stderr, "job %s %s, limits %s\n", r.GetJob().GetId(), outcome(r.GetJob()), limitsLine(r.GetJob().GetLimits()))
	return nil
}
