package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockExclusive takes an exclusive flock on path, opened with flag, without
// waiting: EWOULDBLOCK when another process holds it. The lock lasts until
// the returned file is closed or the process ends, however it ends, so a
// server killed with SIGKILL leaves no stale lock.
func lockExclusive(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// lockStateDir locks <dir>/server.lock and writes the server's pid into it,
// which a second server names when it is refused.
func lockStateDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "server.lock")
	f, err := lockExclusive(path, os.O_RDWR|os.O_CREATE)
	if errors.Is(err, unix.EWOULDBLOCK) {
		holder := "another jobworker server"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid := strings.TrimSpace(string(b)); pid != "" {
				holder += " (pid " + pid + ")"
			}
		}
		return nil, fmt.Errorf("state directory %s is in use by %s: stop it, or give this one its own --state-dir", dir, holder)
	}
	if err != nil {
		return nil, fmt.Errorf("lock the state directory: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Why checkTrusted refuses a path; an *untrustedError wraps one.
var (
	errSymlink      = errors.New("is a symbolic link")
	errNotDir       = errors.New("is not a directory")
	errNotFile      = errors.New("is not a regular file")
	errNotRootOwned = errors.New("is not owned by root")
	errOthersWrite  = errors.New("is writable by group or others")
)

// untrustedError is a path the server refuses to take anything from: what
// it is (the state directory, a file of the development PKI), why, and
// what to do.
type untrustedError struct {
	what, path string
	why        error  // one of the errors above
	detail     string // what was found: the link's target, the owner, the mode
	fix        string
}

func (e *untrustedError) Error() string {
	msg := fmt.Sprintf("%s %s %v", e.what, e.path, e.why)
	if e.detail != "" {
		msg += " (" + e.detail + ")"
	}
	return msg + ": " + e.fix
}

func (e *untrustedError) Unwrap() error { return e.why }

// checkTrusted refuses path unless it is a real directory (dir) or regular
// file (!dir), owned by root and not writable by group or others: whoever
// else could write there could plant the CA and the certificates the
// server trusts, or swap the directory for a link to one of root's (which
// the server would then chmod). The path is opened with O_PATH|O_NOFOLLOW
// and the checks are of what was opened, so a symbolic link is seen as
// one and never followed. fix says what to do when it is refused.
func checkTrusted(what, path string, dir bool, fix string) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	refuse := func(why error, detail string) error {
		return &untrustedError{what: what, path: path, why: why, detail: detail, fix: fix}
	}
	mode := os.FileMode(st.Mode & 0o7777)
	switch typ := st.Mode & unix.S_IFMT; {
	case typ == unix.S_IFLNK:
		target, _ := os.Readlink(path)
		return refuse(errSymlink, "to "+target)
	case dir && typ != unix.S_IFDIR:
		return refuse(errNotDir, "")
	case !dir && typ != unix.S_IFREG:
		return refuse(errNotFile, "")
	case st.Uid != 0:
		return refuse(errNotRootOwned, fmt.Sprintf("owner uid %d", st.Uid))
	case mode&0o022 != 0:
		return refuse(errOthersWrite, fmt.Sprintf("mode %#o", mode.Perm()))
	}
	return nil
}

// stateDirFix is what to do about a state directory checkTrusted refuses.
const stateDirFix = "the server keeps its jobs and trusts its certificates there; give --state-dir a directory of root's that only root may write, " +
	"such as the default /var/lib/jobworker or one made with `install -d -m 0700 DIR` where no other user can have made it first"

// prepareStateDir makes the state directory dir, with any missing parents,
// mode 0700 and owned by root (the server's euid) when it does not exist,
// then checks it with checkTrusted: an existing directory is used only if
// it is a real directory of root's that group and others cannot write.
func prepareStateDir(dir string) error {
	// MkdirAll follows a link in dir's place when it points to a
	// directory, and fails (EEXIST) when it points nowhere; it creates
	// nothing through it either way. When something is in dir's place,
	// checkTrusted says what is wrong with it.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if _, lerr := os.Lstat(dir); lerr != nil {
			return fmt.Errorf("create the state directory %s: %w", dir, err)
		}
	}
	return checkTrusted("state directory", dir, true, stateDirFix)
}
