//go:build integration

package cgroupfs

import "context"

// What the integration tests need of the package's insides. They are in
// package cgroupfs_test because they use internal/testchild, which imports
// this package.
var (
	ReadFile       = readFile
	WriteFile      = writeFile
	ReadOpen       = readOpen
	ParseFlatKeyed = parseFlatKeyed
)

// KillFrozen is the kill of kernels without cgroup.kill.
func (g *Group) KillFrozen(ctx context.Context) error { return g.killFrozen(ctx) }
