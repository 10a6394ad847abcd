package job

import (
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/shim"
)

// State is where a job is in its life.
type State string

// The states.
const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateCompleted State = "completed"
	StateFailed    State = "failed"
	StateStopped   State = "stopped"
	// StatePaused is a running job whose processes are frozen (Pause).
	StatePaused State = "paused"
)

// Ended reports whether s is final.
func (s State) Ended() bool {
	return s == StateCompleted || s == StateFailed || s == StateStopped
}

// hasProcess reports whether a job in state s has been started and has not
// ended: it is running or paused.
func (s State) hasProcess() bool { return s == StateRunning || s == StatePaused }

// Reason says why a job FAILED. It is the shim's reason type, the one of
// jobworker: a job that could not be started fails with ReasonExecFailed,
// and the shim's reason for it (not found, permission denied, ...) is in
// the job's message (see startFailed).
type Reason = shim.Reason

// The reasons a job fails with.
const (
	ReasonNone            Reason = ""
	ReasonExitCode        Reason = "exit_code"
	ReasonSignal          Reason = "signal"
	ReasonOOMKilled       Reason = "oom_killed"
	ReasonTimedOut        Reason = "timed_out"
	ReasonExecFailed      Reason = "exec_failed"
	ReasonServerRestarted Reason = "server_restarted"
	ReasonOutputLost      Reason = "output_lost"
	// ReasonDamaged: the job's record could not be read at Open, so how it
	// ended is unknown (see Status.Damaged).
	ReasonDamaged Reason = "damaged"
)

// Request asks for a job.
type Request struct {
	Owner   string
	Command string
	Args    []string
	Env     map[string]string
	Dir     string          // absolute; empty: the run-as user's home, or /
	Limits  cgroupfs.Limits // zero fields take the Manager's defaults
	Timeout time.Duration   // 0: none
	// RequestID, when set, makes the start idempotent: another Start of
	// the same owner with the same RequestID returns this job while it is
	// retained (a lower-case UUID, like a job ID).
	RequestID string
	// Network is the job's network: the host's (empty or NetworkHost), or
	// a namespace of its own with only loopback (NetworkNone).
	Network Network
	// SecretEnv are variables the job sees like Env's that are never
	// written to disk nor returned: Status has their names only. Its names
	// follow Env's rules, and none may be in both.
	SecretEnv map[string]string
	// Name and Labels help users find the job (CheckName, CheckLabels);
	// both are optional.
	Name   string
	Labels map[string]string
}

// Network is a job's network.
type Network string

// The networks.
const (
	NetworkHost Network = "host"
	NetworkNone Network = "none"
)

// Status is a job as recorded: what was asked, what happened, what it used.
// The record on disk has types of its own (record.go), so that a field
// renamed here or in cgroupfs never changes the file.
type Status struct {
	ID        string
	RequestID string // the request ID it was started with, if any
	Owner     string
	Name      string
	Labels    map[string]string
	Command   string
	Args      []string
	Env       map[string]string
	Dir       string
	Limits    cgroupfs.Limits
	Timeout   time.Duration
	Network   Network
	// SecretEnvNames are the names of the job's secret variables, sorted.
	SecretEnvNames []string
	State          State
	Reason         Reason
	ExitCode       *int
	Signal         *int
	Message        string
	Created        time.Time
	Started        time.Time
	Ended          time.Time
	Usage          cgroupfs.Usage
	// OutputSize and OutputStart are filled in by Get and List from the
	// job's output log: the bytes written and the first still kept.
	OutputSize  int64
	OutputStart int64
	// Damaged says what Open found damaged or missing of the job on disk
	// (its record, its output) and what is still readable; empty for a
	// sound job. It is not recorded: every Open finds it anew (damage.go).
	Damaged string
}

