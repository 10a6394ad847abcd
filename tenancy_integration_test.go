//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/internal/testchild"
	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The tests of what one user's jobs can see and touch of another's
// (README, "Tenancy"), each through the CLI of a real server.

// childFlags are the `run` flags that make a job of this test binary in
// one of its child modes (TestMain), with the given variables; childArgv is
// its command.
func childFlags(mode string, env ...string) []string {
	args := []string{"--env", testchild.ModeEnv + "=" + mode}
	for _, kv := range env {
		args = append(args, "--env", kv)
	}
	return args
}

func childArgv(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, "-test.run=^$"}
}

// childJob is the whole of run's arguments for a child mode.
func childJob(t *testing.T, mode string, env ...string) []string {
	return append(append(childFlags(mode, env...), "--"), childArgv(t)...)
}

// shmKey is the System V IPC key the shm modes use.
const shmKey = 0x4a57_7465

// shmMake makes a System V shared memory segment, says so, and waits at
// the gate in $GATE.
func shmMake() {
	if _, err := unix.SysvShmGet(shmKey, 4096, unix.IPC_CREAT|0o600); err != nil {
		fmt.Println("shmget:", err)
		os.Exit(1)
	}
	fmt.Println("made")
	os.ReadFile(os.Getenv("GATE"))
}

// shmLook says whether the segment of shmKey exists.
func shmLook() {
	_, err := unix.SysvShmGet(shmKey, 0, 0)
	switch err {
	case nil:
		fmt.Println("sees the segment")
	case unix.ENOENT:
		fmt.Println("no segment")
	default:
		fmt.Println("shmget:", err)
	}
}

// abortSelf ends by SIGABRT, as a program calling abort(3) does: Go's
// runtime catches it, prints its traceback and, with GOTRACEBACK=crash,
// raises it again with the default action to die of it.
func abortSelf() {
	syscall.Kill(os.Getpid(), syscall.SIGABRT)
	select {}
}

