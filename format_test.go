//go:build !integration

package main

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestOutcome(t *testing.T) {
	code, sig := int32(3), int32(9)
	tests := []struct {
		j    *jobworkerv1.Job
		want string
	}{
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_RUNNING}, "running"},
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: jobworkerv1.FailureReason_FAILURE_REASON_EXIT_CODE, ExitCode: &code}, "failed (exit code 3)"},
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: jobworkerv1.FailureReason_FAILURE_REASON_OOM_KILLED, Signal: &sig}, "failed (oom_killed, signal 9)"},
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED}, "failed (server_restarted)"},
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_STOPPED, Signal: &sig}, "stopped (signal 9)"},
	}
	for _, tt := range tests {
		if got := outcome(tt.j); got != tt.want {
			t.Errorf("outcome(%v) = %q, want %q", tt.j, got, tt.want)
		}
	}
}

// splitCommandLine splits a commandLine back into its words: a word that
// begins with a double quote is a Go-quoted string, any other ends at the
// next space.
func splitCommandLine(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	for line != "" {
		var w string
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				t.Fatalf("command line %q: %v", line, err)
			}
			if w, err = strconv.Unquote(q); err != nil {
				t.Fatal(err)
			}
			line = line[len(q):]
		} else {
			w, line, _ = strings.Cut(line, " ")
			line = " " + line
			if line == " " {
				line = ""
			}
		}
		words = append(words, w)
		if line == "" {
			break
		}
		if line[0] != ' ' {
			t.Fatalf("command line: word %q is followed by %q, want a space", w, line)
		}
		line = line[1:]
	}
	return words
}

// unsafeBytes finds what a terminal would act on in human output: a
// control byte (below 0x20 but the line feeds that end rows, 0x7f, C1) or
// bytes that are not UTF-8.
func unsafeBytes(out string) string {
	if !utf8.ValidString(out) {
		return "invalid UTF-8"
	}
	for i, r := range out {
		if r == '\n' {
			continue
		}
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return fmt.Sprintf("raw %U at byte %d", r, i)
		}
	}
	return ""
}

// TestHumanOutputQuotesControls: every control byte (below 0x20, 0x7f),
// C1 controls, invisible characters and invalid UTF-8 in a job's command,
// arguments, message, damage, owner or I/O device are quoted in `status`
// and `list` output: no raw control byte reaches the terminal, each row
// stays one line, and the command line splits back into the very
// arguments (and the message reads back to the very text).
func TestHumanOutputQuotesControls(t *testing.T) {
	type input struct {
		name string
		s    string
	}
	var tests []input
	for b := range 0x20 {
		tests = append(tests, input{fmt.Sprintf("byte %#02x", b), string([]byte{byte(b)})})
	}
	tests = append(tests,
		input{"DEL", "\x7f"},
		input{"escape sequence", "\x1b]0;owned\x07\x1b[2J"},
		input{"C1 CSI", "\u009b31m"},
		input{"right-to-left override", "\u202etxt.exe"},
		input{"no-break space", "a\u00a0b"},
		input{"invalid byte", "\xff"},
		input{"truncated sequence", "caf\xc3"},
		input{"surrogate", "\xed\xa0\x80"},
		input{"overlong", "\xc0\xaf"},
		input{"plain", "plain"},
		input{"UTF-8 beyond ASCII", "café ünï"},
	)
	created := timestamppb.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	for _, tt := range tests {
		s := tt.s
		j := &jobworkerv1.Job{
			Id: "6f9619ff-8b86-4011-b42d-00c04fc964ff", Owner: "o" + s, Command: "/bin/" + s,
			Args: []string{s, "x" + s + "y", "", "two words"}, Message: "m" + s, Damaged: "d" + s,
			State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: jobworkerv1.FailureReason_FAILURE_REASON_DAMAGED,
			CreateTime: created, Limits: &jobworkerv1.Limits{IoMax: []*jobworkerv1.IOMax{{Device: "/dev/" + s, ReadBps: 1}}},
			Name: "n" + s, Labels: map[string]string{"k" + s: "v" + s},
		}
		var status, list bytes.Buffer
		printJob(&status, j)
		if err := printJobTable(&list, []*jobworkerv1.Job{j}); err != nil {
			t.Fatal(err)
		}
		for _, out := range []struct{ verb, text string }{{"status", status.String()}, {"list", list.String()}} {
			if bad := unsafeBytes(out.text); bad != "" {
				t.Errorf("%s: %s output has %s:\n%q", tt.name, out.verb, bad, out.text)
			}
		}
		if n := strings.Count(list.String(), "\n"); n != 2 {
			t.Errorf("%s: list prints %d lines, want a heading and one row:\n%s", tt.name, n, list.String())
		}
		rows := map[string]string{}
		for line := range strings.Lines(status.String()) {
			k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
			if _, dup := rows[k]; dup {
				t.Errorf("%s: status prints %s twice", tt.name, k)
			}
			rows[k] = strings.TrimLeft(v, " ")
		}
		want := append([]string{j.GetCommand()}, j.GetArgs()...)
		if got := splitCommandLine(t, rows["Command"]); !slices.Equal(got, want) {
			t.Errorf("%s: status Command %q reads back as %q, want %q", tt.name, rows["Command"], got, want)
		}
		for _, f := range []struct{ row, want string }{{"Message", j.GetMessage()}, {"Damaged", j.GetDamaged()}, {"Owner", j.GetOwner()}} {
			got := rows[f.row]
			if strings.HasPrefix(got, `"`) {
				var err error
				if got, err = strconv.Unquote(got); err != nil {
					t.Errorf("%s: status %s %q: %v", tt.name, f.row, rows[f.row], err)
				}
			}
			if got != f.want {
				t.Errorf("%s: status %s %q reads back as %q, want %q", tt.name, f.row, rows[f.row], got, f.want)
			}
		}
	}
}

