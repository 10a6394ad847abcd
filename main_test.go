//go:build !integration

package main

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

func TestHelpListsVerbsButNotInit(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != exitOK {
		t.Fatalf("run(--help) = %d, want %d; stderr: %s", code, exitOK, errOut.String())
	}
	help := out.String()
	for _, verb := range []string{"serve", "run", "stop", "status", "logs", "list", "signal", "pause", "resume", "update", "certs", "version", "completion"} {
		if !strings.Contains(help, "\n  "+verb) {
			t.Errorf("--help does not list %q:\n%s", verb, help)
		}
	}
	if strings.Contains(help, "\n  init") {
		t.Errorf("--help lists the hidden init verb:\n%s", help)
	}
}

func TestUsageErrorExitsTwo(t *testing.T) {
	tests := [][]string{
		{"no-such-verb"},
		{"stop"}, // missing ID
		{"logs", "--offset", "1", "--tail", "2", "x"}, // exclusive flags
		{"update", "--memory-limit", "lots", "x"},
		{"list", "--state", "sleeping"},
		{"certs", "client", "--ca-dir", "d", "--out", "o", "--user", "u", "--role", "root"},
	}
	for _, args := range tests {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != exitUsage {
			t.Errorf("run(%q) = %d, want %d; stderr: %s", args, code, exitUsage, errOut.String())
		}
	}
}

