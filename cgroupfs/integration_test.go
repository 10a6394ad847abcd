//go:build integration

package cgroupfs_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/internal/testchild"
	"golang.org/x/sys/unix"
)

// TestMain lets the test binary be a job's process: testchild.ModeEnv
// names what it does.
func TestMain(m *testing.M) {
	testchild.Dispatch(map[string]func(){
		"alloc100m": testchild.Alloc100M,
		"spin-cpu0": func() {
			// Spin on this thread only, pinned to CPU 0.
			runtime.LockOSThread()
			var set unix.CPUSet
			set.Set(0)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				os.Exit(2)
			}
			spin()
		},
		"spin":        spin,
		"directwrite": directWrite,
	})
	os.Exit(m.Run())
}

// directWrite writes 3 MiB with O_DIRECT, 64 KiB at a time, to the scratch
// device past its marker, once testchild.CheckScratch has accepted it, and
// prints how long the writes took from the first to the last.
func directWrite() {
	dev, err := testchild.ScratchDevice()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	f, err := os.OpenFile(dev, os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	buf, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		os.Exit(2)
	}
	start := time.Now()
	for i := range 48 {
		if _, err := f.WriteAt(buf, testchild.ScratchOffset+int64(i)*int64(len(buf))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	fmt.Println(time.Since(start).Nanoseconds())
	os.Exit(0)
}

func spin() {
	//lint:ignore SA5002 the child's whole purpose is to use CPU until killed
	for {
	}
}

// testHierarchy makes a fresh parent cgroup under the test's own, sets it
// up (which moves the test process into <parent>/supervisor), and undoes it
// all at cleanup.
func testHierarchy(t *testing.T) *cgroupfs.Hierarchy {
	t.Helper()
	mount, parent := testchild.TempCgroup(t)
	h, err := cgroupfs.Setup(cgroupfs.Options{Mount: mount, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// startIn starts the test binary as child mode in g, as root.
func startIn(t *testing.T, g *cgroupfs.Group, mode string) *exec.Cmd {
	t.Helper()
	return startWith(t, g, mode, nil)
}

// setupInOwnCgroup moves the test into a fresh cgroup of its own and sets
// the hierarchy up from there, as a server started in that cgroup does.
func setupInOwnCgroup(t *testing.T) (mount, base string, h *cgroupfs.Hierarchy) {
	t.Helper()
	mount, base = testchild.TempCgroup(t)
	if err := cgroupfs.AddProc(base, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	h, err := cgroupfs.Setup(cgroupfs.Options{Mount: mount})
	if err != nil {
		t.Fatal(err)
	}
	return mount, base, h
}

// startWith is startIn with the child's stdout going to stdout.
func startWith(t *testing.T, g *cgroupfs.Group, mode string, stdout io.Writer) *exec.Cmd {
	t.Helper()
	fd, err := unix.Open(g.Dir(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := testchild.Command(mode)
	if mode == "spin-cpu0" {
		// Every thread of the child on CPU 0, so that the cgroups' whole
		// weight competes there.
		taskset := exec.Command("/bin/taskset", append([]string{"1"}, cmd.Args...)...)
		taskset.Env = cmd.Env
		cmd = taskset
	}
	cmd.Stdout = stdout
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSetupFromNonRootCgroup(t *testing.T) {
	// The server starts in a non-root cgroup of its own.
	mount, base, h := setupInOwnCgroup(t)
	if h.Parent() != base {
		t.Errorf("Parent() = %s, want the cgroup the server started in, %s", h.Parent(), base)
	}
	now, err := cgroupfs.OwnCgroup()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimPrefix(base, mount) + "/supervisor"; now != want {
		t.Errorf("after Setup the server is in %s, want %s", now, want)
	}
	if got := strings.Join(h.Controllers(), " "); got != "cpu io memory pids" {
		t.Errorf("Controllers() = %q, want all four", got)
	}
	// A second Setup from inside the supervisor finds the same parent.
	h2, err := cgroupfs.Setup(cgroupfs.Options{Mount: mount})
	if err != nil || h2.Parent() != base {
		t.Errorf("second Setup: parent %v, %v; want %s", h2, err, base)
	}
	g, err := h.Create("alice", "job-1", cgroupfs.Limits{CPUWeight: 200, MemoryMax: 64 << 20, MemoryHigh: 48 << 20, PidsMax: 50, CPUs: 1.5})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"cpu.weight": "200", "memory.max": "67108864", "memory.high": "50331648", "pids.max": "50", "cpu.max": "150000 100000"} {
		if got, _ := cgroupfs.ReadFile(g.Dir(), file); strings.TrimSpace(got) != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if g.Dir() != filepath.Join(base, "jobs", "user-alice", "job-1") {
		t.Errorf("job cgroup %s, want <parent>/jobs/user-alice/job-1", g.Dir())
	}
	if err := g.Remove(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(base, "jobs", "user-alice")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the empty user level is still there: %v", err)
	}
}

func TestMemoryMaxOOMKill(t *testing.T) {
	h := testHierarchy(t)
	g, err := h.Create("alice", "oom", cgroupfs.Limits{MemoryMax: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cmd := startIn(t, g, "alloc100m")
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("allocating 100 MiB under 32M: %v, want killed by SIGKILL", err)
	}
	u, err := g.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.OOMKills != 1 {
		t.Errorf("OOMKills = %d, want 1", u.OOMKills)
	}
	// The kernel charges before it reclaims, so the peak may pass the
	// limit by a few pages.
	if u.MemoryPeak < 30<<20 || u.MemoryPeak > 33<<20 {
		t.Errorf("MemoryPeak = %d, want near the 32 MiB limit", u.MemoryPeak)
	}
	if err := g.Remove(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestPidsMaxForkBomb(t *testing.T) {
	h := testHierarchy(t)
	const limit = 32
	g, err := h.Create("alice", "bomb", cgroupfs.Limits{PidsMax: limit})
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(g.Dir(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "f() { f | f & }; f; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	// The bomb reaches the limit: pids.events counts the refused forks.
	testchild.WaitFile(t, g.Dir(), "pids.events", func(s string) bool {
		kv, _ := cgroupfs.ParseFlatKeyed(s)
		return kv["max"] > 0
	})
	u, err := g.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.PidsCurrent > limit {
		t.Errorf("pids.current = %d, over pids.max %d", u.PidsCurrent, limit)
	}
	// The machine still runs new processes outside the job.
	if out, err := exec.Command("/bin/echo", "alive").Output(); err != nil || string(out) != "alive\n" {
		t.Errorf("a process outside the bomb: %q, %v", out, err)
	}
	if err := g.Kill(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := g.Remove(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("job cgroup still exists after Kill and Remove: %v", err)
	}
}

func cpuUsage(t *testing.T, g *cgroupfs.Group) time.Duration {
	t.Helper()
	u, err := g.Usage()
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(u.CPUUsageUsec) * time.Microsecond
}

// measure returns each group's CPU time over a window of d, after both
// have started using CPU.
func measure(t *testing.T, d time.Duration, gs ...*cgroupfs.Group) ([]time.Duration, time.Duration) {
	t.Helper()
	// A group is populated at fork; its process uses CPU only once it has
	// started up (exec, the runtime): wait until each one's usage grows.
	for _, g := range gs {
		first := cpuUsage(t, g)
		deadline := time.Now().Add(time.Minute)
		tick := time.NewTicker(10 * time.Millisecond)
		for cpuUsage(t, g)-first < 50*time.Millisecond {
			if time.Now().After(deadline) {
				t.Fatalf("%s used no CPU for a minute", g.Dir())
			}
			<-tick.C
		}
		tick.Stop()
	}
	before := make([]time.Duration, len(gs))
	for i, g := range gs {
		before[i] = cpuUsage(t, g)
	}
	start := time.Now()
	<-time.After(d) // the measurement window itself, not a synchronisation
	elapsed := time.Since(start)
	out := make([]time.Duration, len(gs))
	for i, g := range gs {
		out[i] = cpuUsage(t, g) - before[i]
	}
	return out, elapsed
}

func TestCPUWeightRatio(t *testing.T) {
	h := testHierarchy(t)
	light, err := h.Create("alice", "light", cgroupfs.Limits{CPUWeight: 100})
	if err != nil {
		t.Fatal(err)
	}
	heavy, err := h.Create("alice", "heavy", cgroupfs.Limits{CPUWeight: 300})
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, light, "spin-cpu0")
	startIn(t, heavy, "spin-cpu0")
	used, _ := measure(t, 2*time.Second, light, heavy)
	ratio := float64(used[1]) / float64(used[0])
	t.Logf("cpu time over 2s on one CPU: weight 100 %v, weight 300 %v, ratio %.2f", used[0], used[1], ratio)
	if ratio < 2.4 || ratio > 3.6 {
		t.Errorf("CPU ratio of weights 300:100 = %.2f, want within [2.4, 3.6]", ratio)
	}
}

func TestCPUMaxCap(t *testing.T) {
	h := testHierarchy(t)
	g, err := h.Create("alice", "capped", cgroupfs.Limits{CPUs: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, g, "spin")
	used, elapsed := measure(t, 2*time.Second, g)
	share := float64(used[0]) / float64(elapsed)
	t.Logf("cpu.max 0.5: %v of CPU over %v (%.0f%%)", used[0], elapsed, 100*share)
	if share > 0.55 {
		t.Errorf("a job capped at 0.5 CPUs used %.0f%% of a CPU, want at most 55%%", 100*share)
	}
	if share < 0.25 {
		t.Errorf("a job capped at 0.5 CPUs used only %.0f%% of a CPU: did it run?", 100*share)
	}
}

// TestIOMaxWriteBPS: io.max's wbps caps a job's direct writes. The job
// writes 3 MiB to the scratch device at 1 MiB/s: io.max holds the cap for
// the device's MAJ:MIN, the writes take about 3 s from the first to the
// last, the same writes in a group without the cap take far less (so the
// cap, not the device, made them slow), and io.stat counts them.
func TestIOMaxWriteBPS(t *testing.T) {
	dev, err := testchild.ScratchDevice()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	h := testHierarchy(t)
	free, err := h.Create("alice", "io-free", cgroupfs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	capped, err := h.Create("alice", "io", cgroupfs.Limits{IOMax: []cgroupfs.IOMax{{Device: dev, WriteBPS: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	ioMax, err := cgroupfs.ReadFile(capped.Dir(), "io.max")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d:%d ", unix.Major(st.Rdev), unix.Minor(st.Rdev)); !strings.HasPrefix(ioMax, want) || !strings.Contains(ioMax, " wbps=1048576 ") {
		t.Fatalf("io.max = %q, want a line for %s with wbps=1048576", ioMax, want)
	}

	unlimited := timedWrite(t, free)
	limited := timedWrite(t, capped)
	t.Logf("3 MiB with O_DIRECT, first write to last: %v without a cap, %v at wbps 1 MiB/s", unlimited, limited)
	// The first 64 KiB may pass at once; the other 47 writes take 2.9 s.
	if lo, hi := 2600*time.Millisecond, unlimited+6*time.Second; limited < lo || limited > hi {
		t.Errorf("3 MiB at 1 MiB/s took %v, want within [%v, %v]", limited, lo, hi)
	}
	if unlimited*2 > limited {
		t.Errorf("the writes took %v without a cap and %v with it: the cap did not slow them", unlimited, limited)
	}
	const written = 3 << 20
	u, err := capped.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.IOWriteBytes < written {
		t.Errorf("io.stat wbytes = %d, want at least %d", u.IOWriteBytes, written)
	}
}

// timedWrite runs the directwrite child in g and returns how long its
// writes took, as the child measured them.
func timedWrite(t *testing.T, g *cgroupfs.Group) time.Duration {
	t.Helper()
	var out strings.Builder
	cmd := startWith(t, g, "directwrite", &out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("directwrite in %s: %v", g.Dir(), err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		t.Fatalf("directwrite printed %q: %v", out.String(), err)
	}
	return time.Duration(ns)
}

// TestScratchDeviceRefusals: the I/O tests write only to the device
// hack/vmtest or hack/test provides. Every other block device of the
// machine is refused (the root disk among them), and so are a file or a
// character device carrying the marker, and a missing variable.
func TestScratchDeviceRefusals(t *testing.T) {
	dev, err := testchild.ScratchDevice()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("unset", func(t *testing.T) {
		t.Setenv(testchild.ScratchEnv, "")
		if _, err := testchild.ScratchDevice(); err == nil || !strings.Contains(err.Error(), "is not set") {
			t.Errorf("ScratchDevice() with %s unset: %v, want refused as not set", testchild.ScratchEnv, err)
		}
	})
	marked := filepath.Join(t.TempDir(), "marked")
	if err := os.WriteFile(marked, append([]byte(testchild.ScratchMarker), make([]byte, 8<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := map[string]string{
		marked:      "is not a block device",
		"/dev/null": "is not a block device",
	}
	entries, err := os.ReadDir("/sys/class/block")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		path := "/dev/" + e.Name()
		if same, err := sameFile(path, dev); err != nil || same {
			continue // no node in /dev, or the scratch device itself
		}
		// What can be read is refused for its missing marker, whatever
		// its size; what cannot (an unattached loop device) for that.
		refused[path] = ""
		if f, err := os.Open(path); err == nil {
			if _, err := io.ReadFull(f, make([]byte, len(testchild.ScratchMarker))); err == nil {
				refused[path] = "does not carry the scratch marker"
			}
			f.Close()
		}
	}
	if len(refused) < 3 {
		t.Fatalf("no block device besides %s to try: %v", dev, refused)
	}
	for path, why := range refused {
		t.Setenv(testchild.ScratchEnv, path)
		_, err := testchild.ScratchDevice()
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ScratchDevice() with %s=%s: %v, want refused (%q)", testchild.ScratchEnv, path, err, why)
			continue
		}
		t.Logf("%s: %v", path, err)
	}
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

func TestKillWholeTree(t *testing.T) {
	h := testHierarchy(t)
	g, err := h.Create("alice", "tree", cgroupfs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(g.Dir(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A child that ignores SIGTERM and a grandchild daemonized into a
	// session of its own.
	cmd := exec.Command("/bin/sh", "-c", `trap "" TERM; setsid sleep 1000 </dev/null >/dev/null 2>&1 & sleep 1000 & echo ready; wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("job said %q, %v", line, err)
	}
	procs, err := cgroupfs.ReadFile(g.Dir(), "cgroup.procs")
	if err != nil {
		t.Fatal(err)
	}
	pids := strings.Fields(procs)
	if len(pids) < 3 {
		t.Fatalf("cgroup.procs = %q, want the shell and two sleeps", procs)
	}
	if err := g.Kill(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, p := range pids {
		if alive(p) {
			t.Errorf("process %s survived the kill", p)
		}
	}
	if err := g.Remove(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("job cgroup still exists: %v", err)
	}
}

// TestRemovedGroup: a group removed under a caller (a stop's kill racing
// the job's own cleanup) gives errors that match fs.ErrNotExist, whether
// its control file was opened before the removal (the kernel's ENODEV) or
// after it (ENOENT).
func TestRemovedGroup(t *testing.T) {
	h := testHierarchy(t)
	g, err := h.Create("alice", "removed", cgroupfs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(g.Dir(), "cgroup.events"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := g.Remove(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	_, err = cgroupfs.ReadOpen(f)
	if !errors.Is(err, unix.ENODEV) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read of a file opened before the removal = %v, want ENODEV that matches fs.ErrNotExist", err)
	}
	if err := g.Kill(ctxT(t)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Kill = %v, want an error that matches fs.ErrNotExist", err)
	}
	if err := g.WaitEmpty(ctxT(t)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WaitEmpty = %v, want an error that matches fs.ErrNotExist", err)
	}
}

// alive reports whether pid runs (a zombie waiting to be reaped is dead).
func alive(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestMissingController: under a parent that does not offer io, jobs are
// still placed and killed, and an io limit is refused naming io.
func TestMissingController(t *testing.T) {
	mount, base := testchild.TempCgroup(t)
	if err := cgroupfs.WriteFile(base, "cgroup.subtree_control", "+cpu +memory +pids"); err != nil {
		t.Fatal(err)
	}
	h, err := cgroupfs.Setup(cgroupfs.Options{Mount: mount, Parent: filepath.Join(base, "p")})
	if err != nil {
		t.Fatal(err)
	}
	if h.Has("io") || !h.Has("memory") {
		t.Fatalf("Controllers() = %v, want no io but memory", h.Controllers())
	}
	_, err = h.Create("alice", "io-job", cgroupfs.Limits{IOWeight: 100})
	var mce *cgroupfs.MissingControllerError
	if !errors.As(err, &mce) || mce.Controller != "io" {
		t.Fatalf("io weight without io: %v, want a MissingControllerError for io", err)
	}
	if _, err := os.Stat(filepath.Join(h.Parent(), "jobs", "user-alice")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Create left its user level behind: %v", err)
	}
	g, err := h.Create("alice", "plain", cgroupfs.Limits{PidsMax: 10})
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, g, "spin")
	testchild.WaitFile(t, g.Dir(), "cgroup.events", func(s string) bool { return strings.Contains(s, "populated 1") })
	if err := g.Kill(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// TestKillByFreezing exercises the path for kernels without cgroup.kill
// (before 5.14): freeze, SIGKILL every process, thaw.
func TestKillByFreezing(t *testing.T) {
	h := testHierarchy(t)
	g, err := h.Create("alice", "freeze", cgroupfs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	a := startIn(t, g, "spin")
	b := startIn(t, g, "spin")
	testchild.WaitFile(t, g.Dir(), "cgroup.events", func(s string) bool { return strings.Contains(s, "populated 1") })
	ctx := ctxT(t)
	if err := g.KillFrozen(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*exec.Cmd{a, b} {
		err := c.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("spinner: %v, want killed by SIGKILL", err)
		}
	}
	if frozen, _ := cgroupfs.ReadFile(g.Dir(), "cgroup.freeze"); strings.TrimSpace(frozen) != "0" {
		t.Errorf("cgroup.freeze = %q after the kill, want it thawed", frozen)
	}
}

// TestIOWeight: the weight lands in io.bfq.weight, scaled, where BFQ is
// available (the test VM loads it).
func TestIOWeight(t *testing.T) {
	h := testHierarchy(t)
	g, err := h.Create("alice", "ioweight", cgroupfs.Limits{IOWeight: 10000})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cgroupfs.ReadFile(g.Dir(), "io.bfq.weight")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "default 1000") {
		t.Errorf("io.bfq.weight = %q, want default 1000 (10000 scaled)", got)
	}
}

// TestKillRacesRemove: a Kill (a stop's) whose group another Kill and
// Remove (the job's own end and cleanup) empty and remove meanwhile
// returns, with nil or an error matching fs.ErrNotExist: it never waits
// for a change of cgroup.events that the removal swallowed.
func TestKillRacesRemove(t *testing.T) {
	h := testHierarchy(t)
	for i := range 200 {
		g, err := h.Create("alice", fmt.Sprintf("race-%d", i), cgroupfs.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		cmd := startIn(t, g, "spin")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		stop := make(chan error, 1)
		go func() { stop <- g.Kill(ctx) }()
		if err := g.Kill(ctx); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("round %d: the cleanup's kill: %v", i, err)
		}
		cmd.Wait()
		if err := g.Remove(ctx); err != nil {
			t.Fatalf("round %d: remove: %v", i, err)
		}
		select {
		case err := <-stop:
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("round %d: the stop's kill: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the stop's kill still waits 10 s after its group was emptied and removed", i)
		}
		cancel()
	}
}

// TestSweepBothLayouts: Sweep kills and removes what a server that died
// left, in the jobs level and in user levels of the parent itself (the
// layout before the jobs level), and no other cgroup of the parent.
func TestSweepBothLayouts(t *testing.T) {
	_, base, h := setupInOwnCgroup(t)
	old := filepath.Join(base, "user-old", "job-old")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	g, err := h.Create("new", "job-new", cgroupfs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for _, dir := range []string{old, g.Dir()} {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/sleep", "1000")
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		err = cmd.Start()
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	if err := h.Sweep(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("a process left in %v: %v, want killed", cmd.Args, err)
		}
	}
	for _, dir := range []string{filepath.Dir(old), filepath.Dir(g.Dir())} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the user level %s after Sweep: %v, want it gone", dir, err)
		}
	}
	for _, dir := range []string{"supervisor", "jobs"} {
		if _, err := os.Stat(filepath.Join(base, dir)); err != nil {
			t.Errorf("%s after Sweep: %v, want it kept", dir, err)
		}
	}
}
