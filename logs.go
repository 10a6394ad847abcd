package main

import (
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jobworker/jobworker/client"
	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// logsCmd is `jobworker logs`.
type logsCmd struct {
	clientFlags `embed:""`

	Follow     bool   `short:"f" help:"Keep printing new output until the job ends."`
	Offset     *int64 `xor:"start" placeholder:"N" help:"Start at byte N (negative: N bytes before the end)."`
	Tail       *int   `xor:"start" placeholder:"N" help:"Show the last N lines."`
	Since      string `placeholder:"T" help:"Only output that arrived at or after T: a duration before now (10m, 1h30m) or an RFC 3339 time (2026-12-02T03:00:00Z)."`
	Until      string `placeholder:"T" help:"Only output that arrived before or at T: a duration before now or an RFC 3339 time."`
	Timestamps bool   `short:"t" help:"Prefix each line with the RFC 3339 time its first byte arrived."`
	ID         string `arg:"" name:"id" help:"Job ID, or a unique prefix of it (at least 8 characters)."`
}

// parseWhen reads a --since or --until: a duration before now, or an RFC
// 3339 time.
func parseWhen(flag, s string, now time.Time) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return nil, fmt.Errorf("logs: --%s %s: give a duration before now without a sign (10m), or an RFC 3339 time", flag, s)
		}
		return timestamppb.New(now.Add(-d)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, fmt.Errorf("logs: --%s %q: want a duration (10m, 1h30m) or an RFC 3339 time (2026-12-02T03:00:00Z)", flag, s)
	}
	return timestamppb.New(t), nil
}

// Run prints a job's output.
func (c *logsCmd) Run(e *env) error {
	now := time.Now()
	since, err := parseWhen("since", c.Since, now)
	if err != nil {
		return &exitCodeError{code: exitUsage, msg: err.Error()}
	}
	until, err := parseWhen("until", c.Until, now)
	if err != nil {
		return &exitCodeError{code: exitUsage, msg: err.Error()}
	}
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	return c.print(e, api, since, until)
}

// print prints the output through api. A prefix of the job's ID is
// resolved once, at the start: the requests that follow (the tail's, a
// follower's after a dropped connection) name the job by its whole ID, so
// that they read the same job even when another one comes to share the
// prefix meanwhile.
func (c *logsCmd) print(e *env, api jobworkerv1.JobWorkerServiceClient, since, until *timestamppb.Timestamp) error {
	if !job.ValidID(c.ID) {
		j, err := client.JobStatus(e.ctx, api, c.ID)
		if err != nil {
			return c.rpcError("output of job "+c.ID, err)
		}
		c.ID = j.GetId()
	}
	var err error
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
	emit := printOutput(e.stdout, e.stderr, c.JSON)
	if c.Timestamps && !c.JSON {
		emit = printTimestamped(e.stdout, e.stderr)
	}
	req := &jobworkerv1.GetJobOutputRequest{Id: c.ID, Offset: off, Follow: c.Follow, Since: since, Until: until}
	if _, err := client.FollowRequest(e.ctx, api, req, emit, e.stderr); err != nil {
		if e.ctx.Err() != nil {
			return nil
		}
		return c.rpcError("output of job "+c.ID, err)
	}
	return nil
}

// printTimestamped prints output as client.Timestamped does, and says on
// notes what the server's output cap dropped.
func printTimestamped(w, notes io.Writer) func(*jobworkerv1.GetJobOutputResponse) error {
	emit := client.Timestamped(w)
	return func(r *jobworkerv1.GetJobOutputResponse) error {
		noteDropped(notes, r)
		return emit(r)
	}
}
