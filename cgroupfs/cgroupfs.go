// Package cgroupfs manages jobworker's cgroup v2 subtree by writing the
// kernel's control files directly (Documentation/admin-guide/cgroup-v2.rst).
//
// The server works inside one parent cgroup and never writes outside it:
//
//	<parent>/supervisor                the server itself
//	<parent>/jobs/                     all jobs: the parent's budget less the server's reserve
//	<parent>/jobs/user-<name>/         one level per user, equal weights
//	<parent>/jobs/user-<name>/<job-id> one cgroup per job
//
// Why the server moves itself into <parent>/supervisor: cgroup v2's "no
// internal process" rule (cgroup-v2.rst, "No Internal Process Constraint")
// lets a non-root cgroup enable controllers for its children only while it
// has no processes of its own, so the server cannot stay in <parent> and
// give jobs the cpu, memory, io and pids controllers. The jobs level holds
// every job, and its pids.max and memory.max sit below what the parent may
// use (KeepReserve), so that the jobs together never take what the server
// needs; as a sibling of the jobs level the server also gets half the CPU
// and I/O under contention, whatever number of jobs runs. The user level gives
// each user an equal share whatever number of jobs each runs (cpu.weight and
// io weight are distributed between siblings, "Weights" in cgroup-v2.rst).
//
// A host whose cgroup2 lacks a controller (cgroup v1 or hybrid mode) still
// gets placement, usage where the files exist, and whole-tree kill; a limit
// that needs the missing controller fails with an error that names it.
package cgroupfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// AllControllers returns the controllers jobworker enables for its jobs
// where the host offers them, sorted: a fresh slice the caller may change.
func AllControllers() []string { return []string{"cpu", "io", "memory", "pids"} }

// FindMount returns the cgroup2 mount point from /proc/self/mountinfo:
// /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one,
// or wherever else it is mounted.
func FindMount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	return parseMountinfo(b)
}

// parseMountinfo picks the cgroup2 mount point, preferring /sys/fs/cgroup.
func parseMountinfo(b []byte) (string, error) {
	var found []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// 36 35 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		rf, lf := strings.Fields(right), strings.Fields(left)
		if len(rf) < 1 || rf[0] != "cgroup2" || len(lf) < 5 {
			continue
		}
		found = append(found, unescapeMount(lf[4]))
	}
	for _, want := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		for _, m := range found {
			if m == want {
				return m, nil
			}
		}
	}
	if len(found) > 0 {
		return found[0], nil
	}
	return "", errors.New("no cgroup2 file system is mounted; jobworker needs cgroup v2 (boot with systemd.unified_cgroup_hierarchy=1, or mount -t cgroup2 none /sys/fs/cgroup)")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// OwnCgroup returns the cgroup v2 path (relative to the mount, starting with
// /) of the calling process, from /proc/self/cgroup.
func OwnCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	return parseProcCgroup(b)
}

// parseProcCgroup finds the "0::/path" line of /proc/PID/cgroup.
func parseProcCgroup(b []byte) (string, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			if !strings.HasPrefix(p, "/") {
				return "", fmt.Errorf("unexpected cgroup v2 path %q", p)
			}
			return p, nil
		}
	}
	return "", errors.New("the process is in no cgroup v2 (no 0:: line in /proc/self/cgroup)")
}

// writeFile writes value to a control file, opened write-only without
// create or truncate, as the kernel expects. Errors carry the file and the
// value.
func writeFile(dir, file, value string) error {
	path := filepath.Join(dir, file)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, removed(err))
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, removed(err))
	}
	return nil
}

// readFile reads a control file.
func readFile(dir, file string) (string, error) {
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		return "", removed(err)
	}
	defer f.Close()
	return readOpen(f)
}

// readOpen reads an open control file to its end.
func readOpen(f *os.File) (string, error) {
	b, err := io.ReadAll(f)
	if err != nil {
		return "", removed(err)
	}
	return string(b), nil
}

// removedError is ENODEV from a control file: its cgroup was removed after
// the file was opened, or while it was being opened (kernfs answers so for
// the files of a directory it is removing or has removed). It matches fs.ErrNotExist, like the ENOENT of a file opened
// after the removal, so that callers handle both races as one.
type removedError struct{ errno unix.Errno }

func (e removedError) Error() string        { return e.errno.Error() + " (the cgroup was removed)" }
func (e removedError) Unwrap() error        { return e.errno }
func (e removedError) Is(target error) bool { return target == fs.ErrNotExist }

// removed marks ENODEV, bare or in the *fs.PathError of an open, read or
// write, as removedError; other errors pass as they are.
func removed(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return &fs.PathError{Op: pe.Op, Path: pe.Path, Err: removed(pe.Err)}
	}
	if errno, ok := err.(unix.Errno); ok && errno == unix.ENODEV {
		return removedError{errno}
	}
	return err
}

// readControllers reads a cgroup.controllers or cgroup.subtree_control file.
func readControllers(dir, file string) (map[string]bool, error) {
	s, err := readFile(dir, file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, file), err)
	}
	m := map[string]bool{}
	for _, c := range strings.Fields(s) {
		m[c] = true
	}
	return m, nil
}

// AddProc moves pid into the cgroup dir (0: the caller).
//
// The kernel answers EINVAL for a process that fork has not finished
// making: until wake_up_new_task the task is TASK_NEW, and the cpu
// controller's can_attach refuses to move it (cpu_cgroup_can_attach in
// kernel/sched/core.c). That state lasts a moment, so AddProc tries again
// after a short wait, as opencontainers/cgroups' WriteCgroupProc does; the
// waits grow and are bounded (addProcTries), so that an EINVAL with another
// cause is returned soon.
func AddProc(dir string, pid int) error {
	return retryEINVAL(func() error {
		return writeFile(dir, "cgroup.procs", strconv.Itoa(pid))
	}, time.Sleep)
}

// addProcTries bounds AddProc's tries; addProcFirstWait is the wait after
// the first EINVAL, doubled after each later one (5, 10, 20, 40 ms: 75 ms
// in all, about what WriteCgroupProc's 4 waits of 30 ms add up to).
const (
	addProcTries     = 5
	addProcFirstWait = 5 * time.Millisecond
)

// retryEINVAL calls write until it returns anything but EINVAL, at most
// addProcTries times, calling wait with a growing delay between tries.
func retryEINVAL(write func() error, wait func(time.Duration)) error {
	delay := addProcFirstWait
	for try := 1; ; try++ {
		err := write()
		if !errors.Is(err, unix.EINVAL) || try == addProcTries {
			return err
		}
		wait(delay)
		delay *= 2
	}
}
