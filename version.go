package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// versionCmd is `jobworker version`.
type versionCmd struct{}

// Run prints the version, the VCS revision when known, and the Go version.
func (c *versionCmd) Run(e *env) error {
	_, err := fmt.Fprintf(e.stdout, "jobworker %s\n", versionString())
	return err
}

// versionString is the version with the VCS revision, if the build has one.
func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			v += " (" + rev + dirty + ")"
		}
	}
	return v + " " + runtime.Version()
}
