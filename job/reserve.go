package job

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// checkReserve refuses a new job while the state directory's filesystem
// has less free space than Config.StateDirReserve: what is left is the
// server's, to record the jobs it has.
func (m *Manager) checkReserve() error {
	reserve := m.cfg.StateDirReserve
	if reserve == 0 {
		return nil
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(m.cfg.StateDir, &fs); err != nil {
		return fmt.Errorf("job manager: free space of the state directory: %w", err)
	}
	free := fs.Bavail * uint64(fs.Bsize)
	if free < reserve {
		return fmt.Errorf("%w: its filesystem has %s free, below the reserve of %s (--state-dir-reserve): new jobs are refused until space is freed", ErrStateFull, humanBytes(free), humanBytes(reserve))
	}
	return nil
}
