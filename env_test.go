//go:build !integration

package main

import (
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
)

// unsetJobworkerEnv removes every JOBWORKER_ variable for the test (the
// README's exports may be loaded in the shell that runs it) and restores
// them afterwards.
func unsetJobworkerEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "JOBWORKER_") {
			t.Setenv(k, "") // restores the value when the test ends
			os.Unsetenv(k)
		}
	}
}

// parseCLI parses args with the real parser, as run does.
func parseCLI(t *testing.T, args ...string) (*cli, error) {
	t.Helper()
	var c cli
	p, err := newParser(&c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Parse(args)
	return &c, err
}

// flagEnvs maps "verb flag" (e.g. "certs client user") to the environment
// variables of every flag of the command model, the help flag included.
func flagEnvs(t *testing.T) map[string][]string {
	t.Helper()
	var c cli
	p, err := newParser(&c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		for _, f := range n.Flags {
			out[strings.TrimSpace(path+" "+f.Name)] = f.Envs
		}
		for _, child := range n.Children {
			walk(child, strings.TrimSpace(path+" "+child.Name))
		}
	}
	walk(p.Model.Node, "")
	return out
}

// TestEnvironmentNames: README's "each shared client flag and each serve
// flag has exactly one JOBWORKER_* name, and no name means two things".
// Serve's flags read JOBWORKER_<FLAG> (its certificate flags
// JOBWORKER_SERVER_CERT, JOBWORKER_SERVER_KEY and JOBWORKER_CLIENT_CA, so
// that they never clash with the client's); the client flags every client
// verb shares read JOBWORKER_<FLAG>; no other flag reads any variable, so
// that an exported JOBWORKER_DETACH or JOBWORKER_USER never silently
// changes a verb. Every name is in README's table, and the table has no
// other.
func TestEnvironmentNames(t *testing.T) {
	clientFlags := []string{"server", "ca", "cert", "key", "json"}
	clientVerbs := []string{"run", "stop", "status", "logs", "list", "events", "signal", "pause", "resume", "update"}
	serveSpecial := map[string]string{"cert": "JOBWORKER_SERVER_CERT", "key": "JOBWORKER_SERVER_KEY", "client-ca": "JOBWORKER_CLIENT_CA"}
	meaning := map[string]string{} // variable -> the flag it sets
	for flag, got := range flagEnvs(t) {
		words := strings.Fields(flag)
		name := words[len(words)-1]
		var want []string
		m := flag
		switch {
		case name == "help" || name == "version":
		case len(words) == 2 && words[0] == "serve":
			want = []string{"JOBWORKER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
			if v, ok := serveSpecial[name]; ok {
				want = []string{v}
			}
		case len(words) == 2 && slices.Contains(clientVerbs, words[0]) && slices.Contains(clientFlags, name):
			want = []string{"JOBWORKER_" + strings.ToUpper(name)}
			m = "client " + name // one meaning, whichever verb
		}
		if !slices.Equal(got, want) {
			t.Errorf("environment of %q = %q, want %q", flag, got, want)
		}
		for _, e := range got {
			if prev, ok := meaning[e]; ok && prev != m {
				t.Errorf("%s sets both %q and %q", e, prev, m)
			}
			meaning[e] = m
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]bool{}
	for line := range strings.Lines(string(readme)) {
		if v, ok := strings.CutPrefix(line, "| `JOBWORKER_"); ok {
			name, _, _ := strings.Cut(v, "`")
			inTable["JOBWORKER_"+name] = true
		}
	}
	for e := range meaning {
		if !inTable[e] {
			t.Errorf("%s is not in README's table of variables", e)
		}
	}
	for e := range inTable {
		if _, ok := meaning[e]; !ok {
			t.Errorf("README's table has %s, which no flag reads", e)
		}
	}
}

// TestEnvironmentSetsServeFlags: setting the variable sets the flag's
// value, for the server's certificate variables and others; the server's
// and the client's certificate variables never set each other's flags; a
// flag on the command line wins over its variable.
func TestEnvironmentSetsServeFlags(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		got  func(c *cli) any
		want any
	}{
		{"JOBWORKER_SERVER_CERT", map[string]string{"JOBWORKER_SERVER_CERT": "/pki/server.crt"}, []string{"serve"}, func(c *cli) any { return c.Serve.Cert }, "/pki/server.crt"},
		{"JOBWORKER_SERVER_KEY", map[string]string{"JOBWORKER_SERVER_KEY": "/pki/server.key"}, []string{"serve"}, func(c *cli) any { return c.Serve.Key }, "/pki/server.key"},
		{"JOBWORKER_CLIENT_CA", map[string]string{"JOBWORKER_CLIENT_CA": "/pki/ca.crt"}, []string{"serve"}, func(c *cli) any { return c.Serve.ClientCA }, "/pki/ca.crt"},
		{"the client's JOBWORKER_CERT is not serve's --cert", map[string]string{"JOBWORKER_CERT": "/me/alice.crt"}, []string{"serve"}, func(c *cli) any { return c.Serve.Cert }, ""},
		{"the client's JOBWORKER_KEY is not serve's --key", map[string]string{"JOBWORKER_KEY": "/me/alice.key"}, []string{"serve"}, func(c *cli) any { return c.Serve.Key }, ""},
		{"the client's JOBWORKER_CA is not serve's --client-ca", map[string]string{"JOBWORKER_CA": "/me/ca.crt"}, []string{"serve"}, func(c *cli) any { return c.Serve.ClientCA }, ""},
		{"JOBWORKER_SERVER_CERT is not a client's --cert", map[string]string{"JOBWORKER_SERVER_CERT": "/pki/server.crt"}, []string{"list"}, func(c *cli) any { return c.List.Cert }, ""},
		{"JOBWORKER_SERVER_KEY is not a client's --key", map[string]string{"JOBWORKER_SERVER_KEY": "/pki/server.key"}, []string{"stop", "id"}, func(c *cli) any { return c.Stop.Key }, ""},
		{"both sets at once, serve", map[string]string{"JOBWORKER_SERVER_CERT": "/pki/server.crt", "JOBWORKER_CERT": "/me/alice.crt"}, []string{"serve"}, func(c *cli) any { return c.Serve.Cert }, "/pki/server.crt"},
		{"both sets at once, run", map[string]string{"JOBWORKER_SERVER_CERT": "/pki/server.crt", "JOBWORKER_CERT": "/me/alice.crt"}, []string{"run", "--", "true"}, func(c *cli) any { return c.Run.Cert }, "/me/alice.crt"},
		{"--cert beats JOBWORKER_SERVER_CERT", map[string]string{"JOBWORKER_SERVER_CERT": "/pki/server.crt"}, []string{"serve", "--cert", "/flag.crt"}, func(c *cli) any { return c.Serve.Cert }, "/flag.crt"},
		{"no variable", nil, []string{"serve"}, func(c *cli) any { return c.Serve.Cert }, ""},

		{"JOBWORKER_LISTEN", map[string]string{"JOBWORKER_LISTEN": "0.0.0.0:1"}, []string{"serve"}, func(c *cli) any { return c.Serve.Listen }, "0.0.0.0:1"},
		{"JOBWORKER_STATE_DIR", map[string]string{"JOBWORKER_STATE_DIR": "/srv/jobworker"}, []string{"serve"}, func(c *cli) any { return c.Serve.StateDir }, "/srv/jobworker"},
		{"JOBWORKER_DEV", map[string]string{"JOBWORKER_DEV": "true"}, []string{"serve"}, func(c *cli) any { return c.Serve.Dev }, true},
		{"JOBWORKER_RUN_AS", map[string]string{"JOBWORKER_RUN_AS": "daemon"}, []string{"serve"}, func(c *cli) any { return c.Serve.RunAs }, "daemon"},
		{"JOBWORKER_CGROUP_PARENT", map[string]string{"JOBWORKER_CGROUP_PARENT": "/jobs"}, []string{"serve"}, func(c *cli) any { return c.Serve.CgroupParent }, "/jobs"},
		{"JOBWORKER_DEFAULT_MEMORY_LIMIT", map[string]string{"JOBWORKER_DEFAULT_MEMORY_LIMIT": "64M"}, []string{"serve"}, func(c *cli) any { return c.Serve.DefaultMemoryLimit }, byteSize(64 << 20)},
		{"JOBWORKER_MEMORY_HIGH", map[string]string{"JOBWORKER_MEMORY_HIGH": "0.5"}, []string{"serve"}, func(c *cli) any { return c.Serve.MemoryHigh }, 0.5},
		{"JOBWORKER_STOP_GRACE", map[string]string{"JOBWORKER_STOP_GRACE": "3s"}, []string{"serve"}, func(c *cli) any { return c.Serve.StopGrace }, 3 * time.Second},
		{"JOBWORKER_RETAIN_COUNT", map[string]string{"JOBWORKER_RETAIN_COUNT": "7"}, []string{"serve"}, func(c *cli) any { return c.Serve.RetainCount }, 7},
		{"JOBWORKER_SERVER, a client flag", map[string]string{"JOBWORKER_SERVER": "worker1:50051"}, []string{"logs", "id"}, func(c *cli) any { return c.Logs.Server }, "worker1:50051"},
		{"JOBWORKER_SERVER, a client flag, for run", map[string]string{"JOBWORKER_SERVER": "worker1:50051"}, []string{"run", "--", "true"}, func(c *cli) any { return c.Run.Server }, "worker1:50051"},
		{"JOBWORKER_WORKDIR does not change run", map[string]string{"JOBWORKER_WORKDIR": "/srv"}, []string{"run", "--", "true"}, func(c *cli) any { return c.Run.Workdir }, ""},
		{"JOBWORKER_DETACH does not detach run", map[string]string{"JOBWORKER_DETACH": "true"}, []string{"run", "--", "true"}, func(c *cli) any { return c.Run.Detach }, false},
		{"JOBWORKER_FOLLOW does not make logs follow", map[string]string{"JOBWORKER_FOLLOW": "true"}, []string{"logs", "id"}, func(c *cli) any { return c.Logs.Follow }, false},
		{"JOBWORKER_USER is neither list's nor certs'", map[string]string{"JOBWORKER_USER": "mallory"}, []string{"list"}, func(c *cli) any { return len(c.List.User) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unsetJobworkerEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := parseCLI(t, tt.args...)
			if err != nil {
				t.Fatalf("parse %q with %v: %v", tt.args, tt.env, err)
			}
			if got := tt.got(c); got != tt.want {
				t.Errorf("parse %q with %v: got %#v, want %#v", tt.args, tt.env, got, tt.want)
			}
		})
	}
}
