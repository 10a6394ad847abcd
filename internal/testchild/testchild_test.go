//go:build !integration

package testchild

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	Dispatch(map[string]func(){
		"hello":  func() { fmt.Print("hello from the child") },
		"exit-7": func() { os.Exit(7) },
	})
	os.Exit(m.Run())
}

// TestDispatch: the test binary started by Command runs the mode it is
// given instead of the tests, exits 0 when the mode returns or with the
// mode's own code, and 3 for a mode it does not know.
func TestDispatch(t *testing.T) {
	tests := []struct {
		mode     string
		wantCode int
		wantOut  string
	}{
		{"hello", 0, "hello from the child"},
		{"exit-7", 7, ""},
		{"no-such-mode", 3, ""},
	}
	for _, tt := range tests {
		cmd := Command(tt.mode)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("mode %s: %v", tt.mode, err)
		}
		if code != tt.wantCode || string(out) != tt.wantOut {
			t.Errorf("mode %s: exit %d, stdout %q; want exit %d, stdout %q (stderr %q)", tt.mode, code, out, tt.wantCode, tt.wantOut, stderr.String())
		}
		if tt.wantCode == 3 && !strings.Contains(stderr.String(), "no such child mode") {
			t.Errorf("mode %s: stderr %q, want it to say there is no such mode", tt.mode, stderr.String())
		}
	}
}

func TestHasLine(t *testing.T) {
	events := "populated 1\nfrozen 0\n"
	tests := []struct {
		s, line string
		want    bool
	}{
		{events, "populated 1", true},
		{events, "frozen 0", true},
		{events, "populated 0", false},
		{events, "populated", false},
		{"populated 0", "populated 0", true}, // no trailing newline
		{"", "populated 0", false},
	}
	for _, tt := range tests {
		if got := hasLine(tt.s, tt.line); got != tt.want {
			t.Errorf("hasLine(%q, %q) = %v, want %v", tt.s, tt.line, got, tt.want)
		}
	}
}

func TestSoleCgroup2(t *testing.T) {
	tests := []struct {
		procCgroup string
		want       string // "" for an error
	}{
		{"0::/user.slice/session-1.scope\n", "/user.slice/session-1.scope"},
		{"0::/\n", "/"},
		{"0::/a b\n", "/a b"},
		// A hybrid host: v1 hierarchies beside the v2 one.
		{"1:cpu:/\n0::/\n", ""},
		{"0::/\n1:cpu:/\n", ""},
		{"1:name=systemd:/\n", ""},
		{"0::relative\n", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := soleCgroup2(tt.procCgroup)
		if tt.want == "" {
			if err == nil {
				t.Errorf("soleCgroup2(%q) = %q, want an error", tt.procCgroup, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("soleCgroup2(%q) = %q, %v; want %q", tt.procCgroup, got, err, tt.want)
		}
	}
}

func TestMissingControllers(t *testing.T) {
	tests := []struct {
		subtreeControl string
		want           []string
		missing        []string
	}{
		{"cpu io memory pids\n", []string{"memory"}, nil},
		{"cpu io memory pids\n", []string{"pids", "cpu"}, nil},
		{"cpu io memory pids\n", nil, nil},
		{"\n", nil, nil},
		{"\n", []string{"memory"}, []string{"memory"}},
		{"cpu pids\n", []string{"memory", "cpu", "io"}, []string{"memory", "io"}},
		// A whole name, not a part of one.
		{"hugetlb\n", []string{"huge"}, []string{"huge"}},
	}
	for _, tt := range tests {
		if got := missingControllers(tt.subtreeControl, tt.want); !slices.Equal(got, tt.missing) {
			t.Errorf("missingControllers(%q, %q) = %q, want %q", tt.subtreeControl, tt.want, got, tt.missing)
		}
	}
}

// TestRequireCgroup2Refuses: the check refuses a process that is not root,
// and a mount point that is not cgroup2, before it looks any further.
func TestRequireCgroup2Refuses(t *testing.T) {
	if err := requireCgroup2(1000, "/sys/fs/cgroup", nil); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("as uid 1000: %v, want an error saying the tests run as root", err)
	}
	dir := t.TempDir()
	if err := requireCgroup2(0, dir, nil); err == nil || !strings.Contains(err.Error(), "is not cgroup2") {
		t.Errorf("with %s as the mount: %v, want an error saying it is not cgroup2", dir, err)
	}
	if err := requireCgroup2(0, filepath.Join(dir, "missing"), nil); err == nil || !strings.Contains(err.Error(), "is not cgroup2") {
		t.Errorf("with a missing mount point: %v, want an error saying it is not cgroup2", err)
	}
}
