package main

import "github.com/jobworker/jobworker/shim"

// initCmd is the hidden `jobworker init`: the name under which the server
// starts the job shim, which main hands to shim.Main before the command
// line is parsed. A parse that reaches it was run by hand.
type initCmd struct{}

// Run refuses: the shim is not for direct use.
func (c *initCmd) Run(e *env) error { return shim.ErrNotShim }