// leaveOrphan starts a shell that starts a process and exits without
// waiting for it, then watches the orphan: it prints "reaped" once the
// orphan is gone from /proc (its new parent reaped it), or "zombie" if it
// is still a zombie after 20 s.
func leaveOrphan() {
	out, err := exec.Command("/bin/sh", "-c", "true & echo $!").Output()
	if err != nil {
		fmt.Println("sh:", err)
		os.Exit(1)
	}
	pid := strings.TrimSpace(string(out))
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat("/proc/" + pid); err != nil {
			fmt.Println("reaped")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile("/proc/" + pid + "/stat")
	fmt.Printf("zombie: %s\n", b)
	os.Exit(1)
}

// dialAddr connects to $ADDR over TCP and says what happened.
func dialAddr() {
	c, err := net.DialTimeout("tcp", os.Getenv("ADDR"), 10*time.Second)
	if err != nil {
		fmt.Println("no connection:", err)
		return
	}
	c.Close()
	fmt.Println("connected")
}

// run runs a job as who through `run` and returns its output, failing the
// test unless it exits with code.
func (s *devServer) runJob(who string, code int, args ...string) string {
	s.t.Helper()
	r := s.cli(who, append([]string{"run"}, args...)...)
	if r.code != code {
		s.t.Fatalf("run %q as %s: exit %d, want %d; stdout %q, stderr %q", args, who, r.code, code, r.out, r.err)
	}
	return r.out
}

// TestTenancyUIDPerUser: each user's jobs run as a uid (and gid, and no
// other group) of its own from the default range, the same after a
// restart; with --run-as nobody every job runs as nobody.
func TestTenancyUIDPerUser(t *testing.T) {
	state := t.TempDir()
	s := startDevServer(t, state)
	ids := func(s *devServer, who string) string {
		return strings.TrimSpace(s.runJob(who, 0, "--", "sh", "-c", "echo $(id -u) $(id -g) $(id -G)"))
	}
	a, b := ids(s, "user"), ids(s, "bob")
	for _, got := range []string{a, b} {
		f := strings.Fields(got)
		uid, err := strconv.ParseUint(f[0], 10, 32)
		if len(f) != 3 || err != nil || f[1] != f[0] || f[2] != f[0] || uint32(uid) < job.DefaultUIDRange.First || uint32(uid) > job.DefaultUIDRange.Last {
			t.Fatalf("a job's uid, gid and groups: %q; want one id of %s three times", got, job.DefaultUIDRange)
		}
	}
	if a == b {
		t.Fatalf("dev-user's and bob's jobs both run as %s", a)
	}
	if _, err := os.Stat(filepath.Join(state, "uids.json")); err != nil {
		t.Errorf("the uid table in the state directory: %v", err)
	}
	s.stop()
	// After the restart bob asks first: a uid given anew, lowest first,
	// would now be dev-user's.
	s = startDevServer(t, state)
	if b2, a2 := ids(s, "bob"), ids(s, "user"); a2 != a || b2 != b {
		t.Errorf("after a restart: dev-user %s, bob %s; before: %s, %s", a2, b2, a, b)
	}
	s.stop() // one server per cgroup parent
	one := startDevServer(t, t.TempDir(), "--run-as", "nobody")
	if got := ids(one, "user"); got != "65534 65534 65534" {
		t.Errorf("with --run-as nobody a job runs as %q, want 65534 65534 65534", got)
	}
}

// TestTenancyUIDRangeRefused: a range that holds an account's id stops the
// server at start; a full range refuses the next new user's job, naming the
// flag.
func TestTenancyUIDRangeRefused(t *testing.T) {
	// The test VM's /etc/passwd has jobuser, uid 1000.
	out, err := exec.Command(binary(t), "serve", "--dev", "--state-dir", t.TempDir(), "--uid-range", "1000-1999").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `holds the id 1000 of user "jobuser" in /etc/passwd`) {
		t.Errorf("serve --uid-range 1000-1999: %v, %s; want it refused for jobuser", err, out)
	}
	// So does a group's: the server runs in a mount namespace of its own
	// whose /etc/group has one more group, at the default range's first id.
	groups, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(testchild.PublicDir(t), "group")
	if err := os.WriteFile(fake, fmt.Appendf(groups, "tenants:x:%d:\n", job.DefaultUIDRange.First), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `mount -o bind "$1" /etc/group && exec "$2" serve --dev --state-dir "$3" --listen 127.0.0.1:0`,
		"sh", fake, binary(t), t.TempDir())
	// Go makes the new mount namespace's mounts private before the exec.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err = cmd.CombinedOutput()
	if want := fmt.Sprintf(`holds the id %d of group "tenants" in /etc/group`, job.DefaultUIDRange.First); err == nil || !strings.Contains(string(out), want) {
		t.Errorf("serve with a group in the default range: %v, %s; want it refused for that group", err, out)
	}

	first := strconv.FormatUint(uint64(job.DefaultUIDRange.First), 10)
	s := startDevServer(t, t.TempDir(), "--uid-range", first+"-"+first)
	s.runJob("user", 0, "--", "true")
	r := s.cli("bob", "run", "--", "true")
	if r.code == 0 || !strings.Contains(r.err, "--uid-range") || !strings.Contains(r.err, "every uid") {
		t.Errorf("bob's job on a full range: exit %d, stderr %q; want it refused naming --uid-range", r.code, r.err)
	}
	_, err = s.client("bob").StartJob(context.Background(), &jobworkerv1.StartJobRequest{Command: "true"})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "--uid-range") {
		t.Errorf("bob's StartJob on a full range: %v; want RESOURCE_EXHAUSTED naming --uid-range", err)
	}
}

