//go:build !integration

package shim_test

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/jobworker/jobworker/shim"
)

// TestMain makes the test binary the shim when a launcher starts it. The
// shims of these tests join no cgroup, change no user and make no
// namespace, so they need no privilege.
func TestMain(m *testing.M) {
	if err := shim.MainForTest(); !errors.Is(err, shim.ErrNotShim) {
		os.Exit(126)
	}
	os.Exit(m.Run())
}

// TestPanicBeforeExecIsAStartError: a shim that panics before the exec
// reports it on the error pipe, so the start fails saying so; without the
// report the server would read the closed pipe as a successful exec.
func TestPanicBeforeExecIsAStartError(t *testing.T) {
	out, code, err := start(t, shim.PanickingLauncher(os.Args[0]), shim.Spec{Command: "/bin/true", Env: []string{"PATH=/bin"}})
	var se *shim.StartError
	if !errors.As(err, &se) {
		t.Fatalf("Start of a shim that panics = exit %d, output %q, error %v; want a *StartError", code, out, err)
	}
	if se.Reason != shim.ReasonInternal || se.Stage != "shim" || !strings.Contains(se.Error(), "panic before the exec: forced by the test") {
		t.Errorf("Start of a shim that panics = %v (reason %q, stage %q), want reason %q, stage shim, and the panic's value", se, se.Reason, se.Stage, shim.ReasonInternal)
	}
}

// TestStart: the shim execs the command with the spec's arguments,
// environment and working directory, its output and exit status being the
// job's; a command that cannot start is a *StartError with the shim's
// reason, its errno kept.
func TestStart(t *testing.T) {
	l := shim.Launcher{Binary: os.Args[0]}
	dir := t.TempDir()
	out, code, err := start(t, l, shim.Spec{Command: "sh", Args: []string{"-c", `printf '%s %s ' "$A" "$(pwd)"; printf 'a\000b'; exit 3`}, Env: []string{"PATH=/bin:/usr/bin", "A=x"}, Dir: dir})
	if want := "x " + dir + " a\x00b"; err != nil || code != 3 || out != want {
		t.Errorf("Start(sh) = %q, exit %d, %v; want %q, exit 3", out, code, err, want)
	}
	tests := []struct {
		name   string
		spec   shim.Spec
		reason shim.Reason
		stage  string
		errno  error
	}{
		{"not on PATH", shim.Spec{Command: "no-such-program", Env: []string{"PATH=/bin"}}, shim.ReasonNotFound, "lookup", syscall.ENOENT},
		{"a directory", shim.Spec{Command: dir}, shim.ReasonNotExecutable, "lookup", syscall.EISDIR},
		{"missing working directory", shim.Spec{Command: "/bin/true", Dir: "/no/such/dir"}, shim.ReasonBadWorkdir, "chdir", syscall.ENOENT},
		{"bad spec", shim.Spec{Command: "/bin/true", Dir: "relative"}, shim.ReasonInternal, "parse spec", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := start(t, l, tt.spec)
			var se *shim.StartError
			if !errors.As(err, &se) || se.Reason != tt.reason || se.Stage != tt.stage || tt.errno != nil && !errors.Is(err, tt.errno) {
				t.Errorf("Start(%+v) = %v; want a StartError %q at %s (errno %v)", tt.spec, err, tt.reason, tt.stage, tt.errno)
			}
		})
	}
}
