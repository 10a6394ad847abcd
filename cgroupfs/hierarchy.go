package cgroupfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Hierarchy is the server's cgroup subtree.
type Hierarchy struct {
	mount       string          // the cgroup2 mount point
	parent      string          // absolute directory of the parent
	jobs        string          // absolute directory of the jobs level, <parent>/jobs
	jobsHave    map[string]bool // controllers the jobs level has (from the parent)
	controllers map[string]bool // controllers enabled for the jobs level's children

	// userMu orders the making and removing of user levels, so that a job
	// being created never finds its user level removed under it.
	userMu     sync.Mutex
	userLimits UserLimits // guarded by userMu (userlimits.go)
}

// Options select the parent cgroup.
type Options struct {
	// Mount is the cgroup2 mount point; empty: FindMount.
	Mount string
	// Parent is the parent cgroup, relative to the mount ("/jobs") or an
	// absolute path under it; empty: the cgroup the server runs in, or
	// /jobworker when that is the root cgroup.
	Parent string
}

// Setup prepares the parent: it creates it if needed, moves the calling
// process into <parent>/supervisor, makes the jobs level <parent>/jobs, and
// enables cpu, io, memory and pids for the children of both the parent and
// the jobs level where the parent offers them. Controllers the parent does
// not offer are left out; Hierarchy.Controllers reports what is enabled.
// KeepReserve then bounds the jobs level.
//
// When the server was started in the root cgroup its parent is
// /jobworker, a child of the cgroup it was started in; enabling the
// controllers there is what makes them available to /jobworker.
func Setup(opts Options) (*Hierarchy, error) {
	mount := opts.Mount
	if mount == "" {
		m, err := FindMount()
		if err != nil {
			return nil, err
		}
		mount = m
	}
	own, err := OwnCgroup()
	if err != nil {
		return nil, err
	}
	rel, fromRoot := parentCgroup(mount, opts.Parent, own)
	parent := filepath.Join(mount, rel)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup parent %s: %w", parent, err)
	}
	h := &Hierarchy{mount: mount, parent: parent, jobs: filepath.Join(parent, "jobs")}

	if fromRoot {
		if err := h.enable(mount); err != nil {
			return nil, err
		}
	}
	sup := filepath.Join(parent, "supervisor")
	if err := os.Mkdir(sup, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create supervisor cgroup: %w", err)
	}
	if err := AddProc(sup, os.Getpid()); err != nil {
		return nil, fmt.Errorf("move the server into its supervisor cgroup: %w", err)
	}
	if err := h.enable(parent); err != nil {
		return nil, err
	}
	// Like a user level, the jobs level can be passed through but not
	// listed.
	if err := os.Mkdir(h.jobs, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create the jobs cgroup: %w", err)
	}
	if h.jobsHave, err = readControllers(h.jobs, "cgroup.controllers"); err != nil {
		return nil, err
	}
	if err := h.enable(h.jobs); err != nil {
		return nil, err
	}
	h.controllers, err = readControllers(h.jobs, "cgroup.subtree_control")
	if err != nil {
		return nil, err
	}
	return h, nil
}

// parentCgroup is the parent Setup uses, relative to mount: asked (relative
// to mount, or an absolute path under it), or when that is empty own, the
// cgroup the server runs in (its parent when own is a supervisor cgroup),
// or /jobworker when that is the root cgroup, which fromRoot reports.
func parentCgroup(mount, asked, own string) (rel string, fromRoot bool) {
	rel = asked
	if strings.HasPrefix(rel, mount+"/") || rel == mount {
		rel = strings.TrimPrefix(rel, mount)
	}
	if rel == "" {
		rel = own
		// A server restarted inside its own supervisor cgroup takes the
		// parent it had.
		if filepath.Base(rel) == "supervisor" {
			rel = filepath.Dir(rel)
		}
		if rel == "/" {
			rel, fromRoot = "/jobworker", true
		}
	}
	return filepath.Clean("/" + rel), fromRoot
}

// enable turns on, for the children of dir, each of AllControllers that dir
// offers (cgroup.controllers), one at a time so that one refusal does not
// hide the others.
func (h *Hierarchy) enable(dir string) error {
	avail, err := readControllers(dir, "cgroup.controllers")
	if err != nil {
		return err
	}
	on, err := readControllers(dir, "cgroup.subtree_control")
	if err != nil {
		return err
	}
	for _, c := range AllControllers() {
		if !avail[c] || on[c] {
			continue
		}
		if err := writeFile(dir, "cgroup.subtree_control", "+"+c); err != nil {
			return fmt.Errorf("enable the %s controller: %w (another process in %s? cgroup v2 allows controllers only for cgroups without processes of their own)", c, err, dir)
		}
	}
	return nil
}

// Parent is the absolute directory of the parent cgroup.
func (h *Hierarchy) Parent() string { return h.parent }