// TestTenancyPrivateTmp: a job's /tmp and /dev/shm are its own: neither
// another user's job nor the same user's next one sees what it left there,
// nor does the host; they are tmpfs charged to its memory cgroup (shmem),
// and gone with it: once it ends, its 16 MiB there are charged nowhere.
func TestTenancyPrivateTmp(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	g := newGate(t)
	a := s.detach("user", "sh", "-c", "echo a >/tmp/secret && echo a >/dev/shm/secret && head -c 16777216 /dev/zero >/dev/shm/big && echo ready && "+g.wait())
	s.waitOutput("user", a, "ready")
	look := `for f in /tmp/secret /dev/shm/secret; do [ -e $f ] && echo "sees $f"; done; echo looked`
	for _, who := range []string{"bob", "user"} {
		if got := s.runJob(who, 0, "--", "sh", "-c", look); got != "looked\n" {
			t.Errorf("%s's job while the first runs: %q, want %q", who, got, "looked\n")
		}
	}
	for _, f := range []string{"/tmp/secret", "/dev/shm/secret"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("the host has the job's %s", f)
		}
	}
	// The jobs level above every job: what a job's tmpfs holds stays
	// charged there (to the removed job's cgroup, below it) for as long as
	// the tmpfs lives.
	dir := jobCgroup(t, a)
	jobs := filepath.Dir(filepath.Dir(dir))
	t.Logf("shmem of the job with 16 MiB in /dev/shm: %d", memoryStat(t, dir, "shmem"))
	if n := memoryStat(t, dir, "shmem"); n < 16<<20 {
		t.Errorf("shmem of the job with 16 MiB in /dev/shm: %d, want at least %d", n, 16<<20)
	}
	g.open(t)
	s.wait(a)
	if !settles(30*time.Second, func() bool { return memoryStat(t, jobs, "shmem") < 8<<20 }) {
		t.Errorf("shmem of %s after the job with 16 MiB in /dev/shm ended: %d, want its tmpfs gone", jobs, memoryStat(t, jobs, "shmem"))
	}
	t.Logf("shmem of the jobs level once the job ended: %d", memoryStat(t, jobs, "shmem"))
	// What a job writes to its /tmp is charged to it as shmem, which it
	// reads in its own memory.stat at /sys/fs/cgroup.
	got := s.runJob("user", 0, "--", "sh", "-c", "head -c 16777216 /dev/zero >/tmp/big && sed -n 's/^shmem //p' /sys/fs/cgroup/memory.stat")
	t.Logf("shmem of a job with 16 MiB in /tmp, in its memory.stat: %s", strings.TrimSpace(got))
	if n, err := strconv.ParseUint(strings.TrimSpace(got), 10, 64); err != nil || n < 16<<20 {
		t.Errorf("shmem of a job with 16 MiB in /tmp: %q, want at least %d", got, 16<<20)
	}
}

// memoryStat is a key of the memory.stat of the cgroup dir.
func memoryStat(t *testing.T, dir, key string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("%s/memory.stat: %q", dir, line)
			}
			return n
		}
	}
	t.Fatalf("%s/memory.stat has no %s", dir, key)
	return 0
}

// TestTenancyCgroupView: a job sees its own cgroup, read-only, at
// /sys/fs/cgroup, and nothing above it; the jobs level and the user levels
// of the server's subtree cannot be listed.
func TestTenancyCgroupView(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	script := `cat /proc/self/cgroup; ls /sys/fs/cgroup | grep -c -e '^cgroup.procs$' -e '^memory.current$' -e '^supervisor$' -e '^jobs$' -e '^user-'; echo max >/sys/fs/cgroup/memory.max || echo refused`
	got := s.runJob("user", 0, "--", "sh", "-c", script)
	lines := strings.Split(got, "\n")
	if len(lines) < 3 || lines[0] != "0::/" || lines[1] != "2" || !strings.Contains(got, "Read-only file system") || !strings.Contains(got, "refused") {
		t.Errorf("a job's view of its cgroup:\n%s\nwant 0::/, its own files only (2 of the 5 names), and a read-only mount", got)
	}
	id := s.detach("user", "sleep", "1000")
	dir := jobCgroup(t, id)
	// The server's cgroup parent, its jobs level and the user level, by
	// their paths on the host: none is there to list in a job.
	var levels []string
	for d := filepath.Dir(dir); len(levels) < 3; d = filepath.Dir(d) {
		levels = append(levels, strings.TrimPrefix(d, "/sys/fs/cgroup"))
	}
	list := `for d in ` + strings.Join(levels, " ") + `; do ls /sys/fs/cgroup$d >/dev/null 2>&1 && echo "lists $d"; done; echo looked`
	if got := s.runJob("bob", 0, "--", "sh", "-c", list); got != "looked\n" {
		t.Errorf("another user's job listing %v: %q, want none listed", levels, got)
	}
	for _, level := range []string{filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
		fi, err := os.Stat(level)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o711 {
			t.Errorf("the level %s above a job has mode %v, want 0711 (not listable)", level, fi.Mode().Perm())
		}
	}
	s.cli("admin", "stop", id)
}

