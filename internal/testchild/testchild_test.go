//go:build !integration

package testchild

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
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
