package shim

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloneFlags: an isolated shim starts in mount and IPC namespaces of
// its own, a PID and a network one only when asked, and never a cgroup one
// (it enters that itself, once in the job's cgroup).
func TestCloneFlags(t *testing.T) {
	base := uintptr(syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC)
	tests := []struct {
		spec Spec
		want uintptr
	}{
		{Spec{Isolate: true}, base},
		{Spec{Isolate: true, PIDNamespace: true}, base | syscall.CLONE_NEWPID},
		{Spec{Isolate: true, NoNetwork: true}, base | syscall.CLONE_NEWNET},
		{Spec{Isolate: true, PIDNamespace: true, NoNetwork: true}, base | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET},
	}
	for _, tt := range tests {
		if got := cloneFlags(tt.spec); got != tt.want || got&unix.CLONE_NEWCGROUP != 0 {
			t.Errorf("cloneFlags(%+v) = %#x, want %#x", tt.spec, got, tt.want)
		}
	}
}

// TestIsolatedMounts: what an isolated job's namespace mounts, in order:
// /proc (hidepid=invisible unless the job has a PID namespace of its own),
// private /tmp and /dev/shm, and the cgroup read-only in place of the
// host's.
func TestIsolatedMounts(t *testing.T) {
	for _, pidNS := range []bool{false, true} {
		ms := isolatedMounts(Spec{Isolate: true, PIDNamespace: pidNS})
		var targets []string
		for _, m := range ms {
			targets = append(targets, m.target)
		}
		if len(ms) != 4 || targets[0] != "/proc" || targets[1] != "/tmp" || targets[2] != "/dev/shm" || targets[3] != "/sys/fs/cgroup" {
			t.Fatalf("PID namespace %v: mounts on %v", pidNS, targets)
		}
		wantProc := "hidepid=invisible"
		if pidNS {
			wantProc = ""
		}
		if ms[0].fstype != "proc" || ms[0].data != wantProc {
			t.Errorf("PID namespace %v: /proc is %s with %q, want proc with %q", pidNS, ms[0].fstype, ms[0].data, wantProc)
		}
		for _, m := range ms[1:3] {
			if m.fstype != "tmpfs" || m.data != "mode=1777" || m.flags&(unix.MS_NOSUID|unix.MS_NODEV) != unix.MS_NOSUID|unix.MS_NODEV {
				t.Errorf("%s: %s %q flags %#x, want tmpfs mode=1777 nosuid nodev", m.target, m.fstype, m.data, m.flags)
			}
		}
		if c := ms[3]; c.fstype != "cgroup2" || c.flags&unix.MS_RDONLY == 0 || !c.replace {
			t.Errorf("/sys/fs/cgroup: %s flags %#x replace %v, want cgroup2, read-only, in place of the host's", c.fstype, c.flags, c.replace)
		}
	}
}
