// Command jobworker runs Linux processes for authenticated clients, each in
// its own cgroup v2, keeps and streams their output, and answers over gRPC
// with mutual TLS 1.3. The same binary is the server (serve), the client (run,
// stop, status, logs, list, signal, pause, resume, update), a small PKI (certs) and, hidden, the init shim
// that places a job's process in its cgroup before it execs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/alecthomas/kong"
	"github.com/jobworker/jobworker/job"
	"github.com/jobworker/jobworker/shim"
)

// Exit codes of the CLI. A job's own exit code (run) passes through as is;
// a job killed by signal N exits 128+N, like a shell.
const (
	exitOK    = 0
	exitError = 1 // the command failed; the message says why
	exitUsage = 2 // the command line is wrong
	// exitRunFailed is run's code when jobworker itself failed (the
	// command line, the connection, the server's refusal), not the job:
	// docker run's 125, so that a job's own exit 1 or 2 is never taken
	// for it.
	exitRunFailed = 125
)

// cli is the whole command line: one field per verb.
type cli struct {
	VersionFlag kong.VersionFlag `name:"version" help:"Print the version and exit."`

	Serve   serveCmd   `cmd:"" help:"Run the job server (as root)."`
	Run     runCmd     `cmd:"" help:"Start a job, stream its output and exit with its exit code."`
	Stop    stopCmd    `cmd:"" help:"Stop a job: SIGTERM, a grace period, then kill every process of it."`
	Status  statusCmd  `cmd:"" help:"Show a job's status and usage, or the server's figures without an ID."`
	Logs    logsCmd    `cmd:"" help:"Print a job's output."`
	List    listCmd    `cmd:"" help:"List jobs."`
	Events  eventsCmd  `cmd:"" help:"Print the state changes of jobs as they happen."`
	Signal  signalCmd  `cmd:"" help:"Send a signal to a job's process group."`
	Pause   pauseCmd   `cmd:"" help:"Freeze every process of a job (cgroup.freeze)."`
	Resume  resumeCmd  `cmd:"" help:"Thaw a paused job."`
	Update  updateCmd  `cmd:"" help:"Change the limits of a pending, running or paused job."`
	Certs   certsCmd   `cmd:"" help:"Make a CA, a server certificate or client certificates."`
	Version versionCmd `cmd:"" help:"Print the version."`

	Completion completionCmd `cmd:"" help:"Print a shell completion script (bash, zsh or fish)."`
	Init       initCmd       `cmd:"" hidden:"" help:"The job shim the server starts; not for direct use."`
}

// env is what every verb is given to talk to the outside world, so that no
// verb writes to a package-level stdout.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
}

// exitCodeError ends the program with a given exit code after printing its
// message, if any.
type exitCodeError struct {
	code int
	msg  string
	// failed marks a failure of jobworker itself, not of the job, in a
	// verb (run) whose exit code is otherwise the job's.
	failed bool
}

func (e *exitCodeError) Error() string { return e.msg }

func main() {
	// The job shim, before the CLI model is built since one starts with
	// every job: shim.Main returns only in a process that is not a shim,
	// or in one that has no error pipe to report on.
	if err := shim.Main(); !errors.Is(err, shim.ErrNotShim) {
		fmt.Fprintf(os.Stderr, "jobworker init: %v\n", err)
		os.Exit(exitError)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// newParser builds the command-line parser of model, a *cli or what
// verbModel makes. Help and usage go to stdout and stderr; kong's own exits
// are turned into a panic of exitRequest that run recovers, so that run
// stays testable.
func newParser(model any, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(model,
		kong.Name("jobworker"),
		kong.Description("Run Linux processes in their own cgroup v2, stream their output, over gRPC with mutual TLS."),
		kong.Vars{"default_uid_range": job.DefaultUIDRange.String(), "version": "jobworker " + versionString()},
		kong.Configuration(loadServeConfig),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitRequest(code)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
}

// verbModel is what run parses args into: when they start with a verb, a
// struct of cli's flags and that verb's field alone (tags and type as they
// are in cli), otherwise a whole *cli. kong builds its model of every field
// and tag it is given, at every start: about 5 ms for the whole cli, most
// of it the flags of verbs other than the one run, which every command
// would pay (BENCHMARKS.md, "Start-up of the shim and the CLI").
// completion describes every verb, so it gets the whole cli. TestVerbModel
// checks that each verb parses and helps as it does in the whole cli.
func verbModel(args []string) any {
	if len(args) == 0 || args[0] == "completion" {
		return &cli{}
	}
	t := reflect.TypeFor[cli]()
	var fields []reflect.StructField
	found := false
	for i := range t.NumField() {
		f := t.Field(i)
		if _, isVerb := f.Tag.Lookup("cmd"); !isVerb {
			fields = append(fields, f)
		} else if strings.ToLower(f.Name) == args[0] {
			fields = append(fields, f)
			found = true
		}
	}
	if !found {
		return &cli{}
	}
	return reflect.New(reflect.StructOf(fields)).Interface()
}

// exitRequest is how kong asks to exit (after --help).
type exitRequest int

// run parses args, runs the verb and maps its error to an exit code.
func run(args []string, stdout, stderr io.Writer) (code int) {
	// The API carries text: a job's command, arguments and environment are
	// UTF-8 strings. Refuse other bytes here, before the parser (which would
	// turn them into U+FFFD) can change what the user asked to run.
	for i, a := range args {
		if !utf8.ValidString(a) {
			fmt.Fprintf(stderr, "jobworker: argument %d, %q, is not valid UTF-8: jobs take UTF-8 text only\n", i+1, a)
			if args[0] == "run" {
				return exitRunFailed
			}
			return exitUsage
		}
	}
	parser, err := newParser(verbModel(args), stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "jobworker: %v\n", err)
		return exitError
	}
	defer func() {
		if r := recover(); r != nil {
			req, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = int(req)
		}
	}()
	kctx, err := parser.Parse(joinNegativeValues(args))
	if err != nil {
		fmt.Fprintf(stderr, "jobworker: %v (see jobworker --help)\n", err)
		if len(args) > 0 && args[0] == "run" {
			return exitRunFailed
		}
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = kctx.Run(&env{ctx: ctx, stdout: stdout, stderr: stderr}, parser)
	if err == nil {
		return exitOK
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		switch {
		case ec.msg == "":
		case ec.failed:
			fmt.Fprintf(stderr, "jobworker %s: %s\n", verbName(kctx.Command()), ec.msg)
		default:
			fmt.Fprintf(stderr, "jobworker: %s\n", ec.msg)
		}
		return ec.code
	}
	fmt.Fprintf(stderr, "jobworker %s: %v\n", verbName(kctx.Command()), err)
	return exitError
}

// verbName is the verb of a kong command path without its placeholders:
// "certs client" for "certs client", "run" for "run <command>".
func verbName(path string) string {
	var words []string
	for _, w := range strings.Fields(path) {
		if !strings.HasPrefix(w, "<") {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

// joinNegativeValues turns "--offset -10" into "--offset=-10": kong takes a
// value that starts with "-" for a flag, but `logs --offset -N` is how
// users ask for the last N bytes.
func joinNegativeValues(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		if args[i] == "--" {
			return append(out, args[i:]...)
		}
		if args[i] == "--offset" && i+1 < len(args) && len(args[i+1]) > 1 && args[i+1][0] == '-' {
			if _, err := strconv.ParseInt(args[i+1], 10, 64); err == nil {
				out = append(out, args[i]+"="+args[i+1])
				i++
				continue
			}
		}
		out = append(out, args[i])
	}
	return out
}
