package testchild

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ScratchEnv names the block device a test may overwrite. hack/vmtest sets
// it in the test VM to the throwaway disk it attaches, and hack/test to a
// loop device of its own on a native cgroup v2 host. Nothing else sets it.
const ScratchEnv = "JOBWORKER_TEST_SCRATCH_DEVICE"

// ScratchMarker opens the first sector of a scratch device: whoever made the
// device wrote it there, so that a test never writes to a disk that merely
// has the expected name (on many cloud machines /dev/vda is the root disk).
const ScratchMarker = "jobworker test scratch device: may be overwritten\n"

// ScratchOffset is where a test's writes begin; the marker below it stays.
const ScratchOffset = 1 << 20

// ScratchDevice returns the scratch device named by ScratchEnv once
// CheckScratch accepts it.
func ScratchDevice() (string, error) {
	path := os.Getenv(ScratchEnv)
	if path == "" {
		return "", fmt.Errorf("%s is not set: only hack/vmtest (in the test VM) and hack/test (a loop device) provide a block device a test may overwrite", ScratchEnv)
	}
	if err := CheckScratch(path, 3<<20); err != nil {
		return "", err
	}
	return path, nil
}

// CheckScratch refuses path unless it is a block device that carries
// ScratchMarker in its first sector, is not mounted, and holds at least
// need bytes past ScratchOffset.
func CheckScratch(path string, need int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("scratch device: %w", err)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return fmt.Errorf("scratch device %s is not a block device", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("scratch device: %w", err)
	}
	defer f.Close()
	head := make([]byte, len(ScratchMarker))
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Errorf("scratch device %s: read its first sector: %w", path, err)
	}
	if !bytes.Equal(head, []byte(ScratchMarker)) {
		return fmt.Errorf("scratch device %s does not carry the scratch marker: refusing to write to it", path)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("scratch device %s: %w", path, err)
	}
	if size < ScratchOffset+need {
		return fmt.Errorf("scratch device %s holds %d bytes, want at least %d", path, size, ScratchOffset+need)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("scratch device: %w", err)
	}
	mounted, err := isMounted(unix.Major(st.Rdev), unix.Minor(st.Rdev))
	if err != nil {
		return err
	}
	if mounted {
		return fmt.Errorf("scratch device %s is mounted: refusing to write to it", path)
	}
	return nil
}

// isMounted reports whether a filesystem on device maj:min is mounted,
// after /proc/self/mountinfo.
func isMounted(maj, min uint32) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	want := fmt.Sprintf("%d:%d", maj, min)
	for line := range strings.Lines(string(b)) {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == want {
			return true, nil
		}
	}
	return false, nil
}
