// Package shim starts a job's process so that no instruction of the job's
// command runs outside the job's cgroup or with the server's privileges.
//
// The server re-executes its own binary as `jobworker init` (Start) with the
// job's Spec on an inherited pipe (fd 3: never argv or the environment,
// which /proc exposes) and an error pipe (fd 4) that the shim marks
// close-on-exec. The shim (Main, its one entry point), on a locked OS
// thread:
//
//  1. writes its own pid into the job's cgroup.procs;
//  2. with Isolate, enters a cgroup namespace rooted at the job's cgroup
//     and sets up its own mounts (isolate.go): host mounts followed as a
//     slave, a /proc showing only the job's own processes, private /tmp and
//     /dev/shm, the job's own cgroup read-only at /sys/fs/cgroup, and
//     loopback up in a network namespace of its own if it has one;
//  3. starts a new session (setsid), leaving the server's process group;
//  4. drops privileges: setgroups, setgid, setuid (Go applies them to
//     every thread of the process);
//  5. changes to the working directory and resolves the command on the
//     job's PATH (LookPath), both as the job's user, so permissions are
//     the user's;
//  6. sets no_new_privs, so no setuid binary can give privileges back;
//  7. marks every descriptor above 2 close-on-exec (close_range(2));
//  8. execve's the command.
//
// On any failure before the exec, a panic included, it writes a *StartError
// (reason, stage, errno) to the error pipe and exits. The server reads the
// pipe to EOF: EOF with no data means the exec succeeded (the close-on-exec
// pipe closed in the exec), anything else is a *StartError. This is runc's
// init pattern (libcontainer/init_linux.go).
package shim

import (
	"fmt"
	"os/user"
	"strconv"
)

// Spec is what the shim needs to start a job's command.
type Spec struct {
	Command string   `json:"command"` // absolute path, or a name looked up on PATH
	Args    []string `json:"args"`    // arguments after the command
	Env     []string `json:"env"`     // the whole environment, KEY=VALUE
	Dir     string   `json:"dir"`     // absolute working directory; empty: /
	Cgroup  string   `json:"cgroup"`  // absolute cgroup directory to join; empty: stay
	// Credential of the job's user; nil runs as the caller (root), which
	// the server does only when told to.
	Credential *Credential `json:"credential,omitempty"`
	// Isolate runs the command in mount, IPC and cgroup namespaces of its
	// own (see isolate.go for what it then sees). It needs CAP_SYS_ADMIN
	// (the server runs as root).
	Isolate bool `json:"isolate,omitempty"`
	// PIDNamespace, with Isolate, also runs the command as PID 1 of a PID
	// namespace of its own. It is for jobs that share one uid with other
	// users' jobs (--run-as), which could otherwise signal each other;
	// jobs with a uid of their own see only their own uid's processes (a
	// /proc mounted hidepid=invisible) and get signals as on the host.
	PIDNamespace bool `json:"pid_namespace,omitempty"`
	// NoNetwork, with Isolate, runs the command in a network namespace of
	// its own with only loopback, up.
	NoNetwork bool `json:"no_network,omitempty"`
}

// Credential is the user a job runs as.
type Credential struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
	Home   string   `json:"home"`
}

// LookupUser resolves a user name (or numeric uid) to the credential a job
// runs with: its uid, primary gid, supplementary groups and home.
func LookupUser(name string) (*Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return nil, &StartError{Reason: ReasonUnknownUser, Stage: "lookup user", Err: fmt.Errorf("user %q: %w", name, err)}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, &StartError{Reason: ReasonUnknownUser, Stage: "lookup user", Err: fmt.Errorf("user %q has a non-numeric uid or gid", name)}
	}
	c := &Credential{UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	gids, err := u.GroupIds()
	if err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				c.Groups = append(c.Groups, uint32(n))
			}
		}
	}
	return c, nil
}
