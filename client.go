package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jobworker/jobworker/auth"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// clientFlags are the flags every client verb shares.
type clientFlags struct {
	Server string `default:"localhost:50051" placeholder:"ADDR" help:"Server address (host:port)."`
	CA     string `name:"ca" placeholder:"FILE" help:"CA that signed the server's certificate (PEM)."`
	Cert   string `placeholder:"FILE" help:"Client certificate (PEM)."`
	Key    string `placeholder:"FILE" help:"Client private key (PEM)."`
	JSON   bool   `name:"json" help:"Print the API's messages as protobuf JSON, one object per line."`
}

// connect dials the server with mutual TLS.
func (f *clientFlags) connect() (jobworkerv1.JobWorkerServiceClient, func(), error) {
	var missing []string
	for _, v := range []struct{ flag, value string }{{"--ca", f.CA}, {"--cert", f.Cert}, {"--key", f.Key}} {
		if v.value == "" {
			missing = append(missing, v.flag)
		}
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("missing %s (or JOBWORKER_CA, JOBWORKER_CERT, JOBWORKER_KEY): the CLI needs the server's CA and a client certificate; for a dev server, run the export lines `jobworker serve --dev` printed", strings.Join(missing, ", "))
	}
	host, _, err := net.SplitHostPort(f.Server)
	if err != nil {
		return nil, nil, fmt.Errorf("--server %q: want host:port", f.Server)
	}
	cfg, err := auth.ClientConfig(f.CA, f.Cert, f.Key, host)
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(f.Server, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, nil, fmt.Errorf("--server %q: %w", f.Server, err)
	}
	return jobworkerv1.NewJobWorkerServiceClient(conn), func() { conn.Close() }, nil
}

// rpcError turns an RPC error into one line that says what failed and what
// to do.
func (f *clientFlags) rpcError(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %v", what, err)
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		hint := fmt.Sprintf("%s; is the server running, and is --server right?", lastCause(msg))
		switch {
		case strings.Contains(msg, "certificate required"), strings.Contains(msg, "bad certificate"), strings.Contains(msg, "unknown certificate authority"), strings.Contains(msg, "expired certificate"):
			hint = fmt.Sprintf("the server refused the client certificate %s (%s): is it signed by the server's client CA, valid now, and made with a role by `jobworker certs client`?", f.Cert, tlsReason(msg))
		case strings.Contains(msg, "x509:"), strings.Contains(msg, "certificate"):
			hint = fmt.Sprintf("the server's certificate does not verify with --ca %s for %s (%s)", f.CA, f.Server, tlsReason(msg))
		}
		return fmt.Errorf("%s: cannot reach the server at %s: %s", what, f.Server, hint)
	case codes.PermissionDenied:
		return fmt.Errorf("%s: permission denied: %s", what, msg)
	case codes.Unauthenticated:
		return fmt.Errorf("%s: not authenticated: %s", what, msg)
	}
	return fmt.Errorf("%s: %s", what, msg)
}

// lastCause is the innermost part of a gRPC transport error message.
func lastCause(msg string) string {
	msg = strings.TrimSuffix(msg, "\"")
	if i := strings.LastIndex(msg, "desc = \""); i >= 0 {
		msg = msg[i+len("desc = \""):]
	}
	return msg
}

// tlsReason is the last, most specific part of a TLS error message.
func tlsReason(msg string) string {
	if i := strings.LastIndex(msg, "tls: "); i >= 0 {
		return strings.TrimSuffix(msg[i:], "\"")
	}
	if i := strings.LastIndex(msg, "x509: "); i >= 0 {
		return strings.TrimSuffix(msg[i:], "\"")
	}
	return msg
}

// printJSON prints a message as protobuf JSON on one line.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

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
	Env         map[string]string `short:"e" placeholder:"K=V" help:"Add a variable to the job's environment (repeatable)."`
	Workdir     string            `placeholder:"DIR" help:"Directory the command starts in (absolute)."`
	Detach      bool              `short:"d" help:"Print the job ID and return at once."`
	Command     []string          `arg:"" passthrough:"" name:"command" help:"The command and its arguments, after --."`
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
		return nil, &exitCodeError{code: exitUsage, msg: "run: missing command after --"}
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
				return nil, &exitCodeError{code: exitUsage, msg: fmt.Sprintf("run: %s %q: want DEV=RATE, e.g. /dev/sda=10M", spec.flag, kv)}
			}
			var v uint64
			var err error
			if spec.size {
				v, err = parseSize(rate)
			} else {
				v, err = strconv.ParseUint(rate, 10, 64)
			}
			if err != nil || v == 0 {
				return nil, &exitCodeError{code: exitUsage, msg: fmt.Sprintf("run: %s %q: the rate must be a positive number", spec.flag, kv)}
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
	req := &jobworkerv1.StartJobRequest{Command: argv[0], Args: argv[1:], Env: c.Env, WorkingDir: c.Workdir, Limits: l}
	if c.Timeout > 0 {
		req.Timeout = durationpb.New(c.Timeout)
	}
	return req, nil
}

