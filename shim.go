package main

import "github.com/jobworker/jobworker/shim"

// initCmd is the hidden `jobworker init`: the shim the server starts for
// each job (see package shim). It never returns when started by the server.
type initCmd struct{}

// Run runs the shim.
func (c *initCmd) Run(e *env) error { return shim.Main() }
