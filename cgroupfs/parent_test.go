//go:build !integration

package cgroupfs

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestParentCgroup: the README's "by default the cgroup it was started in
// (or <root>/jobworker when that is the root cgroup)". Only the root cgroup
// gives /jobworker and asks Setup to enable the controllers in the root; a
// server restarted inside its supervisor cgroup takes the parent it had; an
// explicit --cgroup-parent, relative or under the mount, wins and never
// leads out of the mount.
func TestParentCgroup(t *testing.T) {
	const mount = "/sys/fs/cgroup"
	tests := []struct {
		name         string
		mount        string
		asked, own   string
		want         string
		wantFromRoot bool
	}{
		{"started in the root cgroup", mount, "", "/", "/jobworker", true},
		{"started in the root cgroup of a hybrid host", "/sys/fs/cgroup/unified", "", "/", "/jobworker", true},
		{"started in a service cgroup", mount, "", "/system.slice/jobworker.service", "/system.slice/jobworker.service", false},
		{"started one level below the root", mount, "", "/jobs", "/jobs", false},
		{"restarted in the supervisor of /jobworker", mount, "", "/jobworker/supervisor", "/jobworker", false},
		{"restarted in the supervisor of a service", mount, "", "/system.slice/jobworker.service/supervisor", "/system.slice/jobworker.service", false},
		{"a supervisor cgroup right under the root", mount, "", "/supervisor", "/jobworker", true},
		{"asked, absolute relative to the mount, from the root", mount, "/jobs", "/", "/jobs", false},
		{"asked, relative", mount, "jobs/a", "/x", "/jobs/a", false},
		{"asked, a path under the mount", mount, "/sys/fs/cgroup/jobs", "/x", "/jobs", false},
		{"asked, a path that only starts like the mount", mount, "/sys/fs/cgroupx/jobs", "/x", "/sys/fs/cgroupx/jobs", false},
		{"asked, with .. that would leave the mount", mount, "../../etc", "/x", "/etc", false},
	}
	for _, tt := range tests {
		got, fromRoot := parentCgroup(tt.mount, tt.asked, tt.own)
		if got != tt.want || fromRoot != tt.wantFromRoot {
			t.Errorf("%s: parentCgroup(%q, %q, %q) = %q, %v; want %q, %v", tt.name, tt.mount, tt.asked, tt.own, got, fromRoot, tt.want, tt.wantFromRoot)
		}
		if dir := filepath.Join(tt.mount, got); !strings.HasPrefix(dir, tt.mount+"/") {
			t.Errorf("%s: parentCgroup(%q, %q, %q) = %q, which is %s, not below the mount", tt.name, tt.mount, tt.asked, tt.own, got, dir)
		}
	}
}
