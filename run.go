package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"

	"github.com/jobworker/jobworker/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// runCmd is `jobworker run`.
type runCmd struct {
	clientFlags `embed:""`

	CPUWeight   *uint32           `name:"cpu-weight" placeholder:"N" help:"CPU weight, 1-10000 (cpu.weight; default 100)."`
	CPUs        *float64          `name:"cpus" placeholder:"F" help:"CPU cap in CPUs, e.g. 1.5 (cpu.max)."`
	MemoryLimit *byteSize         `placeholder:"SIZE" help:"Hard memory limit (memory.max), e.g. 512M."`
	IOWeight    *uint32           `name:"io-weight" placeholder:"N" help:"I/O weight, 1-10000 (io.bfq.weight or io.weight)."`
	IOReadBPS   []string          `name:"io-read-bps" placeholder:"DEV=RATE" help:"Read bytes per second on a device, e.g. /dev/sda=10M."`
	IOWriteBPS  []string          `name:"io-write-bps" placeholder:"DEV=RATE" help:"Write bytes per second on a device."`
	IOReadIOPS  []string          `name:"io-read-iops" placeholder:"DEV=N" help:"Read operations per second on a device."`
	IOWriteIOPS []string          `name:"io-write-iops" placeholder:"DEV=N" help:"Write operations per second on a device."`
	PidsLimit   *uint64           `placeholder:"N" help:"Most processes and threads (pids.max)."`
	Timeout     time.Duration     `placeholder:"DUR" help:"Kill the job when it runs longer (0: never)."`
	Env         map[string]string `short:"e" mapsep:"none" placeholder:"K=V" help:"Add a variable to the job's environment (repeatable)."`
	SecretEnv   []string          `name:"secret-env" placeholder:"K=V|K" help:"Add a secret variable, never stored, logged or shown (repeatable); K alone takes its value from this environment, off the command line."`
	Workdir     string            `placeholder:"DIR" help:"Directory the command starts in (absolute)."`
	Network     string            `enum:",host,none" default:"" placeholder:"host|none" help:"The job's network: the host's, or none (only loopback); default: the server's."`
	Name        string            `placeholder:"NAME" help:"A name for the job (letters, digits, '.', '_', '-'; need not be unique)."`
	Label       map[string]string `mapsep:"none" placeholder:"K=V" help:"A label for the job, to find it by (repeatable)."`
	Detach      bool              `short:"d" help:"Print the job ID and return at once."`
	Command     []string          `arg:"" passthrough:"" name:"command" help:"The command and its arguments, after --."`

	// outputAfterStop is how long an interrupted run waits for the rest
	// of the job's output once the job has stopped (0: a minute).
	outputAfterStop time.Duration
}

// argv is the job's command and arguments, without the -- that separates
// them from jobworker's flags.
func (c *runCmd) argv() []string {
	if len(c.Command) > 0 && c.Command[0] == "--" {
		return c.Command[1:]
	}
	return c.Command
}

// request builds the StartJob request from the flags.
func (c *runCmd) request() (*jobworkerv1.StartJobRequest, error) {
	argv := c.argv()
	if len(argv) == 0 {
		return nil, &exitCodeError{code: exitUsage, failed: true, msg: "missing command after --"}
	}
	l := &jobworkerv1.Limits{CpuWeight: c.CPUWeight, Cpus: c.CPUs, IoWeight: c.IOWeight, PidsMax: c.PidsLimit}
	if c.MemoryLimit != nil {
		v := uint64(*c.MemoryLimit)
		l.MemoryMaxBytes = &v
	}
	devs := map[string]*jobworkerv1.IOMax{}
	var order []string
	for _, spec := range []struct {
		flag   string
		values []string
		set    func(m *jobworkerv1.IOMax, v uint64)
		size   bool
	}{
		{"--io-read-bps", c.IOReadBPS, func(m *jobworkerv1.IOMax, v uint64) { m.ReadBps = v }, true},
		{"--io-write-bps", c.IOWriteBPS, func(m *jobworkerv1.IOMax, v uint64) { m.WriteBps = v }, true},
		{"--io-read-iops", c.IOReadIOPS, func(m *jobworkerv1.IOMax, v uint64) { m.ReadIops = v }, false},
		{"--io-write-iops", c.IOWriteIOPS, func(m *jobworkerv1.IOMax, v uint64) { m.WriteIops = v }, false},
	} {
		for _, kv := range spec.values {
			dev, rate, ok := strings.Cut(kv, "=")
			if !ok || dev == "" {
				return nil, &exitCodeError{code: exitUsage, failed: true, msg: fmt.Sprintf("%s %q: want DEV=RATE, e.g. /dev/sda=10M", spec.flag, kv)}
			}
			var v uint64
			var err error
			if spec.size {
				v, err = parseSize(rate)
			} else {
				v, err = strconv.ParseUint(rate, 10, 64)
			}
			if err != nil || v == 0 {
				return nil, &exitCodeError{code: exitUsage, failed: true, msg: fmt.Sprintf("%s %q: the rate must be a positive number", spec.flag, kv)}
			}
			m, ok := devs[dev]
			if !ok {
				m = &jobworkerv1.IOMax{Device: dev}
				devs[dev] = m
				order = append(order, dev)
			}
			spec.set(m, v)
		}
	}
	for _, d := range order {
		l.IoMax = append(l.IoMax, devs[d])
	}
	req := &jobworkerv1.StartJobRequest{Command: argv[0], Args: argv[1:], Env: c.Env, WorkingDir: c.Workdir, Limits: l, Name: c.Name, Labels: c.Label}
	switch c.Network {
	case "host":
		req.Network = jobworkerv1.Network_NETWORK_HOST
	case "none":
		req.Network = jobworkerv1.Network_NETWORK_NONE
	}
	for _, kv := range c.SecretEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				return nil, &exitCodeError{code: exitUsage, failed: true, msg: fmt.Sprintf("--secret-env %s: no such variable in this environment; give K=V, or export %s first", k, k)}
			}
		}
		if req.SecretEnv == nil {
			req.SecretEnv = map[string]string{}
		}
		req.SecretEnv[k] = v
	}
	if c.Timeout > 0 {
		req.Timeout = durationpb.New(c.Timeout)
	}
	return req, nil
}

