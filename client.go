package main

import "time"

// clientFlags are the flags every client verb shares.
type clientFlags struct {
	Server string `default:"localhost:50051" placeholder:"ADDR" help:"Server address (host:port)."`
	CA     string `name:"ca" placeholder:"FILE" type:"path" help:"CA that signed the server's certificate (PEM)."`
	Cert   string `placeholder:"FILE" type:"path" help:"Client certificate (PEM)."`
	Key    string `placeholder:"FILE" type:"path" help:"Client private key (PEM)."`
	JSON   bool   `name:"json" help:"Print the API's messages as protobuf JSON, one object per line."`
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

// Run starts a job.
func (c *runCmd) Run(e *env) error {
	if len(c.argv()) == 0 {
		return &exitCodeError{code: exitUsage, msg: "run: missing command after --"}
	}
	return errNotImplemented
}

// stopCmd is `jobworker stop`.
type stopCmd struct {
	clientFlags `embed:""`

	Grace *time.Duration `placeholder:"DUR" help:"Time between SIGTERM and kill (default: the server's)."`
	ID    string         `arg:"" name:"id" help:"Job ID."`
}

// Run stops a job.
func (c *stopCmd) Run(e *env) error { return errNotImplemented }

// statusCmd is `jobworker status`.
type statusCmd struct {
	clientFlags `embed:""`

	Watch bool   `short:"w" help:"Redraw status and usage until the job ends."`
	ID    string `arg:"" optional:"" name:"id" help:"Job ID; without it, the server's figures."`
}

// Run shows a job's or the server's status.
func (c *statusCmd) Run(e *env) error { return errNotImplemented }

// logsCmd is `jobworker logs`.
type logsCmd struct {
	clientFlags `embed:""`

	Follow bool   `short:"f" help:"Keep printing new output until the job ends."`
	Offset *int64 `xor:"start" placeholder:"N" help:"Start at byte N (negative: N bytes before the end)."`
	Tail   *int   `xor:"start" placeholder:"N" help:"Show the last N lines."`
	ID     string `arg:"" name:"id" help:"Job ID."`
}

// Run prints a job's output.
func (c *logsCmd) Run(e *env) error { return errNotImplemented }

// listCmd is `jobworker list`.
type listCmd struct {
	clientFlags `embed:""`

	State []string `placeholder:"STATE" enum:"pending,running,completed,failed,stopped" help:"Only jobs in this state (repeatable): pending, running, completed, failed, stopped."`
	User  []string `placeholder:"NAME" help:"Only jobs of this user (repeatable)."`
}

// Run lists jobs.
func (c *listCmd) Run(e *env) error { return errNotImplemented }