// TestTenancyIPC: a System V shared memory segment made by one job is not
// seen by another job running at the same time.
func TestTenancyIPC(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	g := newGate(t)
	a := s.detachWith("user", childFlags("shm-make", "GATE="+string(g)), childArgv(t)...)
	s.waitOutput("user", a, "made")
	for _, who := range []string{"user", "bob"} {
		if got := s.runJob(who, 0, childJob(t, "shm-look")...); got != "no segment\n" {
			t.Errorf("%s's other job: %q, want no segment", who, got)
		}
	}
	g.open(t)
	s.wait(a)
}

// TestTenancyNetworkNone: --network none gives a job only loopback, up,
// from which the server is out of reach; on a server whose default is none
// only an admin may ask for the host's network.
func TestTenancyNetworkNone(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	got := s.runJob("user", 0, "--network", "none", "--", "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ip link show lo")
	lines := strings.Split(got, "\n")
	if lines[0] != "lo" || !strings.Contains(lines[1], "lo:") || !strings.Contains(lines[1], ",UP") {
		t.Errorf("a job's interfaces with --network none:\n%s\nwant lo only, up", got)
	}
	if got := s.runJob("user", 0, append([]string{"--network", "none"}, childJob(t, "dial", "ADDR="+s.addr)...)...); !strings.HasPrefix(got, "no connection:") {
		t.Errorf("a job with --network none dialling the server: %q, want no connection", got)
	}
	if got := s.runJob("user", 0, childJob(t, "dial", "ADDR="+s.addr)...); got != "connected\n" {
		t.Errorf("a job on the host's network dialling the server: %q, want connected", got)
	}
	s.stop() // one server per cgroup parent
	none := startDevServer(t, t.TempDir(), "--default-network", "none")
	if got := none.runJob("user", 0, "--", "sh", "-c", "tail -n +3 /proc/net/dev | wc -l"); strings.TrimSpace(got) != "1" {
		t.Errorf("interfaces of a job on a server with --default-network none: %q, want 1 (lo)", got)
	}
	r := none.cli("user", "run", "--network", "host", "--", "true")
	if r.code == 0 || !strings.Contains(r.err, "only an admin") {
		t.Errorf("a user asking for host past --default-network none: exit %d, %q; want permission denied", r.code, r.err)
	}
	if got := none.runJob("admin", 0, append([]string{"--network", "host"}, childJob(t, "dial", "ADDR="+none.addr)...)...); got != "connected\n" {
		t.Errorf("an admin's job with --network host past --default-network none dialling the server: %q, want connected", got)
	}
}

// TestTenancyDebugSocket: profiles are served on a unix socket of root's,
// mode 0600, and the server listens on no TCP port but the API's.
func TestTenancyDebugSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "debug.sock")
	s := startDevServer(t, t.TempDir(), "--debug-socket", sock)
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 || st.Uid != 0 {
		t.Errorf("debug socket: %v, owner %d; want a socket of root's, mode 0600", fi.Mode(), st.Uid)
	}
	if !strings.Contains(s.debugGet("/debug/pprof/"), "goroutine") {
		t.Error("the debug socket serves no pprof index")
	}
	listening := tcpListeners(t, s.pid())
	if len(listening) != 1 || !strings.HasSuffix(s.addr, fmt.Sprintf(":%d", listening[0])) {
		t.Errorf("the server listens on TCP ports %v; want only the API's (%s)", listening, s.addr)
	}
}

// tcpListeners are the ports of the TCP sockets pid listens on.
func tcpListeners(t *testing.T, pid int) []int {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			_, port, _ := strings.Cut(fields[1], ":")
			n, _ := strconv.ParseInt(port, 16, 32)
			ports = append(ports, int(n))
		}
	}
	return ports
}