// Run starts a job and, unless detached, streams its output and exits with
// its exit code. Interrupting it stops the job.
func (c *runCmd) Run(e *env) error {
	return runFailed(c.run(e))
}

// runFailed gives every failure of jobworker itself in run (one that is
// not the job's own exit, nor a command that could not be found or
// executed: 127 and 126, as a shell) the exit code exitRunFailed.
func runFailed(err error) error {
	var ec *exitCodeError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ec):
		return &exitCodeError{code: exitRunFailed, failed: true, msg: err.Error()}
	case ec.failed:
		return &exitCodeError{code: exitRunFailed, failed: true, msg: ec.msg}
	}
	return err
}

func (c *runCmd) run(e *env) error {
	req, err := c.request()
	if err != nil {
		return err
	}
	api, err := c.connect()
	if err != nil {
		return err
	}
	defer api.Close()
	req.RequestId = job.NewID() // a request ID has a job ID's form
	resp, err := startJob(e.ctx, api, req, startRetries, e.stderr)
	if err != nil {
		return startError(c.rpcError("start job", withFlagNames(err)), err)
	}
	j := resp.GetJob()
	if c.Detach {
		if c.JSON {
			return printJSON(e.stdout, j)
		}
		_, err := fmt.Fprintln(e.stdout, j.GetId())
		return err
	}
	if !c.JSON {
		fmt.Fprintf(e.stderr, "job %s %s\n", j.GetId(), stateName(j.GetState()))
	}
	next, ferr := streamOutput(e.ctx, api, j.GetId(), 0, true, e.stdout, e.stderr, c.JSON)
	if e.ctx.Err() != nil {
		return c.stopInterrupted(e, api, j.GetId(), next)
	}
	if ferr != nil {
		return c.rpcError("stream output of job "+j.GetId(), ferr)
	}
	last, err := client.FinalStatus(e.ctx, api, j.GetId())
	if err != nil {
		return c.rpcError("status of job "+j.GetId(), err)
	}
	return jobExit(e, last, c.JSON)
}

// stopInterrupted ends an interrupted run: it stops the job with its grace,
// however long that is, goes on printing what the job writes meanwhile from
// offset next on (a job that handles SIGTERM may have last words), and
// exits with the job's status. A second interrupt kills the job at once (a
// stop with no grace); if the server does not answer that within a minute,
// run gives up waiting and says the job may still run.
func (c *runCmd) stopInterrupted(e *env, api jobworkerv1.JobWorkerServiceClient, id string, next int64) error {
	wait, giveUp := context.WithCancel(context.Background())
	defer giveUp()
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	if !c.JSON {
		fmt.Fprintf(e.stderr, "jobworker: stopping job %s (interrupt again to kill it at once)\n", id)
	}
	go func() {
		select {
		case <-again:
			ctx, cancel := context.WithTimeout(wait, time.Minute)
			defer cancel()
			if _, err := api.StopJob(ctx, &jobworkerv1.StopJobRequest{Id: id, Grace: durationpb.New(0)}); err != nil {
				giveUp()
			}
		case <-wait.Done():
		}
	}()
	type result struct {
		job *jobworkerv1.Job
		err error
	}
	// The output follows the job while it stops; once the job has
	// stopped, the rest of it gets outputAfterStop (a server gone
	// meanwhile would keep the stream reconnecting for ever).
	afterStop := c.outputAfterStop
	if afterStop == 0 {
		afterStop = time.Minute
	}
	output, endOutput := context.WithCancelCause(wait)
	defer endOutput(nil)
	stopped := make(chan result, 1)
	go func() {
		r, err := api.StopJob(wait, &jobworkerv1.StopJobRequest{Id: id})
		stopped <- result{r.GetJob(), err}
		if err != nil {
			giveUp() // ends the output too
			return
		}
		t := time.NewTimer(afterStop)
		defer t.Stop()
		select {
		case <-t.C:
			endOutput(fmt.Errorf("not received within %v of the job's end", afterStop))
		case <-output.Done():
		}
	}()
	if _, err := streamOutput(output, api, id, next, true, e.stdout, e.stderr, c.JSON); err != nil && wait.Err() == nil {
		if cause := context.Cause(output); cause != nil {
			err = cause
		}
		fmt.Fprintf(e.stderr, "jobworker: the rest of the output of job %s: %v\n", id, err)
	}
	r := <-stopped
	if r.err != nil {
		return &exitCodeError{code: 130, msg: "interrupted; job " + id + " may still run: stop it with `jobworker stop " + id + "`"}
	}
	return jobExit(e, r.job, c.JSON)
}

