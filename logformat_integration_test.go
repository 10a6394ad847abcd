//go:build integration

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestServeLogFormatJSON: with --log-format json every line the server
// logs is a JSON object of slog's JSON handler (time, level, msg), and each
// RPC has its one audit line with the caller, its role, the method and the
// outcome: a StartJob allowed and one refused.
func TestServeLogFormatJSON(t *testing.T) {
	s := startDevServer(t, t.TempDir(), "--log-format", "json")
	if r := s.cli("user", "run", "-d", "--", "true"); r.code != 0 {
		t.Fatalf("run as a user: exit %d, stderr %q", r.code, r.err)
	}
	if r := s.cli("reader", "run", "-d", "--", "true"); r.code == 0 {
		t.Fatal("a reader started a job")
	}
	type line struct {
		Time    time.Time `json:"time"`
		Level   string    `json:"level"`
		Msg     string    `json:"msg"`
		User    string    `json:"user"`
		Role    string    `json:"role"`
		Method  string    `json:"method"`
		Outcome string    `json:"outcome"`
	}
	var starts []line
	n := 0
	for _, l := range strings.Split(strings.TrimSuffix(s.serverLog(), "\n"), "\n") {
		if strings.HasPrefix(l, "# ") {
			continue // --dev's note to whoever started it, not a log line
		}
		var v line
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Time.IsZero() || v.Level == "" || v.Msg == "" {
			t.Errorf("log line %q: %v; want a JSON object with time, level and msg", l, err)
			continue
		}
		n++
		if strings.HasSuffix(v.Method, "/StartJob") {
			starts = append(starts, v)
		}
	}
	if n < 2 {
		t.Errorf("%d JSON log lines; want the start-up's and the RPCs'", n)
	}
	want := []line{
		{Level: "INFO", Msg: "rpc allowed", User: "dev-user", Role: "user", Outcome: "allowed"},
		{Level: "WARN", Msg: "rpc denied", User: "reader", Role: "reader", Outcome: "permission_denied"},
	}
	if len(starts) != len(want) {
		t.Fatalf("StartJob audit lines %+v; want one per RPC, %d", starts, len(want))
	}
	for i, w := range want {
		g := starts[i]
		if g.Level != w.Level || g.Msg != w.Msg || g.User != w.User || g.Role != w.Role || g.Outcome != w.Outcome {
			t.Errorf("StartJob audit line %d: %+v; want %+v", i, g, w)
		}
	}
}
