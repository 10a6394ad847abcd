package shim

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// cloneFlags are the namespaces the shim is started in for spec. The
// cgroup namespace is not among them: the shim enters it itself once it is
// in the job's cgroup (isolate), so that its root is the job's cgroup and
// not the server's.
func cloneFlags(spec Spec) uintptr {
	flags := uintptr(syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC)
	if spec.PIDNamespace {
		flags |= syscall.CLONE_NEWPID
	}
	if spec.NoNetwork {
		flags |= syscall.CLONE_NEWNET
	}
	return flags
}

// mount is one mount(2) of an isolated job's namespace.
type mount struct {
	target, fstype string
	flags          uintptr
	data           string
	// replace detaches what is mounted at target first (in the job's
	// namespace only: it is a slave). The host's cgroup2 mount is there,
	// and the kernel refuses to mount a superblock over the root of a
	// mount of the same one (EBUSY).
	replace bool
}

// isolatedMounts are the mounts an isolated job gets in its own mount
// namespace, made in this order after the whole tree has become a slave of
// the host's (so that the host's mounts and unmounts keep reaching the job,
// and nothing mounted in the job's namespace reaches the host). Each goes
// over a directory the host has; one the host lacks (a host without
// /dev/shm) is left out rather than created in the host's filesystem.
func isolatedMounts(s Spec) []mount {
	const hidden = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	// A /proc of the job's own PID namespace shows only its processes. In
	// the host's PID namespace, hidepid=invisible shows the job only the
	// processes of its own uid (proc(5); per mount since Linux 5.8, and an
	// older kernel refuses the option rather than applying it to the
	// host's /proc).
	proc := mount{target: "/proc", fstype: "proc", flags: hidden, data: "hidepid=invisible"}
	if s.PIDNamespace {
		proc.data = ""
	}
	return []mount{
		proc,
		// Private /tmp and /dev/shm: tmpfs, whose pages are charged to the
		// memory cgroup of the job that writes them, gone with the job's
		// mount namespace.
		{target: "/tmp", fstype: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=1777"},
		{target: "/dev/shm", fstype: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=1777"},
		// The root of the job's cgroup namespace, its own cgroup, read-only.
		{target: "/sys/fs/cgroup", fstype: "cgroup2", flags: unix.MS_RDONLY | hidden, replace: true},
	}
}

// isolate sets up an isolated job's namespaces from inside them: the shim
// is in the job's cgroup and still root. It enters a cgroup namespace (so
// that the job's cgroup is its root, and /proc/self/cgroup reads 0::/),
// makes the mounts above, and brings loopback up in a network namespace of
// its own.
func isolate(s Spec) error {
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("enter a cgroup namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make mounts slaves of the host's: %w", err)
	}
	for _, m := range isolatedMounts(s) {
		if fi, err := os.Stat(m.target); err != nil || !fi.IsDir() {
			continue
		}
		if m.replace {
			if err := unix.Unmount(m.target, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
				return fmt.Errorf("unmount %s: %w", m.target, err)
			}
		}
		// A read-only mount is made read-write, then bind-remounted
		// read-only: the superblock (cgroup2's is shared) stays as it is
		// elsewhere, and only this mount is read-only; asking for a
		// read-only superblock where it is read-write is EBUSY.
		if err := unix.Mount(m.fstype, m.target, m.fstype, m.flags&^unix.MS_RDONLY, m.data); err != nil {
			return fmt.Errorf("mount %s on %s (%s): %w", m.fstype, m.target, m.data, err)
		}
		if m.flags&unix.MS_RDONLY != 0 {
			if err := unix.Mount("", m.target, "", unix.MS_REMOUNT|unix.MS_BIND|m.flags, ""); err != nil {
				return fmt.Errorf("make %s read-only: %w", m.target, err)
			}
		}
	}
	if s.NoNetwork {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bring loopback up: %w", err)
		}
	}
	return nil
}

// loopbackUp sets IFF_UP on lo, the one interface of a new network
// namespace (netdevice(7)).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return err
	}
	return nil
}
