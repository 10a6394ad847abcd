//go:build !integration

package shim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLookPath: the one lookup of a command, one answer per case. Every
// file here belongs to the test's user, so the answers are the same as
// root (the unit tests' user) and as anyone else; what only another user
// is refused (a file only its owner may execute) the integration tests
// ask as nobody (TestStartErrors).
func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		// The mode as given, whatever the umask.
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkdir := func(name string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	exe := mk("a/prog", 0o755)
	ownerOnly := mk("a/mine", 0o700)
	noExec := mk("a/noexec", 0o644)
	mk("b/noexec", 0o644)
	laterExe := mk("c/noexec", 0o755)
	mkdir("a/isdir")
	laterDirExe := mk("c/isdir", 0o755)
	mkdir("b/onlydir")
	mk("d/file", 0o644)
	relExe := mk("work/bin/rel", 0o755)
	cwdExe := mk("work/here", 0o755)
	link := filepath.Join(dir, "a/link")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "a/fifo")
	if err := unix.Mkfifo(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	work := filepath.Join(dir, "work")
	path := a + ":" + b + ":/nonexistent"

	tests := []struct {
		name    string
		command string
		path    string
		want    string // the file found; "" for an error
		reason  Reason
	}{
		{"absolute executable", exe, "", exe, ""},
		{"absolute, only its owner may execute", ownerOnly, "", ownerOnly, ""},
		{"absolute symlink to an executable", link, "", link, ""},
		{"absolute missing", filepath.Join(dir, "a/missing"), path, "", ReasonNotFound},
		{"absolute under a file", filepath.Join(dir, "d/file/prog"), path, "", ReasonNotFound},
		{"absolute without execute permission", noExec, path, "", ReasonPermissionDenied},
		{"absolute not a regular file", fifo, path, "", ReasonPermissionDenied},
		{"absolute directory", a, path, "", ReasonNotExecutable},
		{"on PATH", "prog", path, exe, ""},
		{"on PATH, second directory", "prog", b + ":" + a, exe, ""},
		{"not on PATH", "missing", path, "", ReasonNotFound},
		{"empty PATH", "prog", "", "", ReasonNotFound},
		{"PATH of missing directories", "prog", "/nonexistent:/nonexistent2", "", ReasonNotFound},
		{"PATH entry that is a file", "file", filepath.Join(dir, "d/file"), "", ReasonNotFound},
		{"on PATH without execute permission", "noexec", path, "", ReasonPermissionDenied},
		{"on PATH without execute permission, then executable", "noexec", path + ":" + c, laterExe, ""},
		{"on PATH a directory", "onlydir", path, "", ReasonNotExecutable},
		{"on PATH a directory, then executable", "isdir", path + ":" + c, laterDirExe, ""},
		{"on PATH without execute permission, then a directory", "noexec", b + ":" + filepath.Join(dir, "x") + ":" + a, "", ReasonPermissionDenied},
		{"relative PATH entry, from the working directory", "rel", "bin", relExe, ""},
		{"empty PATH entry is the working directory", "here", ":" + a, cwdExe, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LookPath(tt.command, tt.path, work)
			if tt.reason == "" {
				if err != nil || got != tt.want {
					t.Errorf("LookPath(%q, %q) = %q, %v; want %q", tt.command, tt.path, got, err, tt.want)
				}
				return
			}
			var se *StartError
			if !errors.As(err, &se) || se.Reason != tt.reason || se.Stage != "lookup" || got != "" {
				t.Errorf("LookPath(%q, %q) = %q, %v; want a lookup StartError with reason %q", tt.command, tt.path, got, err, tt.reason)
			}
		})
	}
}

// TestExecReason: how an errno of the lookup or of execve becomes a reason.
func TestExecReason(t *testing.T) {
	tests := []struct {
		err  error
		want Reason
	}{
		{syscall.ENOENT, ReasonNotFound},
		{fmt.Errorf("/x: %w", syscall.ENOTDIR), ReasonNotFound},
		{syscall.EACCES, ReasonPermissionDenied},
		{syscall.EPERM, ReasonPermissionDenied},
		{syscall.ENOEXEC, ReasonNotExecutable},
		{fmt.Errorf("/x is a directory: %w", syscall.EISDIR), ReasonNotExecutable},
		{syscall.E2BIG, ReasonInternal},
		{syscall.Errno(0), ReasonInternal},
		{errors.New("no errno"), ReasonInternal},
		{nil, ReasonInternal},
	}
	for _, tt := range tests {
		if got := execReason(tt.err); got != tt.want {
			t.Errorf("execReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestReportRoundTrip: what the shim writes to the error pipe is the
// *StartError the server returns, its errno kept for errors.Is.
func TestReportRoundTrip(t *testing.T) {
	tests := []struct {
		in   error
		want StartError
		is   error
	}{
		{&StartError{Reason: ReasonNotFound, Stage: "lookup", Err: fmt.Errorf("/x: %w", syscall.ENOENT)}, StartError{Reason: ReasonNotFound, Stage: "lookup"}, syscall.ENOENT},
		{&StartError{Reason: ReasonBadWorkdir, Stage: "chdir", Err: fmt.Errorf("working directory /x: %w", syscall.ENOENT)}, StartError{Reason: ReasonBadWorkdir, Stage: "chdir"}, syscall.ENOENT},
		{&StartError{Reason: ReasonInternal, Stage: "parse spec", Err: errors.New("empty command")}, StartError{Reason: ReasonInternal, Stage: "parse spec"}, nil},
		{errors.New("not a StartError"), StartError{Reason: ReasonInternal, Stage: "shim"}, nil},
		{&StartError{Stage: "x"}, StartError{Reason: ReasonInternal, Stage: "x"}, nil},
	}
	for _, tt := range tests {
		got := newReport(tt.in).startError()
		if got.Reason != tt.want.Reason || got.Stage != tt.want.Stage {
			t.Errorf("report of %v = %v, want reason %q, stage %q", tt.in, got, tt.want.Reason, tt.want.Stage)
		}
		var se *StartError
		if errors.As(tt.in, &se) && se.Err != nil && got.Err.Error() != se.Err.Error() {
			t.Errorf("report of %v: message %q, want %q", tt.in, got.Err, se.Err)
		}
		if tt.is != nil && !errors.Is(got, tt.is) {
			t.Errorf("report of %v = %v, not errors.Is %v", tt.in, got, tt.is)
		}
	}
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		wantDir string
		ok      bool
	}{
		{`{"command":"/bin/true"}`, "/", true},
		{`{"command":"true","dir":"/tmp","cgroup":"/sys/fs/cgroup/x"}`, "/tmp", true},
		{`{"command":""}`, "", false},
		{`{"command":"/bin/true","cgroup":"x"}`, "", false},
		{`{"command":"/bin/true","dir":"tmp"}`, "", false},
		{`{"command":`, "", false},
		{`{"command":"/bin/true","isolate":true,"pid_namespace":true,"no_network":true}`, "/", true},
		{`{"command":"/bin/true","pid_namespace":true}`, "", false},
		{`{"command":"/bin/true","no_network":true}`, "", false},
	}
	for _, tt := range tests {
		s, err := parseSpec([]byte(tt.in))
		if (err == nil) != tt.ok || tt.ok && s.Dir != tt.wantDir {
			t.Errorf("parseSpec(%s) = dir %q, %v; want ok %v, dir %q", tt.in, s.Dir, err, tt.ok, tt.wantDir)
		}
	}
}
