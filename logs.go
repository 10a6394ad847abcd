package main

import "github.com/jobworker/jobworker/client"

// logsCmd is `jobworker logs`.
type logsCmd struct {
	clientFlags `embed:""`

	Follow bool   `short:"f" help:"Keep printing new output until the job ends."`
	Offset *int64 `xor:"start" placeholder:"N" help:"Start at byte N (negative: N bytes before the end)."`
	Tail   *int   `xor:"start" placeholder:"N" help:"Show the last N lines."`
	ID     string `arg:"" name:"id" help:"Job ID, or a unique prefix of it (at least 8 characters)."`
}

// Run prints a job's output.
func (c *logsCmd) Run(e *env) error {
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	var off int64
	switch {
	case c.Offset != nil:
		off = *c.Offset
	case c.Tail != nil:
		if *c.Tail < 0 {
			return &exitCodeError{code: exitUsage, msg: "logs: --tail must not be negative"}
		}
		off, err = client.TailOffset(e.ctx, api, c.ID, *c.Tail)
		if err != nil {
			return c.rpcError("output of job "+c.ID, err)
		}
	}
	if _, err := streamOutput(e.ctx, api, c.ID, off, c.Follow, e.stdout, e.stderr, c.JSON); err != nil {
		if e.ctx.Err() != nil {
			return nil
		}
		return c.rpcError("output of job "+c.ID, err)
	}
	return nil
}