// Run starts a job and, unless detached, streams its output and exits with
// its exit code. Interrupting it stops the job.
func (c *runCmd) Run(e *env) error {
	req, err := c.request()
	if err != nil {
		return err
	}
	client, closeConn, err := c.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := client.StartJob(e.ctx, req)
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
	next, ferr := streamOutput(e.ctx, client, j.GetId(), 0, true, e.stdout, e.stderr, c.JSON)
	if e.ctx.Err() != nil {
		return c.stopInterrupted(e, client, j.GetId(), next)
	}
	if ferr != nil {
		return c.rpcError("stream output of job "+j.GetId(), ferr)
	}
	last, err := finalStatus(e.ctx, client, j.GetId())
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
func (c *runCmd) stopInterrupted(e *env, client jobworkerv1.JobWorkerServiceClient, id string, next int64) error {
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
			if _, err := client.StopJob(ctx, &jobworkerv1.StopJobRequest{Id: id, Grace: durationpb.New(0)}); err != nil {
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
	output, endOutput := context.WithCancelCause(wait)
	defer endOutput(nil)
	stopped := make(chan result, 1)
	go func() {
		r, err := client.StopJob(wait, &jobworkerv1.StopJobRequest{Id: id})
		stopped <- result{r.GetJob(), err}
		if err != nil {
			giveUp() // ends the output too
			return
		}
		t := time.NewTimer(outputAfterStop)
		defer t.Stop()
		select {
		case <-t.C:
			endOutput(fmt.Errorf("not received within %v of the job's end", outputAfterStop))
		case <-output.Done():
		}
	}()
	if _, err := streamOutput(output, client, id, next, true, e.stdout, e.stderr, c.JSON); err != nil && wait.Err() == nil {
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

// outputAfterStop is how long an interrupted run waits for the rest of the
// job's output once the job has stopped.
var outputAfterStop = time.Minute

// finalStatus watches job id until it ends and returns its last status.
func finalStatus(ctx context.Context, client jobworkerv1.JobWorkerServiceClient, id string) (*jobworkerv1.Job, error) {
	st, err := client.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: id, Watch: true})
	if err != nil {
		return nil, err
	}
	var last *jobworkerv1.Job
	for {
		r, err := st.Recv()
		if err == io.EOF {
			return last, nil
		}
		if err != nil {
			return nil, err
		}
		last = r.GetJob()
	}
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
// does), 1 otherwise.
func startError(msg error, err error) error {
	code := exitError
	if status.Code(err) == codes.FailedPrecondition {
		m := status.Convert(err).Message()
		switch {
		case strings.Contains(m, "not found"):
			code = 127
		case strings.Contains(m, "permission denied"), strings.Contains(m, "not executable"):
			code = 126
		}
	}
	return &exitCodeError{code: code, msg: msg.Error()}
}

// jobExit ends `run` with the job's exit code: its own, or 128+N for
// signal N.
func jobExit(e *env, j *jobworkerv1.Job, asJSON bool) error {
	if j == nil {
		return errors.New("the server sent no final status")
	}
	if asJSON {
		printJSON(e.stdout, j)
	}
	code := exitError
	switch {
	case j.ExitCode != nil:
		code = int(j.GetExitCode())
	case j.Signal != nil:
		code = 128 + int(j.GetSignal())
	}
	if !asJSON && j.GetState() != jobworkerv1.JobState_JOB_STATE_COMPLETED {
		fmt.Fprintf(e.stderr, "job %s %s\n", j.GetId(), outcome(j))
	}
	if code == 0 {
		return nil
	}
	return &exitCodeError{code: code}
}

// streamOutput copies a job's output from offset to w, until the job ends
// when following, or up to the current end. When the connection drops it
// resumes by itself from the byte after the last one received, so no byte
// is lost or repeated; it says so once per outage on notes. With asJSON it
// prints the chunks as messages. It returns the offset after the last byte
// written to w.
func streamOutput(ctx context.Context, client jobworkerv1.JobWorkerServiceClient, id string, offset int64, follow bool, w, notes io.Writer, asJSON bool) (next int64, err error) {
	backoff := 100 * time.Millisecond
	reconnecting := false
	for {
		var stream grpc.ServerStreamingClient[jobworkerv1.GetJobOutputResponse]
		stream, err = client.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: id, Offset: offset, Follow: follow})
		if err == nil {
			for {
				var r *jobworkerv1.GetJobOutputResponse
				r, err = stream.Recv()
				if err != nil {
					break
				}
				if reconnecting {
					fmt.Fprintf(notes, "jobworker: reconnected; resuming at byte %d\n", r.GetOffset())
					reconnecting = false
				}
				if r.GetDropped() > 0 && !asJSON {
					fmt.Fprintf(notes, "jobworker: %d bytes of output before offset %d were dropped by the server's output cap\n", r.GetDropped(), r.GetOffset())
				}
				if asJSON {
					err = printJSON(w, r)
				} else {
					_, err = w.Write(r.GetData())
				}
				if err != nil {
					return offset, err
				}
				backoff = 100 * time.Millisecond
				offset = r.GetOffset() + int64(len(r.GetData()))
			}
			if err == io.EOF {
				if reconnecting {
					fmt.Fprintf(notes, "jobworker: reconnected; the output ends at byte %d\n", offset)
				}
				return offset, nil
			}
		}
		if ctx.Err() != nil {
			return offset, ctx.Err()
		}
		if status.Code(err) != codes.Unavailable {
			return offset, err
		}
		// The connection dropped: resume from the next byte.
		if !reconnecting {
			fmt.Fprintf(notes, "jobworker: connection lost (%s); reconnecting to resume at byte %d\n", lastCause(status.Convert(err).Message()), offset)
			reconnecting = true
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return offset, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
		if offset < 0 {
			offset = 0
		}
	}
}

// stopCmd is `jobworker stop`.
type stopCmd struct {
	clientFlags `embed:""`

	Grace *time.Duration `placeholder:"DUR" help:"Time between SIGTERM and kill (default: the server's)."`
	ID    string         `arg:"" name:"id" help:"Job ID."`
}

// Run stops a job and prints its final state.
func (c *stopCmd) Run(e *env) error {
	client, closeConn, err := c.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	req := &jobworkerv1.StopJobRequest{Id: c.ID}
	if c.Grace != nil {
		req.Grace = durationpb.New(*c.Grace)
	}
	r, err := client.StopJob(e.ctx, req)
	if err != nil {
		return c.rpcError("stop job "+c.ID, err)
	}
	if c.JSON {
		return printJSON(e.stdout, r.GetJob())
	}
	fmt.Fprintf(e.stderr, "job %s %s\n", c.ID, outcome(r.GetJob()))
	return nil
}

// statusCmd is `jobworker status`.
type statusCmd struct {
	clientFlags `embed:""`

	Watch bool   `short:"w" help:"Redraw status and usage until the job ends."`
	ID    string `arg:"" optional:"" name:"id" help:"Job ID; without it, the server's figures."`
}

// Run shows a job's or the server's status.
func (c *statusCmd) Run(e *env) error {
	client, closeConn, err := c.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	if c.ID == "" {
		if c.Watch {
			return &exitCodeError{code: exitUsage, msg: "status: --watch needs a job ID"}
		}
		r, err := client.GetServerStatus(e.ctx, &jobworkerv1.GetServerStatusRequest{})
		if err != nil {
			return c.rpcError("server status", err)
		}
		if c.JSON {
			return printJSON(e.stdout, r)
		}
		return printServerStatus(e.stdout, r)
	}
	stream, err := client.GetJobStatus(e.ctx, &jobworkerv1.GetJobStatusRequest{Id: c.ID, Watch: c.Watch})
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

// logsCmd is `jobworker logs`.
type logsCmd struct {
	clientFlags `embed:""`

	Follow bool   `short:"f" help:"Keep printing new output until the job ends."`
	Offset *int64 `xor:"start" placeholder:"N" help:"Start at byte N (negative: N bytes before the end)."`
	Tail   *int   `xor:"start" placeholder:"N" help:"Show the last N lines."`
	ID     string `arg:"" name:"id" help:"Job ID."`
}

// Run prints a job's output.
func (c *logsCmd) Run(e *env) error {
	client, closeConn, err := c.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	var off int64
	switch {
	case c.Offset != nil:
		off = *c.Offset
	case c.Tail != nil:
		if *c.Tail < 0 {
			return &exitCodeError{code: exitUsage, msg: "logs: --tail must not be negative"}
		}
		off, err = tailOffset(e.ctx, client, c.ID, *c.Tail)
		if err != nil {
			return c.rpcError("output of job "+c.ID, err)
		}
	}
	if _, err := streamOutput(e.ctx, client, c.ID, off, c.Follow, e.stdout, e.stderr, c.JSON); err != nil {
		if e.ctx.Err() != nil {
			return nil
		}
		return c.rpcError("output of job "+c.ID, err)
	}
	return nil
}

// tailOffset finds the offset where the last n lines of a job's output
// start, reading back from the end in growing steps.
func tailOffset(ctx context.Context, client jobworkerv1.JobWorkerServiceClient, id string, n int) (int64, error) {
	st, err := client.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: id})
	if err != nil {
		return 0, err
	}
	r, err := st.Recv()
	if err != nil {
		return 0, err
	}
	size, start := r.GetJob().GetOutputSize(), r.GetJob().GetOutputStart()
	if n == 0 {
		return size, nil
	}
	for back := int64(64 << 10); ; back *= 4 {
		from := max(size-back, start)
		var buf bytes.Buffer
		stream, err := client.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: id, Offset: from})
		if err != nil {
			return 0, err
		}
		for {
			c, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, err
			}
			if end := c.GetOffset() + int64(len(c.GetData())); end > size {
				buf.Write(c.GetData()[:len(c.GetData())-int(end-size)])
				break
			}
			buf.Write(c.GetData())
		}
		data := buf.Bytes()
		// A final line without a newline counts as a line.
		end := len(data)
		if end > 0 && data[end-1] == '\n' {
			end--
		}
		count := 0
		for i := end - 1; i >= 0; i-- {
			if data[i] == '\n' {
				count++
				if count == n {
					return from + int64(i) + 1, nil
				}
			}
		}
		if from == start {
			return start, nil
		}
	}
}

