//go:build !integration

package main

import (
	"strings"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// TestServerStatusControllers: the server's controllers are listed, and a
// server without any says so rather than printing an empty field.
func TestServerStatusControllers(t *testing.T) {
	tests := []struct {
		controllers []string
		want        string
	}{
		{[]string{"cpu", "io", "memory", "pids"}, "Controllers cpu io memory pids\n"},
		{[]string{"pids"}, "Controllers pids\n"},
		{nil, "Controllers none (jobs get their cgroups, without limits)\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		printServerStatus(&b, &jobworkerv1.GetServerStatusResponse{CgroupControllers: tt.controllers})
		if !strings.HasSuffix(b.String(), tt.want) {
			t.Errorf("status with controllers %q:\n%s\nwant it to end %q", tt.controllers, b.String(), tt.want)
		}
	}
}