// Errors of the Manager. Validation errors wrap ErrInvalid.
var (
	ErrInvalid    = errors.New("invalid job request")
	ErrNeverFits  = errors.New("the job's memory limit exceeds the server's memory capacity")
	ErrNotFound   = errors.New("job not found")
	ErrClosed     = errors.New("the job manager is shutting down")
	ErrOutputLost = errors.New("the job's output could not be stored")
	ErrStateFull  = errors.New("the server's state directory is full")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Bounds of a request.
const (
	MaxCommandBytes = 4096
	MaxArgs         = 4096
	MaxArgBytes     = MaxRequestBytes // all arguments together
	MaxEnv          = 1024
	MaxEnvBytes     = MaxRequestBytes // all variables together
	// MaxRequestBytes bounds the command, arguments and environment
	// (secret variables included) together.
	MaxRequestBytes = 256 << 10
)

// validEnvName reports whether k is a portable environment variable name:
// letters, digits and _, not starting with a digit.
func validEnvName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// argBytes is the size of the arguments together.
func (r *Request) argBytes() int {
	n := 0
	for _, a := range r.Args {
		n += len(a)
	}
	return n
}

// Validate checks a request's fields and says what is wrong. Strings must
// be UTF-8: a job's record is JSON, which would replace any other bytes, so
// the record would no longer say what ran.
func (r *Request) Validate() error {
	if r.RequestID != "" && !ValidID(r.RequestID) {
		return invalid("request ID %q: want a lower-case UUID like 6f9619ff-8b86-4011-b42d-00c04fc964ff", truncateID(r.RequestID))
	}
	if r.Name != "" {
		if err := CheckName(r.Name); err != nil {
			return err
		}
	}
	if err := CheckLabels(r.Labels); err != nil {
		return err
	}
	if r.Command == "" {
		return invalid("empty command")
	}
	if len(r.Command) > MaxCommandBytes {
		return invalid("command is %d bytes, over the limit of %d", len(r.Command), MaxCommandBytes)
	}
	if strings.IndexByte(r.Command, 0) >= 0 {
		return invalid("command holds a NUL byte")
	}
	if !utf8.ValidString(r.Command) {
		return invalid("command is not valid UTF-8")
	}
	if strings.Contains(r.Command, "/") && !filepath.IsAbs(r.Command) {
		return invalid("command %.64q is a relative path: give an absolute path, or a name found on the job's PATH", r.Command)
	}
	if len(r.Args) > MaxArgs {
		return invalid("%d arguments, over the limit of %d", len(r.Args), MaxArgs)
	}
	n := 0
	for i, a := range r.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return invalid("argument %d holds a NUL byte", i+1)
		}
		if !utf8.ValidString(a) {
			return invalid("argument %d is not valid UTF-8", i+1)
		}
		n += len(a)
	}
	if n > MaxArgBytes {
		return invalid("arguments are %d bytes, over the limit of %d", n, MaxArgBytes)
	}
	if len(r.Env)+len(r.SecretEnv) > MaxEnv {
		return invalid("%d environment variables, over the limit of %d", len(r.Env)+len(r.SecretEnv), MaxEnv)
	}
	n = 0
	for _, vars := range []struct {
		what string
		env  map[string]string
	}{{"environment variable", r.Env}, {"secret environment variable", r.SecretEnv}} {
		for k, v := range vars.env {
			if !validEnvName(k) {
				return invalid("%s name %q: use letters, digits and _, not starting with a digit", vars.what, k)
			}
			if k == "JOBWORKER_JOB_ID" {
				return invalid("environment variable JOBWORKER_JOB_ID is set by the server")
			}
			// A secret's value is never quoted: only its name.
			if strings.IndexByte(v, 0) >= 0 {
				return invalid("%s %s holds a NUL byte", vars.what, k)
			}
			if !utf8.ValidString(v) {
				return invalid("%s %s is not valid UTF-8", vars.what, k)
			}
			n += len(k) + len(v) + 1
		}
	}
	for k := range r.SecretEnv {
		if _, ok := r.Env[k]; ok {
			return invalid("%s is both an environment variable and a secret one: give it once", k)
		}
	}
	if n > MaxEnvBytes {
		return invalid("environment is %d bytes, over the limit of %d", n, MaxEnvBytes)
	}
	if total := len(r.Command) + r.argBytes() + n; total > MaxRequestBytes {
		return invalid("command, arguments and environment are %d bytes together, over the limit of %d (256 KiB)", total, MaxRequestBytes)
	}
	switch r.Network {
	case "", NetworkHost, NetworkNone:
	default:
		return invalid("network %q: want host or none", truncateID(string(r.Network)))
	}
	if r.Dir != "" {
		if !filepath.IsAbs(r.Dir) || strings.IndexByte(r.Dir, 0) >= 0 {
			return invalid("working directory %q is not an absolute path", r.Dir)
		}
		if !utf8.ValidString(r.Dir) {
			return invalid("working directory is not valid UTF-8")
		}
		if filepath.Clean(r.Dir) != r.Dir {
			return invalid("working directory %q is not a clean path (no .., //, or trailing /)", r.Dir)
		}
	}
	if r.Timeout < 0 {
		return invalid("negative timeout %v", r.Timeout)
	}
	if err := r.Limits.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// NewID returns a random (version 4) UUID: a new job's ID, or a client's
// StartJob request ID, which has the same form.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ValidID reports whether id looks like a job ID (a lower-case UUID): a
// whole one of ValidIDPrefix's prefixes.
func ValidID(id string) bool { return len(id) == 36 && ValidIDPrefix(id) }

// truncateID cuts a malformed ID to at most 64 bytes for a message.
func truncateID(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