// clearJobworkerEnv unsets, for the test, every JOBWORKER_* variable of
// the environment the tests were started in: with the exports of a dev
// server loaded (README), a client verb would reach a real server and run
// a real job.
func clearJobworkerEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "JOBWORKER_") {
			t.Setenv(k, "") // restores the caller's value after the test
			if err := os.Unsetenv(k); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestClientVerbsNeedCertificates: without the CA and a client
// certificate, a client verb fails with one line that says what to set.
func TestClientVerbsNeedCertificates(t *testing.T) {
	clearJobworkerEnv(t)
	tests := [][]string{
		{"run", "--", "true"},
		{"stop", "id"},
		{"status"},
		{"logs", "id"},
		{"list"},
	}
	for _, args := range tests {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		msg := errOut.String()
		want := exitError
		if args[0] == "run" {
			want = exitRunFailed
		}
		if code != want || !strings.Contains(msg, "missing --ca, --cert, --key") || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "jobworker "+args[0]+": ") {
			t.Errorf("run(%q) = %d, stderr %q; want %d and one line naming the missing flags", args, code, msg, want)
		}
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("JOBWORKER_SERVER", "example:1")
	var c cli
	parser := mustParser(t, &c)
	if _, err := parser.Parse([]string{"list"}); err != nil {
		t.Fatal(err)
	}
	if c.List.Server != "example:1" {
		t.Errorf("JOBWORKER_SERVER: list --server = %q, want %q", c.List.Server, "example:1")
	}
}

func TestRunTakesCommandAfterDoubleDash(t *testing.T) {
	var c cli
	parser := mustParser(t, &c)
	if _, err := parser.Parse([]string{"run", "--cpus", "1.5", "-e", "A=b", "--", "ls", "-la", "--cpus"}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(c.Run.argv(), " "), "ls -la --cpus"; got != want {
		t.Errorf("run command = %q, want %q", got, want)
	}
	if c.Run.CPUs == nil || *c.Run.CPUs != 1.5 || c.Run.Env["A"] != "b" {
		t.Errorf("run flags = cpus %v env %v, want 1.5 and A=b", c.Run.CPUs, c.Run.Env)
	}
}

// completionCases are command lines being completed, the last word the one
// under the cursor, with candidates that must and must not be offered.
// Prefix filtering of the word under the cursor is the shell's: bash's
// compgen and fish do it, zsh's compadd does it after the script, so the
// candidates that must not be offered are ones of another command.
var completionCases = []struct {
	words      []string
	want, deny []string
}{
	{[]string{"jobworker", ""}, []string{"serve", "run", "stop", "status", "logs", "list", "signal", "pause", "resume", "update", "certs", "version", "completion"}, []string{"init", "--cpus", "ca"}},
	{[]string{"jobworker", "update", "--"}, []string{"--cpus", "--memory-limit", "--cpu-weight", "--io-weight", "--pids-limit", "--json"}, []string{"--env", "--detach", "--follow"}},
	{[]string{"jobworker", "list", "--"}, []string{"--name", "--label", "--state", "--user"}, []string{"--cpus", "--follow"}},
	{[]string{"jobworker", "run", "--l"}, []string{"--label"}, []string{"--follow"}},
	{[]string{"jobworker", "pause", "--"}, []string{"--json", "--server"}, []string{"--cpus", "--grace"}},
	{[]string{"jobworker", "run", "--"}, []string{"--cpus", "--memory-limit", "--env", "--timeout", "--detach", "--server"}, []string{"run", "init", "--follow", "--listen"}},
	{[]string{"jobworker", "logs", "--f"}, []string{"--follow"}, []string{"--cpus", "--watch", "init"}},
	{[]string{"jobworker", "--server", "x:1", "status", "--"}, []string{"--watch", "--json"}, []string{"--follow", "--grace"}},
	{[]string{"jobworker", "certs", ""}, []string{"ca", "server", "client"}, []string{"run", "init", "--role"}},
	{[]string{"jobworker", "certs", "client", "--"}, []string{"--role", "--user", "--ca-dir", "--out"}, []string{"--name", "--ip", "--cpus"}},
	{[]string{"jobworker", "serve", "--"}, []string{"--listen", "--state-dir", "--dev", "--run-as"}, []string{"--follow", "--role"}},
}

// completeIn asks shell, with script loaded as a user's shell would load it,
// what it offers for words, and returns the candidates.
//
//   - bash: the function `complete -p jobworker` names is called with
//     COMP_WORDS and COMP_CWORD set, as readline calls it; the answer is
//     COMPREPLY.
//   - zsh: after compinit, the script (bashcompinit and the bash script)
//     must register jobworker's completer in $_comps; that completer runs
//     with words and CURRENT set, as compsys runs it, and what it hands to
//     compadd is the answer (compadd, which needs a live command line, is
//     replaced by a function that prints its candidates).
//   - fish: `complete -C` completes the command line as the shell would.
func completeIn(t *testing.T, shell, script string, words []string) []string {
	t.Helper()
	path, err := exec.LookPath(shell)
	if err != nil {
		t.Fatalf("%s is not installed: the completion test runs the real shell (hack/test installs zsh and fish from Debian): %v", shell, err)
	}
	var cmd *exec.Cmd
	switch shell {
	case "bash":
		cmd = exec.Command(path, "--norc", "--noprofile", "-c", `
			source "$1" || exit 3
			shift
			spec=$(complete -p jobworker) || { echo "no completion registered for jobworker" >&2; exit 3; }
			fn=${spec##* -F }; fn=${fn%% *}
			COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
			"$fn" jobworker "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" # non-zero: nothing to offer
			printf '%s\n' "${COMPREPLY[@]}"`, "bash", script)
	case "zsh":
		cmd = exec.Command(path, "-f", "-c", `
			autoload -U compinit && compinit -u -D || exit 3
			source "$1" || exit 3
			shift
			[[ -n $_comps[jobworker] ]] || { print -u2 "no completion registered for jobworker"; exit 3 }
			compadd() {
				while (( $# )) && [[ $1 != - ]]; do shift; done
				shift
				(( $# )) && print -rl -- "$@"
				return 0
			}
			words=("$@"); CURRENT=$#
			eval "$_comps[jobworker]" # non-zero: nothing to offer
			return 0`, "zsh", script)
	case "fish":
		cmd = exec.Command(path, "--no-config", "-c", `source $JOBWORKER_TEST_SCRIPT; or exit 3; complete -C"$JOBWORKER_TEST_LINE"`)
	}
	cmd.Args = append(cmd.Args, words...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_DATA_HOME="+home, "XDG_CACHE_HOME="+home,
		"JOBWORKER_TEST_SCRIPT="+script, "JOBWORKER_TEST_LINE="+strings.Join(words, " "))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s completing %q: %v; stderr: %s", shell, words, err, stderr.String())
	}
	var got []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if word, _, _ := strings.Cut(line, "\t"); word != "" { // fish: word TAB description
			got = append(got, word)
		}
	}
	return got
}

