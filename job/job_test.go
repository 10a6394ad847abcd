//go:build !integration

package job

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/shim"
	"golang.org/x/sys/unix"
)

func TestValidate(t *testing.T) {
	ok := Request{Command: "/bin/true"}
	tests := []struct {
		name string
		edit func(r *Request)
		want string // substring of the error; "" for valid
	}{
		{"minimal", func(r *Request) {}, ""},
		{"empty command", func(r *Request) { r.Command = "" }, "empty command"},
		{"NUL in command", func(r *Request) { r.Command = "a\x00b" }, "NUL"},
		{"relative command path", func(r *Request) { r.Command = "../bin/sh" }, "is a relative path"},
		{"relative command in a directory", func(r *Request) { r.Command = "bin/sh" }, "is a relative path"},
		{"command at the limit", func(r *Request) { r.Command = strings.Repeat("a", MaxCommandBytes) }, ""},
		{"command over the limit", func(r *Request) { r.Command = strings.Repeat("a", MaxCommandBytes+1) }, "over the limit"},
		{"command not UTF-8", func(r *Request) { r.Command = "/bin/\xff" }, "command is not valid UTF-8"},
		{"command in UTF-8 beyond ASCII", func(r *Request) { r.Command = "/opt/café/run" }, ""},
		{"NUL in an argument", func(r *Request) { r.Args = []string{"ok", "b\x00"} }, "argument 2 holds a NUL"},
		{"argument not UTF-8", func(r *Request) { r.Args = []string{"ok", "ok", "\xc3"} }, "argument 3 is not valid UTF-8"},
		{"too many arguments", func(r *Request) { r.Args = make([]string, MaxArgs+1) }, "arguments, over"},
		{"arguments too large", func(r *Request) { r.Args = []string{strings.Repeat("a", MaxArgBytes+1)} }, "bytes, over"},
		{"env ok", func(r *Request) { r.Env = map[string]string{"A_1": "x", "_B": ""} }, ""},
		{"env name with =", func(r *Request) { r.Env = map[string]string{"A=B": "x"} }, "name"},
		{"env name starting with a digit", func(r *Request) { r.Env = map[string]string{"1A": "x"} }, "name"},
		{"env empty name", func(r *Request) { r.Env = map[string]string{"": "x"} }, "name"},
		{"env NUL value", func(r *Request) { r.Env = map[string]string{"A": "x\x00"} }, "NUL"},
		{"env value not UTF-8", func(r *Request) { r.Env = map[string]string{"A": "\xed\xa0\x80"} }, "variable A is not valid UTF-8"},
		{"env job id", func(r *Request) { r.Env = map[string]string{"JOBWORKER_JOB_ID": "x"} }, "set by the server"},
		{"env too large", func(r *Request) { r.Env = map[string]string{"A": strings.Repeat("x", MaxEnvBytes)} }, "over the limit"},
		{"secret env ok", func(r *Request) { r.SecretEnv = map[string]string{"TOKEN": "x"}; r.Env = map[string]string{"A": "y"} }, ""},
		{"secret env bad name", func(r *Request) { r.SecretEnv = map[string]string{"A-B": "x"} }, `secret environment variable name "A-B"`},
		{"secret env NUL, value unquoted", func(r *Request) { r.SecretEnv = map[string]string{"T": "s3cret\x00"} }, "secret environment variable T holds a NUL byte"},
		{"secret env job id", func(r *Request) { r.SecretEnv = map[string]string{"JOBWORKER_JOB_ID": "x"} }, "set by the server"},
		{"secret and plain env name", func(r *Request) { r.SecretEnv = map[string]string{"A": "x"}; r.Env = map[string]string{"A": "y"} }, "A is both an environment variable and a secret one"},
		{"command, args and env at 256 KiB together", func(r *Request) {
			r.Command = "true"
			r.Args = []string{strings.Repeat("a", 128<<10)}
			r.Env = map[string]string{"A": strings.Repeat("x", 128<<10-len("true")-len("A")-1)}
		}, ""},
		{"command, args and env over 256 KiB together", func(r *Request) {
			r.Command = "true"
			r.Args = []string{strings.Repeat("a", 128<<10)}
			r.SecretEnv = map[string]string{"A": strings.Repeat("x", 128<<10)}
		}, "command, arguments and environment are 262150 bytes together, over the limit of 262144 (256 KiB)"},
		{"secret env counted in the size", func(r *Request) {
			r.Env = map[string]string{"A": strings.Repeat("x", MaxEnvBytes/2)}
			r.SecretEnv = map[string]string{"B": strings.Repeat("x", MaxEnvBytes/2)}
		}, "over the limit"},
		{"network none", func(r *Request) { r.Network = NetworkNone }, ""},
		{"network host", func(r *Request) { r.Network = NetworkHost }, ""},
		{"network unknown", func(r *Request) { r.Network = "bridge" }, `network "bridge": want host or none`},
		{"relative dir", func(r *Request) { r.Dir = "tmp" }, "not an absolute path"},
		{"dir with ..", func(r *Request) { r.Dir = "/tmp/../etc" }, "not a clean path"},
		{"dir ok", func(r *Request) { r.Dir = "/tmp" }, ""},
		{"dir not UTF-8", func(r *Request) { r.Dir = "/tmp/\xfe" }, "working directory is not valid UTF-8"},
		{"negative timeout", func(r *Request) { r.Timeout = -time.Second }, "negative timeout"},
		{"bad limit", func(r *Request) { r.Limits.CPUWeight = 20000 }, "cpu weight"},
		{"request ID a UUID", func(r *Request) { r.RequestID = "0f8fad5b-d9cb-469f-a165-70867728950e" }, ""},
		{"request ID upper case", func(r *Request) { r.RequestID = "0F8FAD5B-D9CB-469F-A165-70867728950E" }, "request ID"},
		{"request ID not a UUID", func(r *Request) { r.RequestID = "retry-1" }, `request ID "retry-1": want a lower-case UUID`},
		{"request ID long", func(r *Request) { r.RequestID = strings.Repeat("a", 1000) }, "...\": want"},
	}
	for _, tt := range tests {
		r := ok
		tt.edit(&r)
		err := r.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: Validate() = %v, want %q (and ErrInvalid)", tt.name, err, tt.want)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !ValidID(id) || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("NewID() = %q, want a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "x", "../etc", "6F9619FF-8B86-D011-B42D-00C04FC964FF", "6f9619ff-8b86-d011-b42d-00c04fc964f", "6f9619ff8b86d011b42d00c04fc964ff00000"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

// TestPrecheck: a queued job's command is looked up by the shim's own
// lookup, on the job's PATH and from its working directory, so the answer
// is the one the shim gives when it starts (shim.TestLookPath has every
// case): a file on PATH without execute permission is "permission denied"
// for both, and relative PATH entries are taken from the job's directory.
func TestPrecheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noExec := write("noexec", 0o644)
	exe := write("prog", 0o755)
	write("work/bin/rel", 0o755)
	home := filepath.Join(dir, "home")
	write("home/bin/inhome", 0o755)
	m := &Manager{}
	cred := &shim.Credential{Home: home}
	path := dir + ":/nonexistent"
	tests := []struct {
		cmd    string
		path   string
		dir    string
		reason shim.Reason
	}{
		{exe, path, "", ""},
		{"prog", path, "", ""},
		{"missing", path, "", shim.ReasonNotFound},
		{filepath.Join(dir, "missing"), path, "", shim.ReasonNotFound},
		{noExec, path, "", shim.ReasonPermissionDenied},
		{dir, path, "", shim.ReasonNotExecutable},
		{"noexec", path, "", shim.ReasonPermissionDenied},
		{"rel", "bin", filepath.Join(dir, "work"), ""},
		{"inhome", "bin", "", ""},
		{"rel", "bin", "", shim.ReasonNotFound},
	}
	for _, tt := range tests {
		j := &job{cred: cred, st: Status{ID: "id-1", Command: tt.cmd, Dir: tt.dir, Env: map[string]string{"PATH": tt.path}}}
		err := m.precheck(j)
		var se *shim.StartError
		if tt.reason == "" && err != nil || tt.reason != "" && (!errors.As(err, &se) || se.Reason != tt.reason) {
			t.Errorf("precheck(%s, PATH %s, dir %q) = %v, want reason %q", tt.cmd, tt.path, tt.dir, err, tt.reason)
		}
		_, lerr := shim.LookPath(tt.cmd, tt.path, j.workdir())
		if fmt.Sprint(err) != fmt.Sprint(lerr) {
			t.Errorf("precheck(%s) = %v, the shim's lookup says %v", tt.cmd, err, lerr)
		}
	}
}

// TestStartFailed: a job that could not be started fails exec_failed, with
// the shim's reason in its message.
func TestStartFailed(t *testing.T) {
	tests := []error{
		&shim.StartError{Reason: shim.ReasonNotFound, Stage: "lookup", Err: errors.New("x not found on PATH")},
		&shim.StartError{Reason: shim.ReasonPermissionDenied, Stage: "exec", Err: syscall.EACCES},
		errors.New("create cgroup: no space"),
	}
	for _, err := range tests {
		reason, msg := startFailed(err)
		if reason != ReasonExecFailed || msg != err.Error() {
			t.Errorf("startFailed(%v) = %q, %q; want %q, %q", err, reason, msg, ReasonExecFailed, err.Error())
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "6f9619ff-8b86-4011-b42d-00c04fc964ff")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	code := 3
	st := Status{
		ID: filepath.Base(dir), Owner: "alice", Command: "sh", Args: []string{"-c", "exit 3"},
		Env: map[string]string{"A": "b"}, Limits: cgroupfs.Limits{MemoryMax: 1 << 30, IOMax: []cgroupfs.IOMax{{Device: "8:0", WriteBPS: 5}}},
		Timeout: time.Minute, State: StateFailed, Reason: ReasonExitCode, ExitCode: &code,
		Created: time.Now().Round(0), Ended: time.Now().Round(0),
	}
	if err := writeRecord(dir, st, true); err != nil {
		t.Fatal(err)
	}
	got, err := readRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != st.ID || *got.ExitCode != 3 || got.Limits.IOMax[0].WriteBPS != 5 || !got.Created.Equal(st.Created) || got.Timeout != time.Minute || got.Env["A"] != "b" {
		t.Errorf("record round trip = %+v, want %+v", got, st)
	}
	if _, err := os.Stat(filepath.Join(dir, recordFile+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary record left behind: %v", err)
	}
	// A record in the wrong directory is refused.
	other := filepath.Join(t.TempDir(), "00000000-0000-4000-8000-000000000000")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(other, st, true); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(other, recordFile)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("record not written: %v", err)
	}
	_, err = readRecord(other)
	want := fmt.Sprintf("%s: record of job %q in the directory of %s", path, st.ID, filepath.Base(other))
	if err == nil || err.Error() != want {
		t.Errorf("readRecord(%q) = %v, want %q", other, err, want)
	}
}

func TestJobEnv(t *testing.T) {
	m := &Manager{}
	j := &job{cred: &shim.Credential{Home: "/nonexistent"}, st: Status{ID: "id-1", Env: map[string]string{"PATH": "/opt/bin", "FOO": "bar"}}}
	got := strings.Join(m.jobEnv(j), " ")
	if want := "FOO=bar HOME=/ JOBWORKER_JOB_ID=id-1 PATH=/opt/bin"; got != want {
		t.Errorf("jobEnv = %q, want %q", got, want)
	}
	// A job with a uid of its owner's own: HOME is its private /tmp; its
	// secret variables are among the others.
	j.ownUID, j.secretEnv = true, map[string]string{"TOKEN": "s3cret"}
	got = strings.Join(m.jobEnv(j), " ")
	if want := "FOO=bar HOME=/tmp JOBWORKER_JOB_ID=id-1 PATH=/opt/bin TOKEN=s3cret"; got != want {
		t.Errorf("jobEnv of a job with its own uid and a secret = %q, want %q", got, want)
	}
	j.ownUID, j.secretEnv = false, nil
	j.st.Env = nil
	if got := strings.Join(m.jobEnv(j), " "); !strings.Contains(got, "PATH="+defaultPath) {
		t.Errorf("jobEnv without PATH = %q, want the default PATH", got)
	}
}

// TestHandlesSignal reads dispositions of real processes: a plain sleep
// takes SIGTERM's default; a shell that traps or ignores it handles it; a
// process that is gone counts as handling it (the grace is kept).
func TestHandlesSignal(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   bool
	}{
		{"default", `echo ready; exec sleep 1000`, false},
		{"trapped", `trap 'exit 0' TERM; echo ready; while :; do sleep 1; done`, true},
		{"ignored", `trap '' TERM; echo ready; exec sleep 1000`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tt.script)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer cmd.Process.Kill()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || line != "ready\n" {
				t.Fatalf("child said %q, %v", line, err)
			}
			// "exec sleep" replaces the shell only after "ready"; the
			// disposition checked is whichever process holds the pid, and
			// both have the same one.
			if got := handlesSignal(cmd.Process.Pid, unix.SIGTERM); got != tt.want {
				t.Errorf("handlesSignal = %v, want %v", got, tt.want)
			}
		})
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !handlesSignal(cmd.Process.Pid, unix.SIGTERM) {
		t.Error("handlesSignal of a reaped process = false, want true")
	}
}

func TestStorageError(t *testing.T) {
	tests := []struct {
		err  error
		full bool
	}{
		{fmt.Errorf("record: %w", syscall.ENOSPC), true},
		{&os.PathError{Op: "mkdir", Path: "/x", Err: syscall.EDQUOT}, true},
		{fmt.Errorf("record: %w", syscall.EIO), false},
		{errors.New("other"), false},
	}
	for _, tt := range tests {
		err := storageError(tt.err)
		if errors.Is(err, ErrStateFull) != tt.full || !errors.Is(err, tt.err) {
			t.Errorf("storageError(%v) = %v: ErrStateFull %v, want %v, and the cause kept", tt.err, err, errors.Is(err, ErrStateFull), tt.full)
		}
	}
}
