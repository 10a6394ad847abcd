//go:build integration

package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/internal/testchild"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// TestUserPidsForkBombs: two fork bombs of dev-user, bounded together by
// --user-pids at its user level (64: below what their 32 MiB memory limits
// would let them reach first); bob's job starts and completes meanwhile,
// the server answers every RPC, and its own threads stay few.
func TestUserPidsForkBombs(t *testing.T) {
	s := startDevServer(t, t.TempDir(), "--user-pids", "64", "--default-pids-limit", "1000")
	threads0 := procStatus(t, s.pid(), "Threads")
	bombs := startGatedBombs(t, s, "20s", `b() { b | b & }; b; exec sleep 1000`, "user", "user")
	// Both are held by the user level's pids.max, whose count they share.
	user := filepath.Dir(jobCgroup(t, bombs[0]))
	if got := strings.TrimSpace(readString(t, filepath.Join(user, "pids.max"))); got != "64" {
		t.Fatalf("the user level's pids.max = %q, want 64", got)
	}
	// A fork the user level refuses counts in pids.events "max" of the
	// cgroup of the task that forked on kernels before 6.13 (the job's),
	// and of the level whose limit it met since (the user level's): read
	// all three.
	dirs := []string{user, jobCgroup(t, bombs[0]), jobCgroup(t, bombs[1])}
	eventually(t, 15*time.Second, "forks refused", func() bool { return forksRefused(t, dirs...) > 0 })
	cur, _ := strconv.Atoi(strings.TrimSpace(readString(t, filepath.Join(user, "pids.current"))))
	if cur > 64 {
		t.Errorf("the user level's pids.current = %d, above 64", cur)
	}
	// bob's job, and every RPC, while the bombs go on.
	if out := s.runJob("bob", 0, "--", "sh", "-c", "echo bob ran"); out != "bob ran\n" {
		t.Errorf("bob's job during the bombs printed %q", out)
	}
	checkServerAnswers(t, s, 10*time.Second)
	checkBombsEnded(t, s, bombs, threads0)
}

// startGatedBombs starts one job per owner in who, each running script
// behind a gate of its own and ending by timeout, and opens the gates once
// all are started: a job that starts while its level is full is refused.
func startGatedBombs(t *testing.T, s *devServer, timeout, script string, who ...string) []string {
	t.Helper()
	var bombs []string
	var gates []gate
	for _, owner := range who {
		g := newGate(t)
		gates = append(gates, g)
		bombs = append(bombs, s.detachWith(owner, []string{"--timeout", timeout}, "sh", "-c", g.wait()+"; "+script))
	}
	for _, g := range gates {
		g.open(t)
	}
	return bombs
}

// checkServerAnswers: GetServerStatus within timeout, and the CLI's list.
func checkServerAnswers(t *testing.T, s *devServer, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := s.client("admin").GetServerStatus(ctx, &jobworkerv1.GetServerStatusRequest{}); err != nil {
		t.Errorf("GetServerStatus during the bombs: %v", err)
	}
	if r := s.cli("admin", "list"); r.code != 0 {
		t.Errorf("list during the bombs: exit %d, %s", r.code, r.err)
	}
}

// checkBombsEnded: every bomb ended by its timeout, and the server has at
// most 20 threads more than threads0.
func checkBombsEnded(t *testing.T, s *devServer, bombs []string, threads0 int64) {
	t.Helper()
	for _, id := range bombs {
		if st := s.wait(id); st.GetReason() != jobworkerv1.FailureReason_FAILURE_REASON_TIMED_OUT {
			t.Errorf("bomb %s ended %v, want timed out", id, st.GetReason())
		}
	}
	if threads := procStatus(t, s.pid(), "Threads"); threads > threads0+20 {
		t.Errorf("the server has %d threads after the bombs, %d before", threads, threads0)
	}
}

// forksRefused sums the "max" count of pids.events in dirs: the forks that
// a pids.max refused.
func forksRefused(t *testing.T, dirs ...string) int {
	t.Helper()
	refused := 0
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "pids.events"))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "max "); ok {
				v, _ := strconv.Atoi(n)
				refused += v
			}
		}
	}
	return refused
}

// TestServerReserveForkBombs: dev-user and bob each bomb at their
// --user-pids quota (200), holding every process they get, together more
// than the cgroup parent's pids.max (300) would hold beside the server;
// the jobs level takes the
// parent's bound less --server-pids-reserve (150), so the bombs share 150
// and the server keeps the rest: it answers every RPC, records a job
// admin starts meanwhile, its threads stay few, and once the bombs end
// admin's next job runs. Without the reserve the bombs would take what the
// server needs to make a thread.
func TestServerReserveForkBombs(t *testing.T) {
	testchild.RequireCgroup2(t, "pids")
	mount, parent := testchild.TempCgroup(t)
	if err := os.WriteFile(filepath.Join(parent, "pids.max"), []byte("300"), 0); err != nil {
		t.Fatal(err)
	}
	s := startDevServer(t, t.TempDir(), "--cgroup-parent", strings.TrimPrefix(parent, mount),
		"--server-pids-reserve", "150", "--user-pids", "200", "--default-pids-limit", "200", "--default-memory-limit", "64M")
	jobs := filepath.Join(parent, "jobs")
	if got := strings.TrimSpace(readString(t, filepath.Join(jobs, "pids.max"))); got != "150" {
		t.Errorf("the jobs level's pids.max = %q, want 150 (the parent's 300 less the reserve)", got)
	}
	total, err := memTotal()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(readString(t, filepath.Join(jobs, "memory.max"))), strconv.FormatUint(total-256<<20, 10); got != want {
		t.Errorf("the jobs level's memory.max = %s, want %s (MemTotal less the default reserve of 256 MiB)", got, want)
	}
	threads0 := procStatus(t, s.pid(), "Threads")
	// A bomb that holds what it gets: a loop forks sleeps until a fork is
	// refused (which ends the shell that loops), and the sleeps stay, with
	// the job's first process.
	bombs := startGatedBombs(t, s, "30s", `(while :; do sleep 1000 & done) 2>/dev/null & exec sleep 1000`, "user", "bob")
	dirs := []string{jobs}
	for _, id := range bombs {
		dir := jobCgroup(t, id)
		dirs = append(dirs, dir, filepath.Dir(dir))
	}
	eventually(t, 25*time.Second, "forks refused", func() bool { return forksRefused(t, dirs...) > 0 })
	if cur, _ := strconv.Atoi(strings.TrimSpace(readString(t, filepath.Join(jobs, "pids.current")))); cur > 150 {
		t.Errorf("the jobs level's pids.current = %d, above its 150", cur)
	}
	// Every RPC while the bombs go on, and a job of admin's recorded.
	checkServerAnswers(t, s, 20*time.Second)
	// The server makes the shim of a new job in its own cgroup, from its
	// reserve: admin's job is started and recorded. (What the job then
	// does in the full jobs level is its own affair.)
	during := s.detach("admin", "sh", "-c", "echo admin ran")
	st := s.wait(during)
	t.Logf("admin's job during the bombs ended %v %v %q", st.GetState(), st.GetReason(), st.GetMessage())
	checkBombsEnded(t, s, bombs, threads0)
	if out := s.runJob("admin", 0, "--", "sh", "-c", "echo admin ran"); out != "admin ran\n" {
		t.Errorf("admin's job after the bombs printed %q", out)
	}
}