// TestCompletionScripts: each shell's script, loaded into that shell,
// offers the verbs but not the hidden init, and each command's own flags
// and subcommands and not another's.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		var out, errOut bytes.Buffer
		if code := run([]string{"completion", shell}, &out, &errOut); code != exitOK {
			t.Fatalf("completion %s = %d: %s", shell, code, errOut.String())
		}
		if regexp.MustCompile(`\binit\b`).MatchString(out.String()) {
			t.Errorf("completion %s mentions the hidden init verb:\n%s", shell, out.String())
		}
		script := filepath.Join(t.TempDir(), "jobworker."+shell)
		if err := os.WriteFile(script, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tt := range completionCases {
			got := completeIn(t, shell, script, tt.words)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("%s: completing %q offers %q, want %q among them", shell, tt.words, got, w)
				}
			}
			for _, w := range tt.deny {
				if slices.Contains(got, w) {
					t.Errorf("%s: completing %q offers %q, want no %q", shell, tt.words, got, w)
				}
			}
		}
	}
}

func mustParser(t *testing.T, c *cli) *kong.Kong {
	t.Helper()
	var out, errOut bytes.Buffer
	p, err := newParser(c, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInitByHandRefuses(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"init"}, &out, &errOut); code != exitError || !strings.Contains(errOut.String(), "not for direct use") {
		t.Errorf("run(init) = %d, %q; want %d and a line saying it is not for direct use", code, errOut.String(), exitError)
	}
}

func TestNegativeOffset(t *testing.T) {
	var c cli
	parser := mustParser(t, &c)
	if _, err := parser.Parse(joinNegativeValues([]string{"logs", "--offset", "-10", "x"})); err != nil {
		t.Fatal(err)
	}
	if c.Logs.Offset == nil || *c.Logs.Offset != -10 || c.Logs.ID != "x" {
		t.Errorf("logs --offset -10 x: offset %v, id %q", c.Logs.Offset, c.Logs.ID)
	}
	got := joinNegativeValues([]string{"run", "--", "echo", "--offset", "-5"})
	if strings.Join(got, " ") != "run -- echo --offset -5" {
		t.Errorf("joinNegativeValues touched the job's arguments: %q", got)
	}
}

// TestArgumentsMustBeUTF8: an argument that is not UTF-8 is refused as a
// usage error naming it, rather than changed (the parser would turn its
// bytes into U+FFFD and run something else than asked). A UTF-8 one passes
// the check and the parser: with no JOBWORKER_* variable set, run then
// stops at the missing certificates, before it dials anything.
func TestArgumentsMustBeUTF8(t *testing.T) {
	clearJobworkerEnv(t)
	var out, errOut bytes.Buffer
	code := run([]string{"run", "--", "echo", "caf\xe9"}, &out, &errOut)
	if code != exitRunFailed || !strings.Contains(errOut.String(), `argument 4, "caf\xe9", is not valid UTF-8`) {
		t.Errorf("run with a Latin-1 argument = %d, %q; want %d and the argument named", code, errOut.String(), exitRunFailed)
	}
	out.Reset()
	errOut.Reset()
	code = run([]string{"run", "--", "echo", "café"}, &out, &errOut)
	if msg := errOut.String(); code != exitRunFailed || !strings.HasPrefix(msg, "jobworker run: missing --ca, --cert, --key") || strings.Count(msg, "\n") != 1 {
		t.Errorf("run with a UTF-8 argument and no certificates = %d, %q; want %d and the one line naming the missing flags", code, msg, exitRunFailed)
	}
	if out.Len() != 0 {
		t.Errorf("run with a UTF-8 argument and no certificates printed %q, want nothing", out.String())
	}
}

