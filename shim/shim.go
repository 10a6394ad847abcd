// Package shim starts a job's process so that no instruction of the job's
// command runs outside the job's cgroup or with the server's privileges.
//
// The server re-executes its own binary as `jobworker init` (Start) with the
// job's Spec on an inherited pipe (fd 3: never argv or the environment,
// which /proc exposes) and an error pipe (fd 4) that the shim marks
// close-on-exec. The shim (Main), on a locked OS thread:
//
//  1. writes its own pid into the job's cgroup.procs;
//  2. starts a new session (setsid), leaving the server's process group;
//  3. drops privileges: setgroups, setgid, setuid (Go applies them to
//     every thread of the process);
//  4. changes to the working directory and resolves the command on the
//     job's PATH, both as the job's user, so permissions are the user's;
//  5. sets no_new_privs, so no setuid binary can give privileges back;
//  6. marks every descriptor above 2 close-on-exec (close_range(2));
//  7. execve's the command.
//
// On any failure it writes the stage and errno to the error pipe and exits.
// The server reads the pipe to EOF: EOF with no data means the exec
// succeeded (the close-on-exec pipe closed in the exec), anything else is a
// *StartError. This is runc's init pattern (libcontainer/init_linux.go).
package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// Spec is what the shim needs to start a job's command.
type Spec struct {
	Command string   `json:"command"` // absolute path, or a name looked up on PATH
	Args    []string `json:"args"`    // arguments after the command
	Env     []string `json:"env"`     // the whole environment, KEY=VALUE
	Dir     string   `json:"dir"`     // working directory
	Cgroup  string   `json:"cgroup"`  // absolute cgroup directory to join; empty: stay
	// Credential of the job's user; nil runs as the caller (root), which
	// the server does only when told to.
	Credential *Credential `json:"credential,omitempty"`
	// Isolate runs the command as PID 1 of a PID namespace of its own, with
	// a mount namespace whose /proc shows only that namespace: a job can
	// neither see nor signal processes outside it, other jobs included.
	// It needs CAP_SYS_ADMIN (the server runs as root).
	Isolate bool `json:"isolate,omitempty"`
}

// Credential is the user a job runs as.
type Credential struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
	Home   string   `json:"home"`
}

// LookupUser resolves a user name (or numeric uid) to the credential a job
// runs with: its uid, primary gid, supplementary groups and home.
func LookupUser(name string) (*Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return nil, &StartError{Reason: ReasonUnknownUser, Stage: "lookup user", Err: fmt.Errorf("user %q: %w", name, err)}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, &StartError{Reason: ReasonUnknownUser, Stage: "lookup user", Err: fmt.Errorf("user %q has a non-numeric uid or gid", name)}
	}
	c := &Credential{UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	gids, err := u.GroupIds()
	if err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				c.Groups = append(c.Groups, uint32(n))
			}
		}
	}
	return c, nil
}

// Reason classifies why a job could not start.
type Reason string

// The reasons.
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

// report is what the shim writes to the error pipe.
type report struct {
	Stage   string `json:"stage"`
	Errno   int    `json:"errno"`
	Message string `json:"message"`
}

// Fixed descriptors of the shim.
const (
	specFD = 3
	errFD  = 4
)

// markerEnv is set in the shim's own environment (never the job's) so that
// `jobworker init` run by hand does not mistake stray descriptors for a spec.
const markerEnv = "JOBWORKER_SHIM"

// Launcher starts shims.
type Launcher struct {
	// Binary is the jobworker binary; empty: /proc/self/exe.
	Binary string
	// Args are the arguments that make Binary the shim; empty: ["init"].
	Args []string
	// Env is added to the shim's own environment (not the job's); usually
	// empty.
	Env []string
}

// Start launches the shim for spec with stdout and stderr as the job's
// output, and returns the process once the command has been exec'd. The
// caller must Wait for it. If the command could not be started the shim has
// been reaped and the error is a *StartError.
func (l Launcher) Start(spec Spec, stdout, stderr *os.File) (*os.Process, error) {
	bin := l.Binary
	if bin == "" {
		bin = "/proc/self/exe"
	}
	args := l.Args
	if len(args) == 0 {
		args = []string{"init"}
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

	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{markerEnv + "=1"}, l.Env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{specR, errW} // fds 3 and 4
	if spec.Isolate {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
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
		return nil, reportError(rep)
	}
	return nil, &StartError{Reason: ReasonInternal, Stage: "shim", Err: fmt.Errorf("shim ended (%v) without a report: %v %v", state, werr, rerr)}
}

// errnoError is the shim's message with the errno it carries, for
// errors.Is.
type errnoError struct {
	msg   string
	errno syscall.Errno
}

func (e *errnoError) Error() string { return e.msg }
func (e *errnoError) Unwrap() error { return e.errno }

// reportError turns the shim's report into a typed error.
func reportError(r report) *StartError {
	errno := syscall.Errno(r.Errno)
	err := error(errors.New(r.Message))
	if r.Errno != 0 {
		err = &errnoError{msg: r.Message, errno: errno}
	}
	reason := ReasonInternal
	switch r.Stage {
	case "join cgroup":
		reason = ReasonCgroup
	case "chdir":
		reason = ReasonBadWorkdir
	case "lookup", "exec":
		switch errno {
		case syscall.ENOENT, syscall.ENOTDIR:
			reason = ReasonNotFound
		case syscall.EACCES, syscall.EPERM:
			reason = ReasonPermissionDenied
		case syscall.ENOEXEC, syscall.EISDIR:
			reason = ReasonNotExecutable
		}
	}
	return &StartError{Reason: reason, Stage: r.Stage, Err: err}
}
