package main

// initCmd is the hidden `jobworker init`: the shim the server starts for each
// job, which joins the job's cgroup, drops privileges and execs the command.
type initCmd struct{}

// Run runs the shim.
func (c *initCmd) Run(e *env) error { return errNotImplemented }