// runFlagOf pairs the limit fields the server names in its answers (the
// API's words) with the run flags that set them (the CLI's words).
var runFlagOf = []struct{ field, flag string }{
	{"cpu_weight", "--cpu-weight"},
	{"cpus", "--cpus"},
	{"memory_max_bytes", "--memory-limit"},
	{"io_weight", "--io-weight"},
	{"pids_max", "--pids-limit"},
}

// withFlagNames rewrites an InvalidArgument answer that begins with a limit
// field's name to begin with the flag that sets it, so that the line says
// what to change: "--memory-limit 10240 is below the minimum ...".
func withFlagNames(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return err
	}
	for _, f := range runFlagOf {
		if rest, ok := strings.CutPrefix(st.Message(), f.field+" "); ok {
			return status.Error(codes.InvalidArgument, f.flag+" "+rest)
		}
	}
	return err
}

// startError picks the exit code of a StartJob failure: 127 for a command
// that was not found, 126 for one that cannot be executed (as a shell
// does), exitRunFailed otherwise.
func startError(msg error, err error) error {
	code := exitRunFailed
	if status.Code(err) == codes.FailedPrecondition {
		code = execCode(status.Convert(err).Message())
	}
	return &exitCodeError{code: code, msg: msg.Error()}
}

// execCode is run's exit code for a command that could not be executed,
// from the shim's reason in msg: 127 not found, 126 permission denied or
// not executable (as a shell), exitRunFailed for any other cause.
func execCode(msg string) int {
	switch {
	case strings.Contains(msg, "not found"):
		return 127
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "not executable"):
		return 126
	}
	return exitRunFailed
}

// jobExit ends `run` with the job's exit code: its own, or 128+N for
// signal N. A job that ended with neither was ended by jobworker, not by
// its command: a queued job whose command could not be executed (127 or
// 126, as at the start), or one stopped while queued, lost to a server
// restart or its record damaged (exitRunFailed), never a code the command
// could have exited with.
func jobExit(e *env, j *jobworkerv1.Job, asJSON bool) error {
	if j == nil {
		return errors.New("the server sent no final status")
	}
	if asJSON {
		printJSON(e.stdout, j)
	}
	code := exitRunFailed
	switch {
	case j.ExitCode != nil:
		code = int(j.GetExitCode())
	case j.Signal != nil:
		code = 128 + int(j.GetSignal())
	case j.GetReason() == jobworkerv1.FailureReason_FAILURE_REASON_EXEC_FAILED:
		code = execCode(j.GetMessage())
	}
	if !asJSON && j.GetState() != jobworkerv1.JobState_JOB_STATE_COMPLETED {
		line := "job " + j.GetId() + " " + outcome(j)
		if j.ExitCode == nil && j.Signal == nil && j.GetMessage() != "" {
			line += ": " + safe(j.GetMessage())
		}
		fmt.Fprintln(e.stderr, line)
	}
	if code == 0 {
		return nil
	}
	return &exitCodeError{code: code}
}

// startRetries is how many times run tries a StartJob whose connection
// failed, waiting 200 ms, then twice as long each time (3 s in all).
const startRetries = 5

// startJob sends req, and sends it again when the connection failed
// (Unavailable), up to tries times: the request ID makes a retry of a start
// whose answer was lost return the first job, never a second one.
func startJob(ctx context.Context, api jobworkerv1.JobWorkerServiceClient, req *jobworkerv1.StartJobRequest, tries int, notes io.Writer) (*jobworkerv1.StartJobResponse, error) {
	wait := 200 * time.Millisecond
	for try := 1; ; try++ {
		resp, err := api.StartJob(ctx, req)
		if status.Code(err) != codes.Unavailable || try == tries || ctx.Err() != nil {
			return resp, err
		}
		if try == 1 {
			fmt.Fprintf(notes, "jobworker: the start got no answer (%s); trying again with the same request ID\n", status.Convert(err).Message())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait *= 2
	}
}
