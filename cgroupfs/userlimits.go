package cgroupfs

import (
	"fmt"
	"strconv"
)

// UserLimits are the limits of the user levels (<parent>/user-<name>),
// which bound all of a user's jobs together.
type UserLimits struct {
	// PidsMax is the pids.max of each user level; 0: none.
	PidsMax uint64
	// Exempt reports whether a user is bound by no user limit; nil: none
	// is.
	Exempt func(user string) bool
}

// SetUserLimits sets the limits the user levels made from now on get.
// Call it before the first Create.
func (h *Hierarchy) SetUserLimits(l UserLimits) {
	h.userMu.Lock()
	defer h.userMu.Unlock()
	h.userLimits = l
}

// applyUserLimits writes the user limits into a new user level. Called
// with userMu held.
func (h *Hierarchy) applyUserLimits(user, dir string) error {
	l := h.userLimits
	if l.PidsMax == 0 || !h.Has("pids") || l.Exempt != nil && l.Exempt(user) {
		return nil
	}
	if err := writeFile(dir, "pids.max", strconv.FormatUint(l.PidsMax, 10)); err != nil {
		return fmt.Errorf("set the pids.max of user %s: %w", user, err)
	}
	return nil
}
