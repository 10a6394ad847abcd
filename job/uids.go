package job

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/jobworker/jobworker/shim"
)

// UIDRange is the range of uids (and gids, the same numbers) from which
// each owner of jobs is given one of its own.
type UIDRange struct {
	First, Last uint32
}

// DefaultUIDRange is the range used when the server is given none: the
// first 65536 ids of 1879048192-2147483647 (0x70000000-0x7FFFFFFF), which
// systemd's UIDS-GIDS.md leaves unused. It meets no system (0-999),
// regular (1000-60000), homed, dynamic-user (61184-65519) or container
// (524288-1879048191) id, nor the sub-uids that useradd hands out
// (100000-600100000 by default) or nobody (65534).
var DefaultUIDRange = UIDRange{First: 0x70000000, Last: 0x70000000 + 65535}

// ParseUIDRange reads FIRST-LAST.
func ParseUIDRange(s string) (UIDRange, error) {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.ParseUint(a, 10, 32)
	last, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return UIDRange{}, fmt.Errorf("uid range %q: want FIRST-LAST, two uids such as %s", s, DefaultUIDRange)
	}
	r := UIDRange{First: uint32(first), Last: uint32(last)}
	switch {
	case r.First > r.Last:
		return UIDRange{}, fmt.Errorf("uid range %s: its first uid is above its last", s)
	case r.First < 1000:
		return UIDRange{}, fmt.Errorf("uid range %s: starts among the system users (below 1000)", s)
	case r.Last >= 1<<31:
		return UIDRange{}, fmt.Errorf("uid range %s: reaches 2147483648 or above, which many programs take for negative", s)
	case r.First <= 65534 && r.Last >= 65534:
		return UIDRange{}, fmt.Errorf("uid range %s: holds nobody (65534)", s)
	}
	return r, nil
}

func (r UIDRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

func (r UIDRange) has(id uint32) bool { return id >= r.First && id <= r.Last }

// CheckFree refuses the range when an account of the account files
// (passwd and group, in /etc/passwd's format: name:x:ID:...) has an id in
// it: a user's uid or primary gid, or a group's gid. Jobs would run as
// that account, or with its group. A file that does not exist names none.
func (r UIDRange) CheckFree(passwd, group string) error {
	for _, f := range []struct {
		path  string
		field int    // of the id: 2, or 3 for a passwd line's gid
		what  string // the account, with %q for its name
	}{
		{passwd, 2, " of user %q"},
		{passwd, 3, ", the primary group of user %q,"},
		{group, 2, " of group %q"},
	} {
		name, id, err := firstIDIn(f.path, f.field, r)
		if err != nil {
			return err
		}
		if name != "" {
			return fmt.Errorf("uid range %s holds the id %d%s in %s: choose a range no account uses", r, id, fmt.Sprintf(f.what, name), f.path)
		}
	}
	return nil
}

// firstIDIn is the first account of path (in /etc/passwd's format) whose
// id in the given field (counted from 0: the third is 2) is in r.
func firstIDIn(path string, field int, r UIDRange) (name string, id uint32, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) <= field {
			continue
		}
		n, err := strconv.ParseUint(fields[field], 10, 32)
		if err == nil && r.has(uint32(n)) {
			return fields[0], uint32(n), nil
		}
	}
	return "", 0, sc.Err()
}

// ErrUIDsExhausted is a new owner for whom the uid range has no id left.
var ErrUIDsExhausted = errors.New("every uid of the server's range is taken")

// uidsFile keeps the owners' uids in the state directory.
const uidsFile = "uids.json"

// uidsVersion is the format of uidsFile.
const uidsVersion = 1

// uidsRecord is uidsFile's content.
type uidsRecord struct {
	Version int               `json:"version"`
	UIDs    map[string]uint32 `json:"uids"` // by owner
}

// uidTable gives each owner a uid of its own, once: the same owner gets
// the same uid after a restart.
type uidTable struct {
	dir string
	r   UIDRange

	mu    sync.Mutex
	byOwn map[string]uint32
	taken map[uint32]bool
}

// openUIDs loads dir's table of uids. Owners given a uid outside r (by a
// server with another range) keep it only if it is in r: otherwise they
// are given a new one.
func openUIDs(dir string, r UIDRange) (*uidTable, error) {
	t := &uidTable{dir: dir, r: r, byOwn: map[string]uint32{}, taken: map[uint32]bool{}}
	b, err := os.ReadFile(dir + "/" + uidsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, err
	}
	var rec uidsRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", dir, uidsFile, err)
	}
	if rec.Version > uidsVersion {
		return nil, fmt.Errorf("%s/%s: format %d is newer than this jobworker reads (%d)", dir, uidsFile, rec.Version, uidsVersion)
	}
	for owner, id := range rec.UIDs {
		if r.has(id) && !t.taken[id] {
			t.byOwn[owner], t.taken[id] = id, true
		}
	}
	return t, nil
}

// credential is the credential of owner's jobs, allocating its uid, durably,
// if it has none yet: no supplementary groups, and HOME the job's private
// /tmp.
func (t *uidTable) credential(owner string) (*shim.Credential, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.byOwn[owner]
	if !ok {
		var err error
		if id, err = t.allocLocked(owner); err != nil {
			return nil, err
		}
	}
	return &shim.Credential{UID: id, GID: id, Groups: []uint32{}, Home: "/tmp"}, nil
}

// allocLocked gives owner the lowest free uid and records it.
func (t *uidTable) allocLocked(owner string) (uint32, error) {
	if uint64(len(t.taken)) > uint64(t.r.Last-t.r.First) {
		return 0, fmt.Errorf("%w (%s, %d owners)", ErrUIDsExhausted, t.r, len(t.taken))
	}
	id := t.r.First
	for t.taken[id] {
		id++
	}
	t.byOwn[owner], t.taken[id] = id, true
	b, err := json.Marshal(uidsRecord{Version: uidsVersion, UIDs: t.byOwn})
	if err == nil {
		err = writeFileSync(t.dir, uidsFile, append(b, '\n'), (*os.File).Sync)
	}
	if err != nil {
		delete(t.byOwn, owner)
		delete(t.taken, id)
		return 0, storageError(fmt.Errorf("record the uid of %s: %w", owner, err))
	}
	return id, nil
}
