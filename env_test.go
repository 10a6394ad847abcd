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

// TestEveryFlagFromTheEnvironment: README's "Every flag can also be set
// from the environment as JOBWORKER_<FLAG> ...; the server's own
// certificate flags read JOBWORKER_SERVER_CERT, JOBWORKER_SERVER_KEY and
// JOBWORKER_CLIENT_CA". First every flag of the CLI synopsis (serve's, each
// client verb's with the shared client flags, certs') by its documented
// name; then every flag of the model, so that a flag added later without
// its variable fails too. --help is the one flag without a variable.
func TestEveryFlagFromTheEnvironment(t *testing.T) {
	documented := map[string]string{
		"serve listen": "JOBWORKER_LISTEN", "serve state-dir": "JOBWORKER_STATE_DIR", "serve dev": "JOBWORKER_DEV",
		"serve cert": "JOBWORKER_SERVER_CERT", "serve key": "JOBWORKER_SERVER_KEY", "serve client-ca": "JOBWORKER_CLIENT_CA",
		"serve run-as": "JOBWORKER_RUN_AS", "serve uid-range": "JOBWORKER_UID_RANGE", "serve default-network": "JOBWORKER_DEFAULT_NETWORK", "serve cgroup-parent": "JOBWORKER_CGROUP_PARENT",
		"serve default-memory-limit": "JOBWORKER_DEFAULT_MEMORY_LIMIT", "serve default-pids-limit": "JOBWORKER_DEFAULT_PIDS_LIMIT",
		"serve memory-high": "JOBWORKER_MEMORY_HIGH", "serve memory-capacity": "JOBWORKER_MEMORY_CAPACITY",
		"serve max-running": "JOBWORKER_MAX_RUNNING", "serve stop-grace": "JOBWORKER_STOP_GRACE",
		"serve ring-size": "JOBWORKER_RING_SIZE", "serve output-cap": "JOBWORKER_OUTPUT_CAP",
		"serve retain": "JOBWORKER_RETAIN", "serve retain-count": "JOBWORKER_RETAIN_COUNT",
		"serve debug-socket": "JOBWORKER_DEBUG_SOCKET",

		"run cpu-weight": "JOBWORKER_CPU_WEIGHT", "run cpus": "JOBWORKER_CPUS", "run memory-limit": "JOBWORKER_MEMORY_LIMIT",
		"run io-weight": "JOBWORKER_IO_WEIGHT", "run io-read-bps": "JOBWORKER_IO_READ_BPS", "run io-write-bps": "JOBWORKER_IO_WRITE_BPS",
		"run io-read-iops": "JOBWORKER_IO_READ_IOPS", "run io-write-iops": "JOBWORKER_IO_WRITE_IOPS",
		"run pids-limit": "JOBWORKER_PIDS_LIMIT", "run timeout": "JOBWORKER_TIMEOUT", "run env": "JOBWORKER_ENV",
		"run workdir": "JOBWORKER_WORKDIR", "run detach": "JOBWORKER_DETACH",
		"stop grace":   "JOBWORKER_GRACE",
		"status watch": "JOBWORKER_WATCH",
		"logs follow":  "JOBWORKER_FOLLOW", "logs offset": "JOBWORKER_OFFSET", "logs tail": "JOBWORKER_TAIL",
		"list state": "JOBWORKER_STATE", "list user": "JOBWORKER_USER",

		"certs ca out":        "JOBWORKER_OUT",
		"certs server ca-dir": "JOBWORKER_CA_DIR", "certs server out": "JOBWORKER_OUT", "certs server name": "JOBWORKER_NAME", "certs server ip": "JOBWORKER_IP",
		"certs client ca-dir": "JOBWORKER_CA_DIR", "certs client out": "JOBWORKER_OUT", "certs client user": "JOBWORKER_USER",
		"certs client role": "JOBWORKER_ROLE", "certs client valid": "JOBWORKER_VALID",
	}
	clientFlagEnvs := map[string]string{"server": "JOBWORKER_SERVER", "ca": "JOBWORKER_CA", "cert": "JOBWORKER_CERT", "key": "JOBWORKER_KEY", "json": "JOBWORKER_JSON"}
	for _, verb := range []string{"run", "stop", "status", "logs", "list"} {
		for f, env := range clientFlagEnvs {
			documented[verb+" "+f] = env
		}
	}

	model := flagEnvs(t)
	for flag, want := range documented {
		got, ok := model[flag]
		if !ok {
			t.Errorf("README's flag %q is not in the command model", flag)
			continue
		}
		if !slices.Equal(got, []string{want}) {
			t.Errorf("environment of %q = %q, want [%s]", flag, got, want)
		}
	}
	// The rule for every flag: its name upper-cased with - as _, after
	// JOBWORKER_; the server's certificate flags as above.
	for flag, got := range model {
		words := strings.Fields(flag)
		name := words[len(words)-1]
		want := []string{"JOBWORKER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
		switch {
		case name == "help":
			want = nil
		case documented[flag] != "":
			want = []string{documented[flag]}
		}
		if !slices.Equal(got, want) {
			t.Errorf("environment of %q = %q, want %q", flag, got, want)
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
		{"JOBWORKER_WORKDIR, a run flag", map[string]string{"JOBWORKER_WORKDIR": "/srv"}, []string{"run", "--", "true"}, func(c *cli) any { return c.Run.Workdir }, "/srv"},
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
