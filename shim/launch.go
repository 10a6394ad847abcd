package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// Fixed descriptors of the shim.
const (
	specFD = 3
	errFD  = 4
)

// markerEnv is set in the shim's own environment (never the job's) so that
// `jobworker init` run by hand does not mistake stray descriptors for a spec.
const markerEnv = "JOBWORKER_SHIM"

// shimArg is the argument that makes the binary the shim.
const shimArg = "init"

// report is what the shim writes to the error pipe: a *StartError.
type report struct {
	Reason  Reason `json:"reason"`
	Stage   string `json:"stage"`
	Errno   int    `json:"errno"`
	Message string `json:"message"`
}

// Launcher starts shims.
type Launcher struct {
	// Binary is the jobworker binary; empty: /proc/self/exe.
	Binary string

	// env is added to the shim's own environment (not the job's): for
	// tests only, through export_test.go.
	env []string
}

// Start launches the shim for spec with stdout and stderr as the job's
// output, and returns the process once the command has been exec'd. The
// caller must Wait for it. If the command could not be started the shim has
// been reaped and the error is a *StartError.
//
// The process holds a pidfd from its start where the kernel has them
// (Linux 5.4+): os.StartProcess clones it with CLONE_PIDFD, Wait and Signal
// use the pidfd, and WithHandle lends it, for a wait that does not reap.
func (l Launcher) Start(spec Spec, stdout, stderr *os.File) (*os.Process, error) {
	bin := l.Binary
	if bin == "" {
		bin = "/proc/self/exe"
	}
	payload, err := json.Marshal(spec)
	if err != nil {
		return nil, &StartError{Reason: ReasonInternal, Stage: "encode spec", Err: err}
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, &StartError{Reason: ReasonInternal, Stage: "spec pipe", Err: err}
	}
	defer specW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		specR.Close()
		return nil, &StartError{Reason: ReasonInternal, Stage: "error pipe", Err: err}
	}
	defer errR.Close()

	cmd := exec.Command(bin, shimArg)
	cmd.Env = append([]string{markerEnv + "=1"}, l.env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{specR, errW} // fds 3 and 4
	if spec.Isolate {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneFlags(spec)}
	}
	err = cmd.Start()
	specR.Close()
	errW.Close()
	if err != nil {
		return nil, &StartError{Reason: ReasonInternal, Stage: "start shim", Err: err}
	}
	// The shim reads the spec to EOF before anything else; a write error
	// means it died, which the error pipe or Wait will tell.
	_, werr := specW.Write(payload)
	specW.Close()

	msg, rerr := io.ReadAll(errR)
	if rerr == nil && len(msg) == 0 && werr == nil {
		return cmd.Process, nil
	}
	state, _ := cmd.Process.Wait()
	var rep report
	if len(msg) > 0 && json.Unmarshal(msg, &rep) == nil {
		return nil, rep.startError()
	}
	return nil, &StartError{Reason: ReasonInternal, Stage: "shim", Err: fmt.Errorf("shim ended (%v) without a report: %v %v", state, werr, rerr)}
}

// newReport is the report of err, which the shim's steps make a
// *StartError; anything else is internal.
func newReport(err error) report {
	se, ok := err.(*StartError)
	if !ok {
		se = &StartError{Reason: ReasonInternal, Stage: "shim", Err: err}
	}
	r := report{Reason: se.Reason, Stage: se.Stage}
	if se.Err != nil {
		r.Message = se.Err.Error()
	}
	var errno syscall.Errno
	if errors.As(se.Err, &errno) {
		r.Errno = int(errno)
	}
	return r
}

// startError is the *StartError that the shim reported, with its errno
// kept for errors.Is.
func (r report) startError() *StartError {
	err := error(errors.New(r.Message))
	if r.Errno != 0 {
		err = &errnoError{msg: r.Message, errno: syscall.Errno(r.Errno)}
	}
	reason := r.Reason
	if reason == "" {
		reason = ReasonInternal
	}
	return &StartError{Reason: reason, Stage: r.Stage, Err: err}
}

// errnoError is the shim's message with the errno it carries, for
// errors.Is.
type errnoError struct {
	msg   string
	errno syscall.Errno
}

func (e *errnoError) Error() string { return e.msg }
func (e *errnoError) Unwrap() error { return e.errno }