// TestJobTableCutsBetweenCharacters: a long command line is cut short in
// the table between two characters, never inside one.
func TestJobTableCutsBetweenCharacters(t *testing.T) {
	for n := range 8 {
		j := &jobworkerv1.Job{Command: strings.Repeat("a", 50+n) + strings.Repeat("é", 20), CreateTime: timestamppb.Now()}
		var b bytes.Buffer
		printJobTable(&b, []*jobworkerv1.Job{j})
		if !utf8.Valid(b.Bytes()) || !strings.Contains(b.String(), "...") {
			t.Errorf("table row of a %d-byte command: %q, want valid UTF-8 cut with ...", len(j.Command), b.String())
		}
	}
}

// TestJobTableLabels: the list shows a job's name and labels, sorted by
// key, "-" for none, a long set of labels cut short between characters.
func TestJobTableLabels(t *testing.T) {
	created := timestamppb.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	long := map[string]string{"a": strings.Repeat("x", 30), "b": strings.Repeat("é", 20)}
	tests := []struct {
		name   string
		labels map[string]string
		want   string // the row's LABELS column
	}{
		{"build-7", map[string]string{"tier": "batch job", "team": "infra"}, "team=infra,tier=batch job"},
		{"", nil, "-"},
		{"long", long, "a=" + strings.Repeat("x", 30) + ",b=é..."}, // 37 bytes and "..."
	}
	for _, tt := range tests {
		j := &jobworkerv1.Job{Id: "6f9619ff-8b86-4011-b42d-00c04fc964ff", Owner: "alice", Command: "true", Name: tt.name, Labels: tt.labels, CreateTime: created}
		var b bytes.Buffer
		if err := printJobTable(&b, []*jobworkerv1.Job{j}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("list of one job: %q, want a heading and one row", b.String())
		}
		at := strings.Index(lines[0], "LABELS")
		end := strings.Index(lines[0], "CREATED")
		nameAt := strings.Index(lines[0], "NAME")
		if at < 0 || end < at || nameAt < 0 {
			t.Fatalf("heading %q, want NAME and LABELS before CREATED", lines[0])
		}
		// The columns are padded in bytes; the row's columns start where
		// the heading's do as long as no earlier column holds more than
		// ASCII.
		row := lines[1]
		col := row[at:]
		if i := strings.Index(col, "  2026-"); i >= 0 {
			col = col[:i]
		}
		col = strings.TrimRight(col, " ")
		if col != tt.want {
			t.Errorf("labels %v: LABELS column %q, want %q (row %q)", tt.labels, col, tt.want, row)
		}
		wantName := tt.name
		if wantName == "" {
			wantName = "-"
		}
		if got := strings.Fields(row[nameAt:at])[0]; got != wantName {
			t.Errorf("name %q: NAME column %q, want %q", tt.name, got, wantName)
		}
		if !utf8.ValidString(row) {
			t.Errorf("row %q is not valid UTF-8", row)
		}
	}
}

// TestOutcomeDamaged: a damaged job says so in its state, once.
func TestOutcomeDamaged(t *testing.T) {
	code := int32(0)
	tests := []struct {
		j    *jobworkerv1.Job
		want string
	}{
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: jobworkerv1.FailureReason_FAILURE_REASON_DAMAGED, Damaged: "its record is damaged"}, "failed (damaged)"},
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_COMPLETED, ExitCode: &code, Damaged: "output bytes 1 to 2 are missing"}, "completed (damaged, exit code 0)"},
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_COMPLETED, ExitCode: &code}, "completed (exit code 0)"},
	}
	for _, tt := range tests {
		if got := outcome(tt.j); got != tt.want {
			t.Errorf("outcome(%v) = %q, want %q", tt.j, got, tt.want)
		}
	}
	var b bytes.Buffer
	printJob(&b, tests[0].j)
	if !strings.Contains(b.String(), "Damaged   its record is damaged\n") || !strings.Contains(b.String(), "Owner     (unknown)\n") {
		t.Errorf("status of a damaged job without owner:\n%s", b.String())
	}
}

// TestHumanTimeHasZone: a time in human output carries its zone's offset,
// so that it reads back as the same instant wherever it is read.
func TestHumanTimeHasZone(t *testing.T) {
	at := time.Date(2026, 12, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600+1800))
	s := humanTime(at)
	back, err := time.Parse(humanTimeLayout, s)
	if err != nil || !back.Equal(at) || !strings.Contains(s, ":05 ") {
		t.Errorf("humanTime(%v) = %q, reads back as %v (%v); want the same instant, to the second, with its offset", at, s, back, err)
	}
}
