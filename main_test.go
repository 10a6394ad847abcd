//go:build !integration

package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func TestHelpListsVerbsButNotInit(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != exitOK {
		t.Fatalf("run(--help) = %d, want %d; stderr: %s", code, exitOK, errOut.String())
	}
	help := out.String()
	for _, verb := range []string{"serve", "run", "stop", "status", "logs", "list", "certs", "version", "completion"} {
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
		{"run", "--memory-limit", "lots", "--", "true"},
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

// TestClientVerbsNeedCertificates: without the CA and a client
// certificate, a client verb fails with one line that says what to set.
func TestClientVerbsNeedCertificates(t *testing.T) {
	for _, k := range []string{"JOBWORKER_CA", "JOBWORKER_CERT", "JOBWORKER_KEY"} {
		t.Setenv(k, "")
	}
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
		if code != exitError || !strings.Contains(msg, "missing --ca, --cert, --key") || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "jobworker "+args[0]+": ") {
			t.Errorf("run(%q) = %d, stderr %q; want %d and one line naming the missing flags", args, code, msg, exitError)
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

func TestCompletionScriptsParse(t *testing.T) {
	for _, shell := range []string{"bash", "fish", "zsh"} {
		var out, errOut bytes.Buffer
		if code := run([]string{"completion", shell}, &out, &errOut); code != exitOK {
			t.Fatalf("completion %s = %d: %s", shell, code, errOut.String())
		}
		if !strings.Contains(out.String(), "logs") || !strings.Contains(out.String(), "follow") || regexp.MustCompile(`\binit\b`).MatchString(out.String()) {
			t.Errorf("completion %s lacks logs/--follow or shows init:\n%s", shell, out.String())
		}
		if shell == "bash" {
			cmd := exec.Command("bash", "-n")
			cmd.Stdin = &out
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("bash -n on the bash completion: %v: %s", err, b)
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
// bytes into U+FFFD and run something else than asked).
func TestArgumentsMustBeUTF8(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"run", "--", "echo", "caf\xe9"}, &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), `argument 4, "caf\xe9", is not valid UTF-8`) {
		t.Errorf("run with a Latin-1 argument = %d, %q; want %d and the argument named", code, errOut.String(), exitUsage)
	}
	errOut.Reset()
	if code := run([]string{"run", "--", "echo", "café"}, &out, &errOut); strings.Contains(errOut.String(), "UTF-8") {
		t.Errorf("run with a UTF-8 argument = %d, %q; want no complaint about UTF-8", code, errOut.String())
	}
}