// listCmd is `jobworker list`.
type listCmd struct {
	clientFlags `embed:""`

	State []string `placeholder:"STATE" enum:"pending,running,completed,failed,stopped" help:"Only jobs in this state (repeatable): pending, running, completed, failed, stopped."`
	User  []string `placeholder:"NAME" help:"Only jobs of this user (repeatable)."`
}

// Run lists jobs.
func (c *listCmd) Run(e *env) error {
	client, closeConn, err := c.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	req := &jobworkerv1.ListJobsRequest{Owners: c.User}
	for _, s := range c.State {
		req.States = append(req.States, jobworkerv1.JobState(jobworkerv1.JobState_value["JOB_STATE_"+strings.ToUpper(s)]))
	}
	r, err := client.ListJobs(e.ctx, req)
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

// Human output.

func stateName(s jobworkerv1.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

func reasonName(r jobworkerv1.FailureReason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "FAILURE_REASON_"))
}

// outcome is a job's state in a few words: "completed", "failed: exit code
// 3", "stopped (signal 9)".
func outcome(j *jobworkerv1.Job) string {
	s := stateName(j.GetState())
	var detail []string
	switch j.GetReason() {
	case jobworkerv1.FailureReason_FAILURE_REASON_UNSPECIFIED, jobworkerv1.FailureReason_FAILURE_REASON_EXIT_CODE, jobworkerv1.FailureReason_FAILURE_REASON_SIGNAL:
	default:
		detail = append(detail, reasonName(j.GetReason()))
	}
	if j.ExitCode != nil {
		detail = append(detail, fmt.Sprintf("exit code %d", j.GetExitCode()))
	}
	if j.Signal != nil {
		detail = append(detail, fmt.Sprintf("signal %d", j.GetSignal()))
	}
	if len(detail) > 0 {
		s += " (" + strings.Join(detail, ", ") + ")"
	}
	return s
}