// TestRunFailureExits125: when jobworker itself fails in run (the command
// line, no certificates, no server), run exits 125, never a code a job
// could have exited with; a verb other than run keeps 2 and 1.
func TestRunFailureExits125(t *testing.T) {
	clearJobworkerEnv(t)
	dir := t.TempDir()
	for _, f := range []string{"ca.crt", "c.crt", "c.key"} {
		if err := os.WriteFile(dir+"/"+f, []byte("not PEM"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	certs := []string{"--ca", dir + "/ca.crt", "--cert", dir + "/c.crt", "--key", dir + "/c.key"}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--memory-limit", "lots", "--", "true"}, `invalid size "lots"`},
		{[]string{"run", "--cpus", "many", "--", "true"}, "--cpus"},
		{[]string{"run", "--io-read-bps", "sda", "--", "true"}, "want DEV=RATE"},
		{[]string{"run"}, "expected"},
		{[]string{"run", "--", "true"}, "missing --ca, --cert, --key"},
		{append(append([]string{"run"}, certs...), "--", "true"), "holds no PEM certificate"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if code := run(tt.args, &out, &errOut); code != exitRunFailed || !strings.Contains(errOut.String(), tt.want) || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("run(%q) = %d, %q; want %d and one line with %q", tt.args, code, errOut.String(), exitRunFailed, tt.want)
		}
	}
}

// TestLabelValuesAsGiven: a label's value is taken as given, whatever
// printable characters it holds (a ';' or ',' too, which a map flag would
// otherwise split on), for run, list and events alike; the first '='
// separates key and value.
func TestLabelValuesAsGiven(t *testing.T) {
	want := map[string]string{"note": "a;b,c=d", "team": "infra"}
	for _, verb := range [][]string{{"run", "-d"}, {"list"}, {"events"}} {
		var c cli
		parser := mustParser(t, &c)
		args := append(append([]string{}, verb...), "--label", "note=a;b,c=d", "--label", "team=infra")
		if verb[0] == "run" {
			args = append(args, "--", "true")
		}
		if _, err := parser.Parse(args); err != nil {
			t.Errorf("%s: %v", strings.Join(args, " "), err)
			continue
		}
		got := map[string]map[string]string{"run": c.Run.Label, "list": c.List.Label, "events": c.Events.Label}[verb[0]]
		if !maps.Equal(got, want) {
			t.Errorf("%s: labels %q, want %q", strings.Join(args, " "), got, want)
		}
	}
}

// TestEnvValuesAsGiven: an --env value is taken as given, a ';' or ','
// in it too (a map flag would otherwise split on ';'); the first '='
// separates the name from the value.
func TestEnvValuesAsGiven(t *testing.T) {
	var c cli
	parser := mustParser(t, &c)
	args := []string{"run", "-d", "--env", "Q=select 1; select 2", "-e", "P=a,b=c", "--", "true"}
	if _, err := parser.Parse(args); err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	if want := map[string]string{"Q": "select 1; select 2", "P": "a,b=c"}; !maps.Equal(c.Run.Env, want) {
		t.Errorf("env %q, want %q", c.Run.Env, want)
	}
}

// TestReadmeExitCodes: README's table of exit codes has a row for each code
// the CLI itself exits with, run's 125 among them, and for the codes of a
// command run could not start (126, 127), as the spec's CLI section asks.
func TestReadmeExitCodes(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "Exit codes of the CLI:\n")
	if !ok {
		t.Fatal("README has no table of exit codes")
	}
	rows := map[string]string{}
	for line := range strings.Lines(table) {
		if !strings.HasPrefix(line, "|") {
			if len(rows) > 0 {
				break
			}
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) > 2 {
			rows[strings.TrimSpace(cells[1])] = strings.TrimSpace(cells[2])
		}
	}
	for _, code := range []int{exitOK, exitError, exitUsage, exitRunFailed, 126, 127} {
		if _, ok := rows[strconv.Itoa(code)]; !ok {
			t.Errorf("README's exit table has no row for %d", code)
		}
	}
	if m := rows[strconv.Itoa(exitRunFailed)]; !strings.Contains(m, "run") || !strings.Contains(m, "connect") {
		t.Errorf("README's row for %d is %q, want it to say that run exits so when jobworker itself fails (connect, refused, bad request)", exitRunFailed, m)
	}
}

// TestReadmeSystemdUnit: README's "Running under systemd" shows the unit
// deploy/systemd/jobworker.service as it is, so that an operator who copies
// either gets the same.
func TestReadmeSystemdUnit(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("deploy/systemd/jobworker.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "Type=notify\n") {
		t.Errorf("the unit is not Type=notify")
	}
	_, section, ok := strings.Cut(string(readme), "### Running under systemd\n")
	if !ok {
		t.Fatal("README has no section \"Running under systemd\"")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	if !strings.Contains(section, "```ini\n"+string(unit)+"```\n") {
		t.Errorf("README's \"Running under systemd\" does not show deploy/systemd/jobworker.service as it is, in an ini block")
	}
}

// TestVersion: `jobworker --version` and `jobworker version` print the same
// one line, "jobworker VERSION (REVISION) GO", to stdout and exit 0.
func TestVersion(t *testing.T) {
	want := "jobworker " + versionString() + "\n"
	if !strings.Contains(want, runtime.Version()) {
		t.Fatalf("the version %q does not name the Go version", want)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != exitOK || out.String() != want || errOut.Len() != 0 {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want 0 and %q", args, code, out.String(), errOut.String(), want)
		}
	}
}

// TestRunExitsWithTheJob: run's exit code is the job's own (its exit code,
// or 128+N for signal N); a job that ended with neither was ended by
// jobworker, and run says so with 125 (a server restart, a damaged
// record, a stop before it started) or, for a queued command that could not be executed, a shell's
// 127 and 126, never 1, which the command itself could have exited with.
func TestRunExitsWithTheJob(t *testing.T) {
	exit := func(n int32) *int32 { return &n }
	failed := func(r jobworkerv1.FailureReason, msg string) *jobworkerv1.Job {
		return &jobworkerv1.Job{Id: "j", State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: r, Message: msg}
	}
	tests := []struct {
		name string
		job  *jobworkerv1.Job
		want int
		says string // on stderr; "" for nothing
	}{
		{"completed", &jobworkerv1.Job{Id: "j", State: jobworkerv1.JobState_JOB_STATE_COMPLETED, ExitCode: exit(0)}, 0, ""},
		{"exit 1", &jobworkerv1.Job{Id: "j", State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: jobworkerv1.FailureReason_FAILURE_REASON_EXIT_CODE, ExitCode: exit(1)}, 1, "job j failed (exit code 1)"},
		{"signal 9", &jobworkerv1.Job{Id: "j", State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: jobworkerv1.FailureReason_FAILURE_REASON_SIGNAL, Signal: exit(9)}, 137, "job j failed (signal 9)"},
		{"server restarted", failed(jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED, "the server stopped while the job was running"), exitRunFailed, "job j failed (server_restarted): the server stopped while the job was running"},
		{"damaged", failed(jobworkerv1.FailureReason_FAILURE_REASON_DAMAGED, ""), exitRunFailed, "job j failed (damaged)"},
		{"queued, not found", failed(jobworkerv1.FailureReason_FAILURE_REASON_EXEC_FAILED, `starting "nope": not found`), 127, `not found`},
		{"queued, not executable", failed(jobworkerv1.FailureReason_FAILURE_REASON_EXEC_FAILED, `starting "/tmp": not executable`), 126, "not executable"},
		{"stopped while queued", &jobworkerv1.Job{Id: "j", State: jobworkerv1.JobState_JOB_STATE_STOPPED}, exitRunFailed, "job j stopped"},
		{"queued, its cgroup", failed(jobworkerv1.FailureReason_FAILURE_REASON_EXEC_FAILED, "creating the job's cgroup: no space left on device"), exitRunFailed, "no space left on device"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		err := runFailed(jobExit(&env{stdout: &out, stderr: &errOut}, tt.job, false))
		code := 0
		var ec *exitCodeError
		if errors.As(err, &ec) {
			code = ec.code
		} else if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if code != tt.want {
			t.Errorf("%s: run exits %d, want %d", tt.name, code, tt.want)
		}
		if got := errOut.String(); (tt.says == "") != (got == "") || !strings.Contains(got, tt.says) || strings.Count(got, "\n") > 1 {
			t.Errorf("%s: stderr %q, want one line with %q", tt.name, got, tt.says)
		}
		if out.Len() != 0 {
			t.Errorf("%s: stdout %q, want nothing", tt.name, out.String())
		}
	}
}
