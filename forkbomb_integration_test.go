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

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// TestUserPidsForkBombs: two fork bombs of dev-user, bounded together by
// --user-pids at its user level (64: below what their 32 MiB memory limits
// would let them reach first); bob's job starts and completes meanwhile,
// the server answers every RPC, and its own threads stay few.
func TestUserPidsForkBombs(t *testing.T) {
	s := startDevServer(t, t.TempDir(), "--user-pids", "64", "--default-pids-limit", "1000")
	threads0 := procStatus(t, s.pid(), "Threads")
	// Both start, each behind a gate of its own, before either bombs: a
	// job that starts while its user's level is full is refused.
	var bombs []string
	var gates []gate
	for range 2 {
		g := newGate(t)
		gates = append(gates, g)
		bombs = append(bombs, s.detachWith("user", []string{"--timeout", "20s"}, "sh", "-c", g.wait()+`; b() { b | b & }; b; exec sleep 1000`))
	}
	for _, g := range gates {
		g.open(t)
	}
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
	eventually(t, 15*time.Second, "forks refused", func() bool {
		refused := 0
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, "pids.events"))
			if err != nil {
				t.Fatalf("%s/pids.events: %v; the bombs: %v, %v", d, err, s.job(bombs[0]), s.job(bombs[1]))
			}
			for line := range strings.Lines(string(b)) {
				if n, ok := strings.CutPrefix(strings.TrimSpace(line), "max "); ok {
					v, _ := strconv.Atoi(n)
					refused += v
				}
			}
		}
		return refused > 0
	})
	cur, _ := strconv.Atoi(strings.TrimSpace(readString(t, filepath.Join(user, "pids.current"))))
	if cur > 64 {
		t.Errorf("the user level's pids.current = %d, above 64", cur)
	}
	// bob's job, and every RPC, while the bombs go on.
	if out := s.runJob("bob", 0, "--", "sh", "-c", "echo bob ran"); out != "bob ran\n" {
		t.Errorf("bob's job during the bombs printed %q", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.client("admin").GetServerStatus(ctx, &jobworkerv1.GetServerStatusRequest{}); err != nil {
		t.Errorf("GetServerStatus during the bombs: %v", err)
	}
	if r := s.cli("admin", "list"); r.code != 0 {
		t.Errorf("list during the bombs: exit %d, %s", r.code, r.err)
	}
	for _, id := range bombs {
		if st := s.wait(id); st.GetReason() != jobworkerv1.FailureReason_FAILURE_REASON_TIMED_OUT {
			t.Errorf("bomb %s ended %v, want timed out", id, st.GetReason())
		}
	}
	if threads := procStatus(t, s.pid(), "Threads"); threads > threads0+20 {
		t.Errorf("the server has %d threads after the bombs, %d before", threads, threads0)
	}
}
