package main

import (
	"bytes"
	"io"
	"os"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// statusCmd is `jobworker status`.
type statusCmd struct {
	clientFlags `embed:""`

	Watch bool   `short:"w" help:"Redraw status and usage until the job ends."`
	ID    string `arg:"" optional:"" name:"id" help:"Job ID, or a unique prefix of it (at least 8 characters); without it, the server's figures."`
}

// Run shows a job's or the server's status.
func (c *statusCmd) Run(e *env) error {
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	if c.ID == "" {
		if c.Watch {
			return &exitCodeError{code: exitUsage, msg: "status: --watch needs a job ID"}
		}
		r, err := api.GetServerStatus(e.ctx, &jobworkerv1.GetServerStatusRequest{})
		if err != nil {
			return c.rpcError("server status", err)
		}
		if c.JSON {
			return printJSON(e.stdout, r)
		}
		return printServerStatus(e.stdout, r)
	}
	stream, err := api.GetJobStatus(e.ctx, &jobworkerv1.GetJobStatusRequest{Id: c.ID, Watch: c.Watch})
	if err != nil {
		return c.rpcError("status of job "+c.ID, err)
	}
	tty := isTerminal(e.stdout)
	first := true
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if e.ctx.Err() != nil {
				return nil
			}
			return c.rpcError("status of job "+c.ID, err)
		}
		if c.JSON {
			printJSON(e.stdout, r.GetJob())
			continue
		}
		var b bytes.Buffer
		if c.Watch && tty {
			b.WriteString("\x1b[H\x1b[2J") // redraw in place
		} else if !first {
			b.WriteString("\n")
		}
		first = false
		printJob(&b, r.GetJob())
		e.stdout.Write(b.Bytes())
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
