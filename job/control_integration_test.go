//go:build integration

package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/internal/testchild"
	"golang.org/x/sys/unix"
)

// groupDir is the directory of job id's cgroup.
func groupDir(m *Manager, id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jobs[id].group.Dir()
}

// groupFile reads a control file of job id's cgroup.
func groupFile(t *testing.T, m *Manager, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(groupDir(m, id), file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// cpuUsage is usage_usec of job id's cpu.stat.
func cpuUsage(t *testing.T, m *Manager, id string) uint64 {
	t.Helper()
	for line := range strings.Lines(groupFile(t, m, id, "cpu.stat")) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "usage_usec "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("cpu.stat has no usage_usec")
	return 0
}

// TestSignal: a job that handles USR1 gets it through Signal and says so,
// and so does a child of its in its process group (the signal goes to the
// group, not to the job's first process only); a job that has ended, or
// that has not started, cannot be signalled.
func TestSignal(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MaxRunning = 1
	m := open(t, cfg)
	// A non-interactive sh runs its background child in its own process
	// group, the job's.
	child := `sh -c 'trap "echo child got USR1" USR1; echo child ready; while :; do sleep 0.1; done' &`
	st, err := m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", child + ` trap 'echo parent got USR1' USR1; trap 'echo bye; exit 0' TERM; echo parent ready; while :; do sleep 0.1; done`}})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "child ready\n")
	waitOutput(t, m, st.ID, "parent ready\n")
	pending, err := m.Start(Request{Owner: "alice", Command: "true"})
	if err != nil || pending.State != StatePending {
		t.Fatalf("second job: %s, %v; want pending", pending.State, err)
	}
	if _, err := m.Signal(pending.ID, unix.SIGUSR1); !errors.Is(err, ErrJobState) || !strings.Contains(err.Error(), "pending") {
		t.Errorf("Signal of a pending job = %v, want ErrJobState saying it is pending", err)
	}
	if _, err := m.Signal(st.ID, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "parent got USR1\n")
	waitOutput(t, m, st.ID, "child got USR1\n")
	if got, err := m.Get(st.ID); err != nil || got.State != StateRunning {
		t.Errorf("after USR1 the job is %s, %v; want running (it handled it)", got.State, err)
	}
	grace := time.Minute
	if end, err := m.Stop(context.Background(), st.ID, &grace); err != nil || end.State != StateStopped {
		t.Fatalf("Stop = %s, %v", end.State, err)
	}
	if _, err := m.Signal(st.ID, unix.SIGUSR1); !errors.Is(err, ErrJobState) || !strings.Contains(err.Error(), "ended") {
		t.Errorf("Signal of an ended job = %v, want ErrJobState saying it has ended", err)
	}
	wait(t, m, pending.ID)
	if _, err := m.Signal("00000000-0000-4000-8000-000000000000", unix.SIGUSR1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Signal of no job = %v, want ErrNotFound", err)
	}
}

// TestPauseResume: a paused job is frozen (cgroup.events says so) and in
// state paused, for Get, List's filter and Watch; its CPU time does not
// grow while paused (cpu.stat read twice, a second apart) and grows again
// once it is resumed.
func TestPauseResume(t *testing.T) {
	e := newEnv(t)
	m := open(t, e.config(t))
	st, err := m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", `echo ready; while :; do :; done`}})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "ready\n")

	var mu sync.Mutex
	var seen []State
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	first := make(chan struct{}) // closed once the watch has its first snapshot
	go func() {
		watched <- m.Watch(ctx, st.ID, time.Hour, func(s Status) error {
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 {
				close(first)
			}
			if len(seen) == 0 || seen[len(seen)-1] != s.State {
				seen = append(seen, s.State)
			}
			return nil
		})
	}()
	<-first

	p, err := m.Pause(context.Background(), st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != StatePaused {
		t.Errorf("Pause returned state %s, want paused", p.State)
	}
	if ev := groupFile(t, m, st.ID, "cgroup.events"); !strings.Contains(ev, "frozen 1") {
		t.Errorf("cgroup.events of the paused job: %q, want frozen 1", ev)
	}
	if again, err := m.Pause(context.Background(), st.ID); err != nil || again.State != StatePaused {
		t.Errorf("Pause of a paused job = %s, %v; want paused, no error", again.State, err)
	}
	if l := m.List(Filter{States: []State{StatePaused}}); len(l) != 1 || l[0].ID != st.ID {
		t.Errorf("List(paused) = %d jobs, want the paused one", len(l))
	}
	// The interval measured, not a wait for something to happen.
	before := cpuUsage(t, m, st.ID)
	time.Sleep(time.Second)
	after := cpuUsage(t, m, st.ID)
	if after != before {
		t.Errorf("CPU time of the paused busy job went from %d to %d µs in a second, want no change", before, after)
	}

	r, err := m.Resume(context.Background(), st.ID)
	if err != nil || r.State != StateRunning {
		t.Fatalf("Resume = %s, %v; want running", r.State, err)
	}
	if ev := groupFile(t, m, st.ID, "cgroup.events"); !strings.Contains(ev, "frozen 0") {
		t.Errorf("cgroup.events of the resumed job: %q, want frozen 0", ev)
	}
	if again, err := m.Resume(context.Background(), st.ID); err != nil || again.State != StateRunning {
		t.Errorf("Resume of a running job = %s, %v; want running, no error", again.State, err)
	}
	before = cpuUsage(t, m, st.ID)
	time.Sleep(time.Second)
	after = cpuUsage(t, m, st.ID)
	if after < before+10000 {
		t.Errorf("CPU time of the resumed busy job went from %d to %d µs in a second, want it to grow (by 10 ms at least)", before, after)
	}

	grace := time.Duration(0)
	if _, err := m.Stop(context.Background(), st.ID, &grace); err != nil {
		t.Fatal(err)
	}
	if err := <-watched; err != nil {
		t.Errorf("Watch = %v", err)
	}
	cancel()
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []State{StateRunning, StatePaused, StateRunning, StateStopped}) {
		t.Errorf("Watch saw states %v, want running, paused, running, stopped", seen)
	}
	if _, err := m.Pause(context.Background(), st.ID); !errors.Is(err, ErrJobState) {
		t.Errorf("Pause of an ended job = %v, want ErrJobState", err)
	}
	if _, err := m.Resume(context.Background(), st.ID); !errors.Is(err, ErrJobState) {
		t.Errorf("Resume of an ended job = %v, want ErrJobState", err)
	}
}

// TestStopPaused: stopping a paused job thaws it first, so its SIGTERM
// handler runs within the grace and the job ends as it chooses.
func TestStopPaused(t *testing.T) {
	e := newEnv(t)
	m := open(t, e.config(t))
	st, err := m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", `trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done`}})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "ready\n")
	if _, err := m.Pause(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	grace := time.Minute
	end, err := m.Stop(context.Background(), st.ID, &grace)
	if err != nil {
		t.Fatal(err)
	}
	if end.State != StateStopped || intp(end.ExitCode) != "0" || !strings.HasSuffix(output(t, m, st.ID), "bye\n") {
		t.Errorf("stopped while paused: %s exit %s signal %s, output %q; want stopped, exit 0, bye from its handler", end.State, intp(end.ExitCode), intp(end.Signal), output(t, m, st.ID))
	}
}

// TestPausedTimeout: a paused job's timeout keeps counting; at its end the
// job is thawed and killed, FAILED timed_out.
func TestPausedTimeout(t *testing.T) {
	e := newEnv(t)
	m := open(t, e.config(t))
	st, err := m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", `echo ready; exec sleep 1000`}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "ready\n")
	if _, err := m.Pause(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	end := wait(t, m, st.ID)
	if end.State != StateFailed || end.Reason != ReasonTimedOut {
		t.Errorf("a paused job past its timeout: %s/%s (%s), want failed/timed_out", end.State, end.Reason, end.Message)
	}
}

// TestUpdate: a running job's limits change in its cgroup (read back from
// the files); its memory reservation follows, refused past the capacity
// now (ErrNoRoom) or ever (ErrNeverFits); a memory limit below the job's
// usage is refused with the usage, and the file keeps its value.
func TestUpdate(t *testing.T) {
	testchild.RequireCgroup2(t, "cpu", "memory", "pids")
	m, st := startUpdatable(t)
	u64 := func(v uint64) *uint64 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	f64 := func(v float64) *float64 { return &v }

	up, err := m.Update(st.ID, cgroupfs.Change{MemoryMax: u64(96 << 20), CPUs: f64(1.5), CPUWeight: u32(50), PidsMax: u64(77)})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"memory.max": strconv.Itoa(96 << 20), "memory.high": strconv.Itoa(48 << 20),
		"cpu.max": "150000 100000", "cpu.weight": "50", "pids.max": "77",
	} {
		if got := groupFile(t, m, st.ID, file); got != want {
			t.Errorf("after the update %s = %q, want %q", file, got, want)
		}
	}
	if up.Limits.MemoryMax != 96<<20 || up.Limits.MemoryHigh != 48<<20 || up.Limits.CPUs != 1.5 || up.Limits.PidsMax != 77 {
		t.Errorf("Update returned limits %+v", up.Limits)
	}
	if tot := m.Totals(); tot.MemoryReserved != 96<<20 {
		t.Errorf("reserved %d after raising the job to 96 MiB, want that", tot.MemoryReserved)
	}
	if _, err := m.Update(st.ID, cgroupfs.Change{CPUs: f64(0)}); err != nil {
		t.Fatal(err)
	}
	if got := groupFile(t, m, st.ID, "cpu.max"); got != "max 100000" {
		t.Errorf("cpu.max after removing the cap = %q, want max 100000", got)
	}

	if _, err := m.Update(st.ID, cgroupfs.Change{MemoryMax: u64(129 << 20)}); !errors.Is(err, ErrNeverFits) {
		t.Errorf("raising past the capacity = %v, want ErrNeverFits", err)
	}
	other, err := m.Start(Request{Owner: "bob", Command: "sleep", Args: []string{"1000"}, Limits: cgroupfs.Limits{MemoryMax: 32 << 20}})
	if err != nil || other.State != StateRunning {
		t.Fatalf("second job: %s, %v; want running", other.State, err)
	}
	if _, err := m.Update(st.ID, cgroupfs.Change{MemoryMax: u64(100 << 20)}); !errors.Is(err, ErrNoRoom) {
		t.Errorf("raising past what is free = %v, want ErrNoRoom", err)
	}
	if got := groupFile(t, m, st.ID, "memory.max"); got != strconv.Itoa(96<<20) {
		t.Errorf("memory.max after a refused raise = %s, want 96 MiB still", got)
	}
	if tot := m.Totals(); tot.MemoryReserved != 128<<20 {
		t.Errorf("reserved %d after a refused raise, want 128 MiB", tot.MemoryReserved)
	}

	// A job that holds some 16 MiB (under its memory.high of 48 MiB, so
	// that reclaim does not throttle it): lowering its limit below that
	// is refused, with the usage in the message.
	big, err := m.Start(Request{Owner: "carol", Command: "awk", Args: []string{`BEGIN { s = "x"; while (length(s) < 16000000) s = s s; print "ready"; fflush(); while (1) system("sleep 1000") }`}, Limits: cgroupfs.Limits{MemoryMax: 96 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if big.State != StatePending {
		t.Fatalf("third job: %s, want pending (128 MiB are reserved)", big.State)
	}
	grace := time.Duration(0)
	if _, err := m.Stop(context.Background(), st.ID, &grace); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, big.ID, "ready\n")
	cur, err := strconv.ParseUint(groupFile(t, m, big.ID, "memory.current"), 10, 64)
	if err != nil || cur < 16000000 {
		t.Fatalf("memory.current of the 16 MB job = %d, %v", cur, err)
	}
	_, err = m.Update(big.ID, cgroupfs.Change{MemoryMax: u64(8 << 20)})
	if !errors.Is(err, ErrBelowUsage) {
		t.Errorf("lowering below the usage = %v, want ErrBelowUsage with the usage", err)
	} else if m := regexp.MustCompile(`uses (\d+) bytes now`).FindStringSubmatch(err.Error()); m == nil {
		t.Errorf("lowering below the usage = %q, want the usage in bytes in the message", err)
	} else if used, _ := strconv.ParseUint(m[1], 10, 64); used < 16000000 || used > 96<<20 {
		t.Errorf("lowering below the usage = %q: the usage it gives, %d bytes, is not the job's (memory.current read %d)", err, used, cur)
	}
	if got := groupFile(t, m, big.ID, "memory.max"); got != strconv.Itoa(96<<20) {
		t.Errorf("memory.max after a refused lowering = %s, want 96 MiB still", got)
	}
	if got, _ := m.Get(big.ID); got.State != StateRunning || got.Usage.OOMKills != 0 {
		t.Errorf("the job after a refused lowering: %s, %d OOM kills; want running, none", got.State, got.Usage.OOMKills)
	}
	for _, id := range []string{other.ID, big.ID} {
		m.Stop(context.Background(), id, &grace)
	}
	if _, err := m.Update(big.ID, cgroupfs.Change{PidsMax: u64(10)}); !errors.Is(err, ErrJobState) {
		t.Errorf("Update of an ended job = %v, want ErrJobState", err)
	}
}

// TestUpdatePaused: a paused job's limits change in its cgroup (cpu and
// io weight, memory with memory.high, pids, read back from the files) and
// its reservation follows; the job stays paused, frozen, and resumes with
// them.
func TestUpdatePaused(t *testing.T) {
	testchild.RequireCgroup2(t, "cpu", "io", "memory", "pids")
	m, st := startUpdatable(t)
	if _, err := m.Pause(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	u64 := func(v uint64) *uint64 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	up, err := m.Update(st.ID, cgroupfs.Change{CPUWeight: u32(30), IOWeight: u32(5000), MemoryMax: u64(32 << 20), PidsMax: u64(64)})
	if err != nil {
		t.Fatal(err)
	}
	if up.State != StatePaused || up.Limits.CPUWeight != 30 || up.Limits.IOWeight != 5000 || up.Limits.MemoryMax != 32<<20 || up.Limits.MemoryHigh != 16<<20 || up.Limits.PidsMax != 64 {
		t.Errorf("Update of the paused job returned %s, limits %+v", up.State, up.Limits)
	}
	want := map[string]string{"cpu.weight": "30", "memory.max": strconv.Itoa(32 << 20), "memory.high": strconv.Itoa(16 << 20), "pids.max": "64"}
	if _, err := os.Stat(filepath.Join(groupDir(m, st.ID), "io.bfq.weight")); err == nil {
		want["io.bfq.weight"] = "default " + strconv.Itoa(int(cgroupfs.BFQWeight(5000)))
	} else {
		want["io.weight"] = "default 5000"
	}
	for file, w := range want {
		got := groupFile(t, m, st.ID, file)
		if strings.HasPrefix(file, "io.") {
			got, _, _ = strings.Cut(got, "\n") // the default; devices follow
		}
		if got != w {
			t.Errorf("after the update of the paused job %s = %q, want %q", file, got, w)
		}
	}
	if ev := groupFile(t, m, st.ID, "cgroup.events"); !strings.Contains(ev, "frozen 1") {
		t.Errorf("cgroup.events after the update: %q, want the job still frozen", ev)
	}
	if tot := m.Totals(); tot.MemoryReserved != 32<<20 {
		t.Errorf("reserved %d after lowering the paused job to 32 MiB, want that", tot.MemoryReserved)
	}
	if r, err := m.Resume(context.Background(), st.ID); err != nil || r.State != StateRunning || r.Limits.PidsMax != 64 {
		t.Errorf("Resume after the update = %s pids %d, %v; want running, 64", r.State, r.Limits.PidsMax, err)
	}
	grace := time.Duration(0)
	m.Stop(context.Background(), st.ID, &grace)
}

// TestUpdateFreesRoom: a pending job starts as soon as a running job's
// memory reservation is lowered enough for it, within the Update; a
// pending job's own limits can be changed before it starts, and apply
// when it does.
func TestUpdateFreesRoom(t *testing.T) {
	testchild.RequireCgroup2(t, "memory", "pids")
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MemoryCapacity = 128 << 20
	m := open(t, cfg)
	a, err := m.Start(Request{Owner: "alice", Command: "sleep", Args: []string{"1000"}, Limits: cgroupfs.Limits{MemoryMax: 96 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Start(Request{Owner: "bob", Command: "sleep", Args: []string{"1000"}, Limits: cgroupfs.Limits{MemoryMax: 64 << 20}})
	if err != nil || b.State != StatePending {
		t.Fatalf("second job: %s, %v; want pending", b.State, err)
	}
	u64 := func(v uint64) *uint64 { return &v }
	pb, err := m.Update(b.ID, cgroupfs.Change{PidsMax: u64(42)})
	if err != nil || pb.State != StatePending || pb.Limits.PidsMax != 42 {
		t.Fatalf("Update of the pending job = %s pids %d, %v; want pending, 42", pb.State, pb.Limits.PidsMax, err)
	}
	if _, err := m.Update(a.ID, cgroupfs.Change{MemoryMax: u64(64 << 20)}); err != nil {
		t.Fatal(err)
	}
	got, err := m.Get(b.ID)
	if err != nil || got.State != StateRunning {
		t.Fatalf("the pending job after the other's reservation was lowered: %s, %v; want running", got.State, err)
	}
	if pids := groupFile(t, m, b.ID, "pids.max"); pids != "42" {
		t.Errorf("pids.max of the job updated while pending = %s, want 42", pids)
	}
	if tot := m.Totals(); tot.MemoryReserved != 128<<20 || tot.Pending != 0 {
		t.Errorf("Totals = %+v, want 128 MiB reserved, none pending", tot)
	}
	grace := time.Duration(0)
	for _, id := range []string{a.ID, b.ID} {
		m.Stop(context.Background(), id, &grace)
	}
}

// startUpdatable starts a job of alice's with a 64 MiB memory limit, in a
// manager of 128 MiB capacity whose memory.high is half the limit, and
// returns once the job runs its sleep.
func startUpdatable(t *testing.T) (*Manager, Status) {
	t.Helper()
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MemoryCapacity = 128 << 20
	cfg.MemoryHighFraction = 0.5
	m := open(t, cfg)
	st, err := m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", `echo ready; exec sleep 1000`}, Limits: cgroupfs.Limits{MemoryMax: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	waitOutput(t, m, st.ID, "ready\n")
	return m, st
}
