package shim

import (
	"errors"
	"fmt"
	"syscall"
)

// Reason says why a job failed or could not start. It is the one reason
// type of jobworker: a *StartError carries one of the start reasons below,
// and a job's status (package job, whose Reason is this type) one of the
// failure reasons that package names, exec_failed among them for a job that
// could not be started.
type Reason string

// The reasons a command could not be started.
const (
	ReasonNotFound         Reason = "not found"
	ReasonPermissionDenied Reason = "permission denied"
	ReasonNotExecutable    Reason = "not executable"
	ReasonUnknownUser      Reason = "unknown user"
	ReasonBadWorkdir       Reason = "bad working directory"
	ReasonCgroup           Reason = "cgroup"
	ReasonInternal         Reason = "internal"
)

// StartError is why a job's command could not be started.
type StartError struct {
	Reason Reason
	Stage  string // what the shim was doing
	Err    error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Reason, e.Stage, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// execReason is the reason of an error looking up or executing a command,
// from its errno: the one place where an errno becomes a reason, for the
// lookup (LookPath, in the shim and in the server) and for execve.
func execReason(err error) Reason {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return ReasonInternal
	}
	switch errno {
	case syscall.ENOENT, syscall.ENOTDIR:
		return ReasonNotFound
	case syscall.EACCES, syscall.EPERM:
		return ReasonPermissionDenied
	case syscall.ENOEXEC, syscall.EISDIR:
		return ReasonNotExecutable
	}
	return ReasonInternal
}
