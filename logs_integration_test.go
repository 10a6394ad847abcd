//go:build integration

package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// timedLines parses `logs -t` output: each line's time and text.
func timedLines(t *testing.T, out string) ([]time.Time, []string) {
	t.Helper()
	var times []time.Time
	var texts []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		ts, text, ok := strings.Cut(l, " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if !ok || err != nil {
			t.Fatalf("line %q of logs -t: want an RFC 3339 time, a space and the line", l)
		}
		times = append(times, at)
		texts = append(texts, text)
	}
	return times, texts
}

// TestE2ELogsTimes: `logs -t` prefixes each line with when it arrived, also
// following; --since and --until select by that time, as RFC 3339 times
// and as durations; every chunk of --json carries its time; byte offsets
// are as before; a follower with an --until still to come ends once it
// has passed.
func TestE2ELogsTimes(t *testing.T) {
	s := startDevServer(t, t.TempDir())
	start := time.Now()
	r := s.cli("user", "run", "--", "sh", "-c", "echo a; sleep 1.5; echo b; sleep 1.5; echo c")
	end := time.Now()
	if r.code != 0 || r.out != "a\nb\nc\n" {
		t.Fatalf("run: exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
	}
	j := jsonJob(t, "list --json", s.cli("user", "list", "--json"))
	r = s.cli("user", "logs", "-t", j.GetId())
	times, texts := timedLines(t, r.out)
	if strings.Join(texts, ",") != "a,b,c" {
		t.Fatalf("logs -t: %q, want the three lines", r.out)
	}
	for i, at := range times {
		if at.Before(start.Add(-time.Second)) || at.After(end.Add(time.Second)) {
			t.Errorf("line %d's time %v is outside the run, %v to %v", i, at, start, end)
		}
		if i > 0 && at.Sub(times[i-1]) < time.Second {
			t.Errorf("line %d arrived %v after the one before, want the sleep's 1.5s", i, at.Sub(times[i-1]))
		}
	}
	b := times[1].Format(time.RFC3339Nano)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", b}, "b\nc\n"},
		{[]string{"--until", b}, "a\nb\n"},
		{[]string{"--since", b, "--until", b}, "b\n"},
		{[]string{"--since", "1h"}, "a\nb\nc\n"},
		{[]string{"--until", "1h"}, ""},
		{[]string{"--offset", "2"}, "b\nc\n"},
		{[]string{"--offset", "2", "--since", times[2].Format(time.RFC3339Nano)}, "c\n"},
	} {
		r := s.cli("user", append(append([]string{"logs"}, c.args...), j.GetId())...)
		if r.code != 0 || r.out != c.want {
			t.Errorf("logs %v: exit %d, stdout %q, stderr %q; want %q", c.args, r.code, r.out, r.err, c.want)
		}
	}
	if r := s.cli("user", "logs", "--since", "yesterday", j.GetId()); r.code != 2 || !strings.Contains(r.err, "--since") {
		t.Errorf("logs --since yesterday: exit %d, stderr %q; want a usage error naming --since", r.code, r.err)
	}
	r = s.cli("user", "logs", "--json", j.GetId())
	for _, l := range strings.Split(strings.TrimSpace(r.out), "\n") {
		m := &jobworkerv1.GetJobOutputResponse{}
		if err := protojson.Unmarshal([]byte(l), m); err != nil || m.GetTime() == nil {
			t.Errorf("logs --json chunk %q: %v; want a time", l, err)
		}
	}

	// Following: each line with its time as it comes.
	id2 := s.detach("user", "sh", "-c", "echo x; sleep 1.2; echo y")
	r = s.cli("user", "logs", "-f", "-t", id2)
	times, texts = timedLines(t, r.out)
	if strings.Join(texts, ",") != "x,y" || times[1].Sub(times[0]) < time.Second {
		t.Errorf("logs -f -t: %q; want x and y, a second apart", r.out)
	}

	// Following up to a time still to come: the lines that arrive until
	// then, and the end of the stream once it has passed, while the job
	// goes on writing.
	id3 := s.detach("user", "sh", "-c", "while :; do echo tick; sleep 0.2; done")
	until := time.Now().Add(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	follow := exec.CommandContext(ctx, binary(t), "logs", "-f", "-t", "--until", until.Format(time.RFC3339Nano), id3)
	follow.Env = s.cliEnv(s.addr, "user")
	out, err := follow.Output()
	if err != nil {
		t.Fatalf("logs -f --until in 2s: %v (stdout %q); want it to end by itself once that time passed", err, out)
	}
	if ended := time.Now(); ended.Before(until) {
		t.Errorf("logs -f --until ended at %v, before its until %v", ended, until)
	}
	times, texts = timedLines(t, string(out))
	if len(texts) < 2 {
		t.Errorf("logs -f --until in 2s: %q; want the ticks of about 2s", out)
	}
	for i, at := range times {
		if texts[i] != "tick" || at.After(until) {
			t.Errorf("logs -f --until: line %d %q at %v; want ticks up to %v", i, texts[i], at, until)
		}
	}
	if j := s.job(id3); j.GetState() != jobworkerv1.JobState_JOB_STATE_RUNNING {
		t.Errorf("the ticking job: %v, want still running", j.GetState())
	}
}
