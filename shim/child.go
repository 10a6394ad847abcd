package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"syscall"

	"github.com/jobworker/jobworker/cgroupfs"
	"golang.org/x/sys/unix"
)

// ErrNotShim is Main's answer in a process that Launcher.Start did not
// start: `jobworker init` is not for direct use.
var ErrNotShim = errors.New("init is the job shim that the server starts; it is not for direct use")

// Main is the shim's one entry point. A program that can be the shim calls
// it first thing in its main function, before it builds anything else,
// since a shim starts with every job.
//
// In a process that Launcher.Start did not start, Main does nothing and
// returns ErrNotShim. In a shim it reads the Spec from fd 3, prepares the
// process and execs the job's command; if anything fails before the exec (a
// panic included), it writes a *StartError to the error pipe (fd 4) and
// exits 127. It returns only when there is no error pipe to report on.
func Main() error {
	if !launched() {
		return ErrNotShim
	}
	return run(startCommand)
}

// launched reports whether Launcher.Start started this process: the marker
// in its environment and the one argument it is given.
func launched() bool {
	return os.Getenv(markerEnv) == "1" && slices.Equal(os.Args[1:], []string{shimArg})
}

// run is the shim once it knows it is one, with start as its last step:
// it returns only when there is no error pipe; otherwise it execs or, in
// its one deferred report, turns whatever stopped it (an error, a panic)
// into a *StartError on the error pipe and exits 127. This is runc's
// startInitialization (libcontainer/init_linux.go): a named error and a
// deferred send, so that nothing before the exec can end the shim without
// a report, which the server would read as a successful exec.
func run(start func(Spec) error) (retErr error) {
	runtime.LockOSThread()
	for _, fd := range []int{specFD, errFD} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return fmt.Errorf("init: descriptor %d is not open: it is the job shim that the server starts, not for direct use", fd)
		}
	}
	// On success the exec closes the error pipe: EOF tells the server.
	unix.CloseOnExec(errFD)
	errPipe := os.NewFile(errFD, "errors")
	defer func() {
		if r := recover(); r != nil {
			retErr = &StartError{Reason: ReasonInternal, Stage: "shim", Err: fmt.Errorf("panic before the exec: %v\n%s", r, debug.Stack())}
		}
		if retErr == nil {
			retErr = &StartError{Reason: ReasonInternal, Stage: "shim", Err: errors.New("the shim's steps ended without an exec or an error")}
		}
		b, _ := json.Marshal(newReport(retErr))
		errPipe.Write(b)
		os.Exit(127)
	}()
	f := os.NewFile(specFD, "spec")
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return &StartError{Reason: ReasonInternal, Stage: "read spec", Err: err}
	}
	spec, err := parseSpec(b)
	if err != nil {
		return &StartError{Reason: ReasonInternal, Stage: "parse spec", Err: err}
	}
	return start(spec)
}

// parseSpec decodes and checks a spec.
func parseSpec(b []byte) (Spec, error) {
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return s, err
	}
	if s.Command == "" {
		return s, errors.New("empty command")
	}
	if s.Cgroup != "" && !filepath.IsAbs(s.Cgroup) {
		return s, fmt.Errorf("cgroup %q is not an absolute path", s.Cgroup)
	}
	if (s.PIDNamespace || s.NoNetwork) && !s.Isolate {
		return s, errors.New("a PID or network namespace is asked for without Isolate")
	}
	if s.Dir == "" {
		s.Dir = "/"
	}
	if !filepath.IsAbs(s.Dir) {
		return s, fmt.Errorf("working directory %q is not an absolute path", s.Dir)
	}
	return s, nil
}

// startCommand does the shim's steps in order and execs the command; it
// returns only on failure, a *StartError with the stage that failed.
func startCommand(s Spec) error {
	internal := func(stage string, err error) error {
		return &StartError{Reason: ReasonInternal, Stage: stage, Err: err}
	}
	if s.Cgroup != "" {
		if err := cgroupfs.AddProc(s.Cgroup, os.Getpid()); err != nil {
			return &StartError{Reason: ReasonCgroup, Stage: "join cgroup", Err: err}
		}
	}
	if s.Isolate {
		if err := isolate(s); err != nil {
			return internal("isolate", err)
		}
	}
	if _, err := unix.Setsid(); err != nil {
		return internal("setsid", err)
	}
	if c := s.Credential; c != nil {
		groups := make([]int, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return internal("setgroups", err)
		}
		if err := syscall.Setgid(int(c.GID)); err != nil {
			return internal("setgid", err)
		}
		if err := syscall.Setuid(int(c.UID)); err != nil {
			return internal("setuid", err)
		}
	}
	if err := unix.Chdir(s.Dir); err != nil {
		return &StartError{Reason: ReasonBadWorkdir, Stage: "chdir", Err: fmt.Errorf("working directory %s: %w", s.Dir, err)}
	}
	path, err := LookPath(s.Command, EnvValue(s.Env, "PATH"), s.Dir)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return internal("no_new_privs", err)
	}
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return internal("close descriptors", err)
	}
	argv := append([]string{s.Command}, s.Args...)
	err = unix.Exec(path, argv, s.Env)
	err = fmt.Errorf("%s: %w", path, err)
	return &StartError{Reason: execReason(err), Stage: "exec", Err: err}
}