// TestTenancySecretEnv: a secret variable reaches the job and nothing
// else: not the status or list answers, not the state directory, not the
// server's log; a name both secret and not is refused.
func TestTenancySecretEnv(t *testing.T) {
	state := t.TempDir()
	s := startDevServer(t, state)
	const value = "s3cr3t-value-6b1f0c"
	id := s.detachWith("user", []string{"--secret-env", "API_TOKEN=" + value, "--env", "PLAIN=1"}, "sh", "-c", `echo "$API_TOKEN"`)
	s.wait(id)
	if got := s.cli("user", "logs", id).out; got != value+"\n" {
		t.Errorf("the job printed %q, want the secret", got)
	}
	for _, args := range [][]string{{"status", "--json", id}, {"list", "--json"}, {"status", id}} {
		r := s.cli("admin", args...)
		if strings.Contains(r.out+r.err, value) || !strings.Contains(r.out, "API_TOKEN") {
			t.Errorf("%v: %q; want the name API_TOKEN and never its value", args, r.out)
		}
	}
	var j struct {
		SecretEnvNames []string `json:"secretEnvNames"`
	}
	if err := json.Unmarshal([]byte(s.cli("user", "status", "--json", id).out), &j); err != nil || len(j.SecretEnvNames) != 1 || j.SecretEnvNames[0] != "API_TOKEN" {
		t.Errorf("status --json secretEnvNames = %v (%v), want [API_TOKEN]", j.SecretEnvNames, err)
	}
	r := s.cli("user", "run", "--secret-env", "PLAIN=x", "--env", "PLAIN=y", "--", "true")
	if r.code == 0 || !strings.Contains(r.err, "both an environment variable and a secret one") {
		t.Errorf("a name both secret and not: exit %d, %q; want it refused", r.code, r.err)
	}
	s.stop()
	filepath.WalkDir(state, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), value) && !strings.HasSuffix(path, "/output/"+d.Name()) {
				t.Errorf("%s holds the secret", path)
			}
		}
		return nil
	})
	if strings.Contains(s.serverLog(), value) {
		t.Error("the server's log holds the secret")
	}
}

// TestTenancyMountPropagation: an unmount on the host of a filesystem
// mounted before a job started reaches the running job.
func TestTenancyMountPropagation(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	dir := testchild.PublicDir(t)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	script := fmt.Sprintf(`grep -q " %[1]s " /proc/self/mountinfo && echo mounted; while grep -q " %[1]s " /proc/self/mountinfo; do sleep 0.05; done; echo gone`, dir)
	id := s.detachWith("user", []string{"--timeout", "60s"}, "sh", "-c", script)
	s.waitOutput("user", id, "mounted")
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if j := s.wait(id); j.GetExitCode() != 0 || s.cli("user", "logs", id).out != "mounted\ngone\n" {
		t.Errorf("the job after the host's unmount: %v, output %q; want it to see the unmount", j.GetReason(), s.cli("user", "logs", id).out)
	}
}

// TestTenancyHostSignals: a job's processes get signals as on a host: a
// shell that kills itself ends by that signal, a program that aborts ends
// by SIGABRT, and an orphan is reaped while the job runs on.
func TestTenancyHostSignals(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	s.runJob("user", 137, "--", "sh", "-c", "kill -9 $$")
	s.runJob("user", 143, "--", "sh", "-c", "kill -TERM $$")
	s.runJob("user", 134, childJob(t, "abort", "GOTRACEBACK=crash")...)
	if got := s.runJob("user", 0, childJob(t, "orphan")...); got != "reaped\n" {
		t.Errorf("a job that leaves an orphan: %q, want it reaped", got)
	}
}

