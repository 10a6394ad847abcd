//go:build !integration

package main

import (
	"strings"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// TestWithFlagNames: the server's limit errors name the run flag to change;
// other answers pass unchanged.
func TestWithFlagNames(t *testing.T) {
	tests := []struct {
		code codes.Code
		msg  string
		want string
	}{
		{codes.InvalidArgument, "memory_max_bytes 10240 is below the minimum of 1048576 (1 MiB)", "--memory-limit 10240 is below the minimum of 1048576 (1 MiB)"},
		{codes.InvalidArgument, "cpu_weight 0 is out of range 1-10000", "--cpu-weight 0 is out of range 1-10000"},
		{codes.InvalidArgument, "cpus -1 is out of range 0.01-4096", "--cpus -1 is out of range 0.01-4096"},
		{codes.InvalidArgument, "io_weight 0 is out of range 1-10000", "--io-weight 0 is out of range 1-10000"},
		{codes.InvalidArgument, "pids_max 0: a job needs at least one process", "--pids-limit 0: a job needs at least one process"},
		{codes.InvalidArgument, "cpusets are not limits", "cpusets are not limits"},
		{codes.InvalidArgument, "invalid job request: empty command", "invalid job request: empty command"},
		{codes.PermissionDenied, "cpu_weight 5 is not yours", "cpu_weight 5 is not yours"},
	}
	for _, tt := range tests {
		got := status.Convert(withFlagNames(status.Error(tt.code, tt.msg)))
		if got.Code() != tt.code || got.Message() != tt.want {
			t.Errorf("withFlagNames(%v %q) = %v %q, want %q", tt.code, tt.msg, got.Code(), got.Message(), tt.want)
		}
	}
}
