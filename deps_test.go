//go:build !integration

package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// startupHeavy are packages whose initialisation every start of the binary
// would pay, the job shim's and every CLI command's included, for a
// feature that can do without them (BENCHMARKS.md, "Start-up of the shim
// and the CLI"): protodesc and descriptorpb, which grpc-go's reflection
// package needs and service's own reflection does not.
var startupHeavy = []string{
	"google.golang.org/protobuf/reflect/protodesc",
	"google.golang.org/protobuf/types/descriptorpb",
	"google.golang.org/grpc/reflection",
}

// TestNoDescriptorPackages: the binary links none of startupHeavy.
func TestNoDescriptorPackages(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the binary's packages")
	}
	cmd := exec.Command(gobin, "list", "-deps", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, p := range startupHeavy {
		if slices.Contains(deps, p) {
			t.Errorf("the binary links %s", p)
		}
	}
}
