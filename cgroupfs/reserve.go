package cgroupfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ServerReserve is what the server keeps for itself of what its parent
// may use: the jobs level's pids.max and memory.max are the parent's
// budget less it, so that the jobs together can never take the processes,
// threads and memory the server needs to answer, record and start jobs.
type ServerReserve struct {
	// Pids is the processes and threads kept for the server (and the
	// shims it starts, which run in its cgroup until they join a job's).
	Pids uint64
	// Memory is the bytes kept for the server.
	Memory uint64
}

// Budget is what the parent may use, from which the reserve is taken.
type Budget struct {
	// Pids is the lowest of the pids.max of the parent and its
	// ancestors, the kernel's pid_max and its threads-max.
	Pids uint64
	// Memory is the lowest of the memory.max of the parent and its
	// ancestors and the host's memory.
	Memory uint64
}

// JobsLimits are the limits of the jobs level: 0 where its controller is
// missing and so nothing was set.
type JobsLimits struct {
	PidsMax   uint64
	MemoryMax uint64
}

// ReserveError is a reserve the parent's budget cannot hold.
type ReserveError struct {
	What            string // "pids" or "memory"
	Budget, Reserve uint64
}

func (e *ReserveError) Error() string {
	return fmt.Sprintf("the server's %s reserve (%d) leaves nothing for jobs: the cgroup parent and the host allow %d in all", e.What, e.Reserve, e.Budget)
}

// KeepReserve sets the jobs level's pids.max and memory.max to the budget
// less the reserve, for each controller the jobs level has, and returns
// what it set. hostMemory is the host's memory (MemTotal).
func (h *Hierarchy) KeepReserve(r ServerReserve, hostMemory uint64) (JobsLimits, error) {
	b, err := h.budget(hostMemory)
	if err != nil {
		return JobsLimits{}, err
	}
	var l JobsLimits
	if h.jobsHave["pids"] {
		if l.PidsMax, err = leave(b.Pids, r.Pids, "pids"); err != nil {
			return JobsLimits{}, err
		}
		if err := writeFile(h.jobs, "pids.max", strconv.FormatUint(l.PidsMax, 10)); err != nil {
			return JobsLimits{}, err
		}
	}
	if h.jobsHave["memory"] {
		if l.MemoryMax, err = leave(b.Memory, r.Memory, "memory"); err != nil {
			return JobsLimits{}, err
		}
		if err := writeFile(h.jobs, "memory.max", strconv.FormatUint(l.MemoryMax, 10)); err != nil {
			return JobsLimits{}, err
		}
	}
	return l, nil
}

// leave is budget less reserve, or a ReserveError when nothing is left.
func leave(budget, reserve uint64, what string) (uint64, error) {
	if budget <= reserve {
		return 0, &ReserveError{What: what, Budget: budget, Reserve: reserve}
	}
	return budget - reserve, nil
}

// budget reads what the parent may use.
func (h *Hierarchy) budget(hostMemory uint64) (Budget, error) {
	pids, err := lowestLimit(h.mount, h.parent, "pids.max")
	if err != nil {
		return Budget{}, err
	}
	for _, f := range []string{"/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return Budget{}, fmt.Errorf("read the kernel's process bound: %w", err)
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return Budget{}, fmt.Errorf("parse %s: %w", f, err)
		}
		pids = min(pids, v)
	}
	mem, err := lowestLimit(h.mount, h.parent, "memory.max")
	if err != nil {
		return Budget{}, err
	}
	return Budget{Pids: pids, Memory: min(mem, hostMemory)}, nil
}

// lowestLimit is the lowest value of a limit file ("max": no bound) in dir
// and each of its ancestors below mount (the root cgroup has none); where
// the file is missing (the controller is not enabled there) that level
// bounds nothing.
func lowestLimit(mount, dir, file string) (uint64, error) {
	lowest := ^uint64(0)
	for d := dir; d != mount && strings.HasPrefix(d, mount+"/"); d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, file))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read the limit of the cgroup parent: %w", err)
		}
		v, err := parseSingle(string(b))
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", filepath.Join(d, file), err)
		}
		lowest = min(lowest, v)
	}
	return lowest, nil
}