func commandLine(j *jobworkerv1.Job) string {
	parts := append([]string{j.GetCommand()}, j.GetArgs()...)
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, " \t\n'\"\\$") {
			parts[i] = strconv.Quote(p)
		}
	}
	return strings.Join(parts, " ")
}

func printJob(w io.Writer, j *jobworkerv1.Job) {
	row := func(k, v string) { fmt.Fprintf(w, "%-9s %s\n", k, v) }
	row("ID", j.GetId())
	row("State", outcome(j))
	if j.GetMessage() != "" {
		row("Message", j.GetMessage())
	}
	row("Owner", j.GetOwner())
	row("Command", commandLine(j))
	times := "created " + j.GetCreateTime().AsTime().Local().Format(time.DateTime)
	if j.StartTime != nil {
		times += ", started " + j.GetStartTime().AsTime().Local().Format(time.DateTime)
	}
	if j.EndTime != nil && j.StartTime != nil {
		times += ", ran " + j.GetEndTime().AsTime().Sub(j.GetStartTime().AsTime()).Round(time.Millisecond).String()
	} else if j.StartTime != nil {
		times += ", running " + time.Since(j.GetStartTime().AsTime()).Round(time.Second).String()
	}
	row("Time", times)
	row("Limits", limitsLine(j.GetLimits()))
	u := j.GetUsage()
	row("CPU", fmt.Sprintf("%v (user %v, system %v)", usec(u.GetCpuUsageUsec()), usec(u.GetCpuUserUsec()), usec(u.GetCpuSystemUsec())))
	row("Memory", fmt.Sprintf("%s (peak %s), OOM kills %d", formatSize(u.GetMemoryCurrentBytes()), formatSize(u.GetMemoryPeakBytes()), u.GetOomKills()))
	row("I/O", fmt.Sprintf("read %s in %d ops, wrote %s in %d ops", formatSize(u.GetIoReadBytes()), u.GetIoReadOps(), formatSize(u.GetIoWriteBytes()), u.GetIoWriteOps()))
	row("Pids", strconv.FormatUint(u.GetPidsCurrent(), 10))
	out := formatSize(uint64(j.GetOutputSize()))
	if j.GetOutputStart() > 0 {
		out += fmt.Sprintf(" (the first %s dropped by the output cap)", formatSize(uint64(j.GetOutputStart())))
	}
	row("Output", out)
}

