package shim

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// LookPath finds the file that running command executes, searching as
// execvp(3) does and checking with the caller's permissions: command itself
// when it holds a slash; otherwise the first executable regular file of that
// name in the directories of path, a relative directory (an empty one is
// the current directory) taken from dir. It is the one command lookup of
// jobworker: the shim calls it as the job's user right before exec, and the
// server (as root, so it can only tell less) for a job it queues, so that a
// command that cannot run is still StartJob's error.
//
// A failure is a *StartError of stage "lookup" whose reason is
//
//   - not found: no such file, or a component of its path is not a
//     directory;
//   - permission denied: the file may not be executed by the caller (no
//     execute permission, or a search permission missing on its path) or it
//     is not a regular file;
//   - not executable: it is a directory.
//
// Searching path, a file that exists but fails is passed over for a later
// directory; when none has the command, the first such failure is the
// answer, and not found only when no directory has a file of that name.
// Whether the kernel can execute what a file holds (ENOEXEC: not
// executable) only execve tells.
func LookPath(command, path, dir string) (string, error) {
	if strings.Contains(command, "/") {
		if err := checkExecutable(command); err != nil {
			return "", lookupError(err)
		}
		return command, nil
	}
	var first error
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, command)
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if first == nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			first = err
		}
	}
	if first != nil {
		return "", lookupError(first)
	}
	return "", lookupError(fmt.Errorf("%s not found on PATH %q: %w", command, path, unix.ENOENT))
}

func lookupError(err error) *StartError {
	return &StartError{Reason: execReason(err), Stage: "lookup", Err: err}
}

// checkExecutable reports why p cannot be executed by the caller, or nil;
// every error wraps the errno that execve would give.
func checkExecutable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return fmt.Errorf("%s is a directory: %w", p, unix.EISDIR)
	default:
		return fmt.Errorf("%s is not a regular file: %w", p, unix.EACCES)
	}
	// access(2) checks with the real ids, which the shim has set to the
	// job's user; for root it passes when any execute bit is set, as
	// execve does.
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
