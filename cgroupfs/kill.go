package cgroupfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Kill kills every process in the group, including ones that daemonized,
// changed their session or forked meanwhile, and waits until the group is
// empty. It writes cgroup.kill (Linux 5.14+, which kills the whole subtree
// atomically against forks); where that file is missing it freezes the
// group, SIGKILLs each process and thaws it, so that nothing can fork while
// the list is walked (cgroup-v2.rst, "cgroup.freeze").
func (g *Group) Kill(ctx context.Context) error {
	err := writeFile(g.dir, "cgroup.kill", "1")
	if errors.Is(err, os.ErrNotExist) {
		// Either the kernel predates cgroup.kill or the group is gone;
		// of a removed group, the error says so.
		if _, serr := os.Stat(g.dir); serr != nil {
			return fmt.Errorf("kill job cgroup: %w", serr)
		}
		err = g.killFrozen(ctx)
	}
	if err != nil {
		return fmt.Errorf("kill job cgroup: %w", err)
	}
	return g.WaitEmpty(ctx)
}

func (g *Group) killFrozen(ctx context.Context) error {
	if err := writeFile(g.dir, "cgroup.freeze", "1"); err != nil {
		return err
	}
	defer writeFile(g.dir, "cgroup.freeze", "0")
	if err := g.waitEvent(ctx, "frozen", "1"); err != nil {
		return err
	}
	pids, err := g.Procs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("kill %d: %w", pid, err)
		}
	}
	return nil
}

// Procs lists the processes in the group and below it, from each cgroup's
// cgroup.procs. A process that has exited is not listed, even while it is
// a zombie.
func (g *Group) Procs() ([]int, error) { return procsUnder(g.dir) }

func procsUnder(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		s, err := readFile(path, "cgroup.procs")
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(s) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("%s/cgroup.procs: %w", path, err)
			}
			pids = append(pids, pid)
		}
		return nil
	})
	return pids, err
}

// WaitEmpty waits until no process is left in the group: "populated 0" in
// cgroup.events. It is woken by the file-modified event the kernel sends on
// every change of that file (cgroup-v2.rst, "cgroup.events"), not by polling.
func (g *Group) WaitEmpty(ctx context.Context) error {
	return g.waitEvent(ctx, "populated", "0")
}

// waitEvent waits until cgroup.events has key with value.
func (g *Group) waitEvent(ctx context.Context, key, value string) error {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	events := filepath.Join(g.dir, "cgroup.events")
	if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
		return fmt.Errorf("watch %s: %w", events, err)
	}
	// The group's removal wakes the wait too. Another caller may empty and
	// remove the group (a stop's kill racing the job's own cleanup), and
	// kernfs drops a change notification still pending when its file goes,
	// so the last change of cgroup.events can come without an event. The
	// rmdir is reported to the parent directory's watchers (IN_DELETE, as
	// for any other child of it: the loop reads again and waits on).
	if parent := filepath.Dir(g.dir); parent != g.dir {
		if _, err := unix.InotifyAddWatch(fd, parent, unix.IN_DELETE|unix.IN_ONLYDIR); err != nil {
			return fmt.Errorf("watch %s: %w", parent, err)
		}
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		// Read after the watch is in place, so no change is missed.
		s, err := readFile(g.dir, "cgroup.events")
		if err != nil {
			return fmt.Errorf("read %s: %w", events, err)
		}
		for _, line := range strings.Split(s, "\n") {
			if line == key+" "+value {
				return nil
			}
		}
		if _, err := f.Read(buf); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wait for %s %s in %s: %w", key, value, events, ctx.Err())
			}
			return fmt.Errorf("wait for %s %s in %s: %w", key, value, events, err)
		}
	}
}

// Remove removes the empty group, retrying while the kernel still reports
// it busy (a process that just died can keep it populated for a moment),
// then the user level if no other job is left in it.
func (g *Group) Remove(ctx context.Context) error {
	delay := time.Millisecond
	for {
		err := unix.Rmdir(g.dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			break
		}
		if !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("remove job cgroup %s: %w", g.dir, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("remove job cgroup %s: %w (%w)", g.dir, err, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
	g.h.userMu.Lock()
	defer g.h.userMu.Unlock()
	if err := unix.Rmdir(g.user); err != nil && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove user cgroup %s: %w", g.user, err)
	}
	return nil
}

// Sweep kills and removes every job cgroup under the user levels, and the
// user levels themselves, those of the jobs level and those a server older
// than the jobs level made in the parent. A server calls it when it starts,
// when no job of its own runs yet: whatever is there was left by a server
// that died.
func (h *Hierarchy) Sweep(ctx context.Context) error {
	var users []string
	for _, dir := range []string{h.jobs, h.parent} {
		us, err := filepath.Glob(filepath.Join(dir, "user-*"))
		if err != nil {
			return err
		}
		users = append(users, us...)
	}
	var errs []error
	for _, u := range users {
		jobs, err := os.ReadDir(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, j := range jobs {
			if !j.IsDir() {
				continue
			}
			g := &Group{h: h, dir: filepath.Join(u, j.Name()), user: u}
			if err := g.Kill(ctx); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := g.Remove(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		h.userMu.Lock()
		if err := unix.Rmdir(u); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("remove user cgroup %s: %w", u, err))
		}
		h.userMu.Unlock()
	}
	return errors.Join(errs...)
}

// RemoveTree removes dir and every cgroup below it, deepest first. It is
// for cleaning up a parent after the server that used it has stopped: it
// kills nothing, so a cgroup that still has processes stays, and its error
// is among those returned.
func RemoveTree(dir string) error {
	var dirs []string
	walkErr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if errors.Is(walkErr, fs.ErrNotExist) && len(dirs) == 0 {
		return nil
	}
	errs := []error{walkErr}
	for _, d := range slices.Backward(dirs) {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}