func usec(n uint64) time.Duration {
	return (time.Duration(n) * time.Microsecond).Round(time.Millisecond)
}

func limitsLine(l *jobworkerv1.Limits) string {
	var parts []string
	if l.CpuWeight != nil {
		parts = append(parts, fmt.Sprintf("cpu weight %d", l.GetCpuWeight()))
	}
	if l.Cpus != nil {
		parts = append(parts, fmt.Sprintf("cpus %g", l.GetCpus()))
	}
	if l.MemoryMaxBytes != nil {
		m := "memory " + formatSize(l.GetMemoryMaxBytes())
		if l.MemoryHighBytes != nil {
			m += " (high " + formatSize(l.GetMemoryHighBytes()) + ")"
		}
		parts = append(parts, m)
	}
	if l.IoWeight != nil {
		parts = append(parts, fmt.Sprintf("io weight %d", l.GetIoWeight()))
	}
	for _, m := range l.GetIoMax() {
		parts = append(parts, fmt.Sprintf("io %s rbps %d wbps %d riops %d wiops %d", m.GetDevice(), m.GetReadBps(), m.GetWriteBps(), m.GetReadIops(), m.GetWriteIops()))
	}
	if l.PidsMax != nil {
		parts = append(parts, fmt.Sprintf("pids %d", l.GetPidsMax()))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func printJobTable(w io.Writer, jobs []*jobworkerv1.Job) error {
	sort.SliceStable(jobs, func(a, b int) bool {
		return jobs[a].GetCreateTime().AsTime().After(jobs[b].GetCreateTime().AsTime())
	})
	fmt.Fprintf(w, "%-36s  %-28s  %-12s  %-19s  %s\n", "ID", "STATE", "OWNER", "CREATED", "COMMAND")
	for _, j := range jobs {
		cmd := commandLine(j)
		if len(cmd) > 60 {
			cmd = cmd[:57] + "..."
		}
		fmt.Fprintf(w, "%-36s  %-28s  %-12s  %-19s  %s\n", j.GetId(), outcome(j), j.GetOwner(), j.GetCreateTime().AsTime().Local().Format(time.DateTime), cmd)
	}
	return nil
}

func printServerStatus(w io.Writer, r *jobworkerv1.GetServerStatusResponse) error {
	row := func(k, v string) { fmt.Fprintf(w, "%-11s %s\n", k, v) }
	row("Version", r.GetVersion())
	row("Jobs", fmt.Sprintf("%d running (at most %d), %d pending", r.GetJobsRunning(), r.GetMaxRunning(), r.GetJobsPending()))
	row("Memory", fmt.Sprintf("%s reserved of %s capacity", formatSize(r.GetMemoryReservedBytes()), formatSize(r.GetMemoryCapacityBytes())))
	u := r.GetUsage()
	row("Usage", fmt.Sprintf("cpu %v, memory %s, io read %s wrote %s, pids %d, OOM kills %d", usec(u.GetCpuUsageUsec()), formatSize(u.GetMemoryCurrentBytes()), formatSize(u.GetIoReadBytes()), formatSize(u.GetIoWriteBytes()), u.GetPidsCurrent(), u.GetOomKills()))
	ctl := strings.Join(r.GetCgroupControllers(), " ")
	if ctl == "" {
		ctl = "none (jobs get their cgroups, without limits)"
	}
	row("Controllers", ctl)
	return nil
}
