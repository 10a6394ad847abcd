package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/jobworker/jobworker/cgroupfs"
	"golang.org/x/sys/unix"
)

// Main is the shim: it reads the Spec from fd 3, prepares the process and
// execs the job's command. It returns only if it was not started as a shim
// (no spec pipe); on any other failure it reports on fd 4 and exits 127.
func Main() error {
	if os.Getenv(markerEnv) != "1" {
		return errors.New("init is the job shim that the server starts; it is not for direct use")
	}
	runtime.LockOSThread()
	for _, fd := range []int{specFD, errFD} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return fmt.Errorf("init: descriptor %d is not open: it is the job shim that the server starts, not for direct use", fd)
		}
	}
	// On success the exec closes the error pipe: EOF tells the server.
	unix.CloseOnExec(errFD)
	f := os.NewFile(specFD, "spec")
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		fail("read spec", err)
	}
	spec, err := ParseSpec(b)
	if err != nil {
		fail("parse spec", err)
	}
	stage, err := prepareAndExec(spec)
	fail(stage, err)
	return nil
}

// ParseSpec decodes and checks a spec.
func ParseSpec(b []byte) (Spec, error) {
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
	if s.Dir == "" {
		s.Dir = "/"
	}
	return s, nil
}

// prepareAndExec does the shim's steps in order; it returns only on
// failure, with the stage that failed.
func prepareAndExec(s Spec) (string, error) {
	if s.Cgroup != "" {
		if err := cgroupfs.AddProc(s.Cgroup, os.Getpid()); err != nil {
			return "join cgroup", err
		}
	}
	if s.Isolate {
		if err := mountOwnProc(); err != nil {
			return "isolate", err
		}
	}
	if _, err := unix.Setsid(); err != nil {
		return "setsid", err
	}
	if c := s.Credential; c != nil {
		groups := make([]int, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return "setgroups", err
		}
		if err := syscall.Setgid(int(c.GID)); err != nil {
			return "setgid", err
		}
		if err := syscall.Setuid(int(c.UID)); err != nil {
			return "setuid", err
		}
	}
	if err := unix.Chdir(s.Dir); err != nil {
		return "chdir", fmt.Errorf("working directory %s: %w", s.Dir, err)
	}
	path, err := lookPath(s.Command, EnvValue(s.Env, "PATH"))
	if err != nil {
		return "lookup", err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return "no_new_privs", err
	}
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return "close descriptors", err
	}
	argv := append([]string{s.Command}, s.Args...)
	err = unix.Exec(path, argv, s.Env)
	return "exec", fmt.Errorf("%s: %w", path, err)
}

// mountOwnProc gives the shim's new mount namespace a /proc of its new PID
// namespace. The mounts are made private first, so that the new /proc never
// propagates back into the host's namespace (mount_namespaces(7)).
func mountOwnProc() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	return nil
}

// lookPath finds the executable for cmd: a path when it holds a slash,
// otherwise the first executable regular file of that name on path. It
// checks with the caller's (the job user's) permissions.
func lookPath(cmd, path string) (string, error) {
	if strings.Contains(cmd, "/") {
		return cmd, checkExecutable(cmd)
	}
	var firstErr error
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, cmd)
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", fmt.Errorf("%s not found on PATH %q: %w", cmd, path, unix.ENOENT)
}

func checkExecutable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%s is a directory: %w", p, unix.EISDIR)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file: %w", p, unix.EACCES)
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// EnvValue is the value of key in env (KEY=VALUE entries, as a Spec holds
// them); the last setting wins, and a key that is not set is "".
func EnvValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// fail reports a failed stage on the error pipe and exits.
func fail(stage string, err error) {
	r := report{Stage: stage, Message: err.Error()}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		r.Errno = int(errno)
	}
	b, _ := json.Marshal(r)
	os.NewFile(errFD, "errors").Write(b)
	os.Exit(127)
}