// TestTenancyStopGrace: with signals as on a host, a stop's SIGTERM reaches
// every process of the job's process group, its wrapper shell included.
// The grace is cut short only when the job's cgroup is empty: a lone sleep
// ends at once by SIGTERM, while a program that handles SIGTERM gets the
// rest of its grace to finish after the shell that started it died of the
// signal.
func TestTenancyStopGrace(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	// stop stops a job with grace and sends its final state once the stop
	// returns.
	stop := func(id string, grace time.Duration) <-chan *jobworkerv1.Job {
		ended := make(chan *jobworkerv1.Job, 1)
		c := s.client("user")
		go func() {
			r, err := c.StopJob(context.Background(), &jobworkerv1.StopJobRequest{Id: id, Grace: durationpb.New(grace)})
			if err != nil {
				r = &jobworkerv1.StopJobResponse{Job: &jobworkerv1.Job{Message: "stop: " + err.Error()}}
			}
			ended <- r.GetJob()
		}()
		return ended
	}
	stopped, term := jobworkerv1.JobState_JOB_STATE_STOPPED, int32(syscall.SIGTERM)

	lone := s.detach("user", "sleep", "1000")
	began := time.Now()
	j := <-stop(lone, time.Hour)
	t.Logf("a lone sleep, grace 1h: %v signal %d after %v", j.GetState(), j.GetSignal(), time.Since(began))
	if j.GetState() != stopped || j.GetSignal() != term || time.Since(began) > time.Minute {
		t.Errorf("a lone sleep stopped with a grace of an hour: %v signal %d %s after %v; want STOPPED by SIGTERM at once", j.GetState(), j.GetSignal(), j.GetMessage(), time.Since(began))
	}

	g := newGate(t)
	app := `trap 'echo TERM; ` + g.wait() + `; echo handled; exit 0' TERM; echo ready; while :; do sleep 1; done`
	id := s.detach("user", "sh", "-c", `sh -c "$1"; echo after`, "wrapper", app)
	s.waitOutput("user", id, "ready\n")
	ended := stop(id, time.Hour)
	s.waitOutput("user", id, "TERM\n")
	// The wrapper died of the SIGTERM; its app is handling it.
	if j := s.job(id); j.GetState() != jobworkerv1.JobState_JOB_STATE_RUNNING {
		t.Errorf("the job while its app handles SIGTERM: %v, want RUNNING", j.GetState())
	}
	g.open(t)
	began = time.Now()
	j = <-ended
	t.Logf("the wrapper, grace 1h: %v signal %d %v after the gate opened", j.GetState(), j.GetSignal(), time.Since(began))
	out := s.cli("user", "logs", id).out
	if j.GetState() != stopped || j.GetSignal() != term || !strings.Contains(out, "TERM\nhandled\n") || time.Since(began) > time.Minute {
		t.Errorf("a wrapper's app that handles SIGTERM, stopped with a grace of an hour: %v signal %d, output %q, %v after its handler went on; want STOPPED (the wrapper by SIGTERM) once the handler is done (%s)",
			j.GetState(), j.GetSignal(), out, time.Since(began), j.GetMessage())
	}
}

// TestTenancyRunAsConfined: under --run-as every job runs as the one user,
// so a job is PID 1 of a PID namespace of its own instead: it sees only its
// own processes and cannot signal another user's job, whose uid is its own.
func TestTenancyRunAsConfined(t *testing.T) {
	s := startDevServer(t, t.TempDir(), "--run-as", "nobody")
	other := s.detach("bob", "sh", "-c", "echo ready; exec sleep 1000")
	s.waitOutput("bob", other, "ready")
	procs := cgroupProcs(t, jobCgroup(t, other))
	if len(procs) != 1 {
		t.Fatalf("bob's job has processes %v, want one", procs)
	}
	pid := strconv.Itoa(procs[0])
	script := `echo "pid $$"; echo "$(ls /proc | grep -cE '^[0-9]+$') processes"; kill -9 ` + pid + ` || echo "no kill"; [ -e /proc/` + pid + ` ] || echo "no /proc entry"`
	got := s.runJob("user", 0, "--", "sh", "-c", script)
	t.Logf("a job under --run-as nobody:\n%s", got)
	lines := strings.Split(got, "\n")
	n := -1
	if len(lines) > 1 {
		fmt.Sscanf(lines[1], "%d processes", &n)
	}
	if len(lines) < 4 || lines[0] != "pid 1" || n < 1 || n > 4 || !strings.Contains(got, "no kill\n") || !strings.Contains(got, "no /proc entry\n") {
		t.Errorf("a job under --run-as nobody looking for bob's job's process %s:\n%s\nwant it PID 1 among at most 4 processes, neither seeing nor killing it", pid, got)
	}
	if j := s.job(other); j.GetState() != jobworkerv1.JobState_JOB_STATE_RUNNING {
		t.Errorf("bob's job after the other's attempt: %v, want RUNNING", j.GetState())
	}
	s.cli("admin", "stop", other)
}
