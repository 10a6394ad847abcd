package cgroupfs

import (
	"context"
	"fmt"
)

// Freeze freezes every process in the group and below it (cgroup.freeze)
// and returns once the kernel reports the group frozen ("frozen 1" in
// cgroup.events): until then a process may still run, between the write
// and the moment it reaches the freezer (cgroup-v2.rst, "cgroup.freeze").
// A frozen process is not killed by it: it still takes SIGKILL, and
// cgroup.kill, and resumes where it was when thawed.
func (g *Group) Freeze(ctx context.Context) error {
	if err := writeFile(g.dir, "cgroup.freeze", "1"); err != nil {
		return fmt.Errorf("freeze job cgroup: %w", err)
	}
	if err := g.waitEvent(ctx, "frozen", "1"); err != nil {
		return fmt.Errorf("freeze job cgroup: %w", err)
	}
	return nil
}

// Thaw undoes Freeze and returns once the kernel reports the group no
// longer frozen ("frozen 0").
func (g *Group) Thaw(ctx context.Context) error {
	if err := writeFile(g.dir, "cgroup.freeze", "0"); err != nil {
		return fmt.Errorf("thaw job cgroup: %w", err)
	}
	if err := g.waitEvent(ctx, "frozen", "0"); err != nil {
		return fmt.Errorf("thaw job cgroup: %w", err)
	}
	return nil
}
