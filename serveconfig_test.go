//go:build !integration

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeConfigPrecedence: serve --config FILE sets serve's flags, with
// the precedence flag > JOBWORKER_* variable > file > default, each key in
// any of the spellings of its flag's name.
func TestServeConfigPrecedence(t *testing.T) {
	unsetJobworkerEnv(t)
	file := filepath.Join(t.TempDir(), "serve.json")
	conf := `{"state-dir": "/srv/file", "listen": "10.0.0.1:1", "max_running": 7, "stopGrace": "3s", "default-network": "none", "run-as": "daemon"}`
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOBWORKER_LISTEN", "10.0.0.2:2")
	t.Setenv("JOBWORKER_MAX_RUNNING", "8")
	c, err := parseCLI(t, "serve", "--config", file, "--max-running", "9")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Serve
	for _, tt := range []struct {
		what      string
		got, want any
	}{
		{"state-dir (file only)", s.StateDir, "/srv/file"},
		{"listen (file and variable)", s.Listen, "10.0.0.2:2"},
		{"max-running (file, variable and flag)", s.MaxRunning, 9},
		{"stop-grace (camelCase key)", s.StopGrace, 3 * time.Second},
		{"default-network (enum)", s.DefaultNetwork, "none"},
		{"run-as", s.RunAs, "daemon"},
		{"retain (default)", s.Retain, 168 * time.Hour},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.what, tt.got, tt.want)
		}
	}
}

// TestServeConfigRefused: a key that names no flag of serve, a file that is
// not a JSON object and a missing file are errors that say so.
func TestServeConfigRefused(t *testing.T) {
	unsetJobworkerEnv(t)
	dir := t.TempDir()
	for _, tt := range []struct{ content, want string }{
		{`{"state-dir": "/x", "statedir": "/y"}`, `unknown key "statedir"`},
		{`{"follow": true}`, `unknown key "follow"`},
		{`["state-dir"]`, "not a JSON object"},
	} {
		file := filepath.Join(dir, "c.json")
		if err := os.WriteFile(file, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := parseCLI(t, "serve", "--config", file); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("config %s: %v, want %q", tt.content, err, tt.want)
		}
	}
	if _, err := parseCLI(t, "serve", "--config", filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing config file: %v, want it named", err)
	}
}
