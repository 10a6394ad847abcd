//go:build integration

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What README.md promises of a job's surroundings and of what the server
// keeps, end to end through the CLI.

// TestE2EJobEnvironment: a job's environment is exactly PATH, HOME, the
// request's variables and JOBWORKER_JOB_ID; its stdin is /dev/null; its
// stdout and stderr are one stream, in the order it wrote them.
func TestE2EJobEnvironment(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	id := s.detachWith("user", []string{"--env", "GREETING=hello world", "--env", "EMPTY="}, "env")
	s.wait(id)
	want := strings.Join([]string{
		"EMPTY=",
		"GREETING=hello world",
		"HOME=/tmp", // the job's own /tmp: its uid has no home
		"JOBWORKER_JOB_ID=" + id,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}, "\n") + "\n"
	if r := s.cli("user", "logs", id); r.out != want {
		t.Errorf("the job's environment:\n%s\nwant exactly:\n%s", r.out, want)
	}

	if r := s.cli("user", "run", "--", "readlink", "/proc/self/fd/0"); r.code != 0 || r.out != "/dev/null\n" {
		t.Errorf("the job's stdin: exit %d, %q %q; want /dev/null", r.code, r.out, r.err)
	}
	if r := s.cli("user", "run", "--", "sh", "-c", "read line; echo read $?"); r.code != 0 || r.out != "read 1\n" {
		t.Errorf("a job reading stdin: exit %d, %q %q; want end of file at once", r.code, r.out, r.err)
	}

	// 500 lines, alternating between stdout and stderr.
	script := `i=0; while [ $i -lt 500 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done`
	var b strings.Builder
	for i := range 500 {
		fmt.Fprintf(&b, "out %d\nerr %d\n", i, i)
	}
	r := s.cli("user", "run", "--", "sh", "-c", script)
	// Everything the job writes is on run's stdout; run's stderr has only
	// what run says itself.
	if r.code != 0 || r.out != b.String() || strings.Contains(r.err, "err 0") {
		t.Errorf("stdout and stderr through run: exit %d, %d bytes on stdout (in order: %v), stderr %q; want %d bytes, one stream in order", r.code, len(r.out), r.out == b.String(), r.err, b.Len())
	}
	id = s.detach("user", "sh", "-c", script)
	s.wait(id)
	if r := s.cli("user", "logs", id); r.out != b.String() {
		t.Errorf("stdout and stderr through logs: %d bytes, in order: %v; want %d bytes", len(r.out), r.out == b.String(), b.Len())
	}
}

// TestE2ERetainByAge: with --retain, a finished job is removed once it
// ended longer ago than that (at the next job's end at the latest), record,
// output and all; a younger one stays.
func TestE2ERetainByAge(t *testing.T) {
	const retain = 2 * time.Second
	state := t.TempDir()
	s := startDevServer(t, state, "--retain", retain.String())
	old := s.detach("user", "echo", "old")
	ended := s.wait(old).GetEndTime().AsTime()
	if r := s.cli("user", "logs", old); r.out != "old\n" {
		t.Fatalf("the first job before its time is up: %q %q", r.out, r.err)
	}
	// The time retention counts has to pass; nothing else is awaited here.
	<-time.After(time.Until(ended.Add(retain + 500*time.Millisecond)))
	young := s.detach("user", "echo", "young")
	s.wait(young)
	eventually(t, time.Minute, "the old job removed", func() bool {
		return strings.Contains(s.cli("user", "status", old).err, "not found")
	})
	if _, err := os.Stat(filepath.Join(state, "jobs", old)); !os.IsNotExist(err) {
		t.Errorf("the old job's directory after retention: %v, want it gone", err)
	}
	if r := s.cli("user", "list"); strings.Contains(r.out, old) || !strings.Contains(r.out, young) {
		t.Errorf("list after retention:\n%s\nwant %s and not %s", r.out, young, old)
	}
	if r := s.cli("user", "logs", young); r.out != "young\n" {
		t.Errorf("the young job's output: %q %q", r.out, r.err)
	}
}

// TestE2EUsersShareCPU: users share the CPU equally whatever number of jobs
// each runs: dev-user's three spinning jobs together get about the CPU
// time of bob's one, all of them on one CPU.
func TestE2EUsersShareCPU(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	var ids []string
	for _, who := range []string{"user", "user", "user", "bob"} {
		ids = append(ids, s.detachWith(who, []string{"--timeout", "2m"}, "taskset", "1", "sh", "-c", "while :; do :; done"))
	}
	t.Cleanup(func() {
		for _, id := range ids {
			s.cli("admin", "stop", "--grace", "0s", id)
		}
	})
	usage := func() []time.Duration {
		u := make([]time.Duration, len(ids))
		for i, id := range ids {
			u[i] = time.Duration(s.job(id).GetUsage().GetCpuUsageUsec()) * time.Microsecond
		}
		return u
	}
	// Every job has started up and is spinning.
	first := usage()
	eventually(t, time.Minute, "every job using CPU", func() bool {
		now := usage()
		for i := range now {
			if now[i]-first[i] < 50*time.Millisecond {
				return false
			}
		}
		return true
	})
	before := usage()
	<-time.After(3 * time.Second) // the measurement window itself
	after := usage()
	var devUser, bob time.Duration
	for i := range ids {
		d := after[i] - before[i]
		if i < 3 {
			devUser += d
		} else {
			bob = d
		}
	}
	ratio := float64(devUser) / float64(bob)
	t.Logf("CPU time over 3 s on one CPU: dev-user's 3 jobs %v, bob's 1 job %v, ratio %.2f", devUser, bob, ratio)
	if ratio < 0.75 || ratio > 1.33 {
		t.Errorf("dev-user's 3 jobs used %v, bob's one %v (ratio %.2f), want about equal (0.75-1.33)", devUser, bob, ratio)
	}
}

// TestE2EMemoryHighDefault: a job's memory.high is 0.9 of its hard limit
// unless --memory-high says otherwise.
func TestE2EMemoryHighDefault(t *testing.T) {
	for _, tt := range []struct {
		flags []string
		high  uint64
	}{
		{nil, 32 << 20 * 9 / 10},
		{[]string{"--memory-high", "0.5"}, 32 << 20 / 2},
	} {
		s := startDevServer(t, t.TempDir(), tt.flags...)
		g := newGate(t)
		id := s.detachWith("user", []string{"--memory-limit", "32M"}, "sh", "-c", g.wait())
		dir := runningCgroup(t, id)
		high := strings.TrimSpace(readString(t, filepath.Join(dir, "memory.high")))
		max := strings.TrimSpace(readString(t, filepath.Join(dir, "memory.max")))
		// The kernel rounds down to whole pages.
		if want := strconv.FormatUint(tt.high/4096*4096, 10); high != want || max != strconv.Itoa(32<<20) {
			t.Errorf("serve %v: memory.high %s, memory.max %s; want %s and %d", tt.flags, high, max, want, 32<<20)
		}
		g.open(t)
		s.wait(id)
		s.stop()
	}
}

// TestE2EStateDirMode: a state directory the server makes is 0700.
func TestE2EStateDirMode(t *testing.T) {
	state := filepath.Join(t.TempDir(), "new", "state")
	startDevServer(t, state)
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory %s has mode %v, want 0700", state, fi.Mode().Perm())
	}
}