// Controllers lists the controllers jobs get, sorted.
func (h *Hierarchy) Controllers() []string {
	var cs []string
	for c := range h.controllers {
		if slices.Contains(AllControllers(), c) {
			cs = append(cs, c)
		}
	}
	slices.Sort(cs)
	return cs
}

// Has reports whether jobs get controller c.
func (h *Hierarchy) Has(c string) bool { return h.controllers[c] }

// UserDir is the name of a user's cgroup: "user-" and the user name with
// every byte outside [A-Za-z0-9._-] written as %XX. The mapping is
// one-to-one (so no two users share a cgroup), the result is never "." or
// "..", contains no "/", and cannot be a control file (those never start
// with "user-").
func UserDir(user string) (string, error) {
	if user == "" {
		return "", errors.New("empty user name")
	}
	var b strings.Builder
	b.WriteString("user-")
	for i := 0; i < len(user); i++ {
		c := user[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() > 200 {
		return "", fmt.Errorf("user name %.20q... is too long for a cgroup name", user)
	}
	return b.String(), nil
}

// validJobDir reports whether id can name a job's cgroup: 1 to 128 of
// A-Z a-z 0-9 _ -, starting with a letter or digit. (Hand-written rather
// than a regexp: every job's shim runs this package's initialisation.)
func validJobDir(id string) bool {
	if len(id) == 0 || len(id) > 128 || !isAlnum(id[0]) {
		return false
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Group is one job's cgroup.
type Group struct {
	h    *Hierarchy
	dir  string // absolute directory
	user string // absolute directory of the user level
}

// Dir is the group's absolute directory.
func (g *Group) Dir() string { return g.dir }

// Create makes the cgroup of a job at <parent>/jobs/user-<name>/<job-id>, with
// the user level if it is new, and applies limits after validating them
// (which looks up only devices no earlier Validate of them resolved). On
// any error it removes what it made.
func (h *Hierarchy) Create(user, jobID string, limits Limits) (g *Group, err error) {
	if !validJobDir(jobID) {
		return nil, fmt.Errorf("invalid job ID %q for a cgroup name", jobID)
	}
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	if err := h.checkControllers(limits); err != nil {
		return nil, err
	}
	ud, err := UserDir(user)
	if err != nil {
		return nil, err
	}
	userPath := filepath.Join(h.jobs, ud)
	h.userMu.Lock()
	defer h.userMu.Unlock()
	madeUser := false
	// A user level can be passed through but not listed (0711): nobody
	// but root learns from it which jobs a user runs. (Jobs do not see it
	// at all: their cgroup namespace is rooted at their own cgroup.)
	if err := os.Mkdir(userPath, 0o711); err == nil {
		madeUser = true
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create user cgroup: %w", err)
	}
	g = &Group{h: h, dir: filepath.Join(userPath, jobID), user: userPath}
	defer func() {
		if err != nil {
			os.Remove(g.dir)
			if madeUser {
				os.Remove(userPath)
			}
		}
	}()
	// Only this function makes user levels, and it enables their
	// controllers before anything else goes in, so an existing one has
	// them already.
	if madeUser {
		if err := h.enable(userPath); err != nil {
			return nil, err
		}
		if err := h.applyUserLimits(user, userPath); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create job cgroup: %w", err)
	}
	if err := g.apply(limits); err != nil {
		return nil, err
	}
	return g, nil
}

// MissingControllerError is a limit whose controller the host lacks.
type MissingControllerError struct {
	Controller string
	Limit      string
	Parent     string
}

func (e *MissingControllerError) Error() string {
	return fmt.Sprintf("the %s limit needs the cgroup v2 %s controller, which is not available in %s: boot with cgroup v2 unified (systemd.unified_cgroup_hierarchy=1) and, if the server's cgroup is delegated, delegate %s to it",
		e.Limit, e.Controller, e.Parent, e.Controller)
}

// checkControllers refuses limits whose controller is missing.
func (h *Hierarchy) checkControllers(l Limits) error {
	need := func(c, limit string) error {
		if !h.controllers[c] {
			return &MissingControllerError{Controller: c, Limit: limit, Parent: h.parent}
		}
		return nil
	}
	checks := []struct {
		set      bool
		c, limit string
	}{
		{l.CPUWeight != 0, "cpu", "cpu weight"},
		{l.CPUs != 0, "cpu", "CPU cap"},
		{l.MemoryMax != 0, "memory", "memory"},
		{l.MemoryHigh != 0, "memory", "memory high"},
		{l.IOWeight != 0, "io", "io weight"},
		{len(l.IOMax) > 0, "io", "io max"},
		{l.PidsMax != 0, "pids", "pids"},
	}
	for _, c := range checks {
		if c.set {
			if err := need(c.c, c.limit); err != nil {
				return err
			}
		}
	}
	return nil
}
