package cgroupfs

import (
	"fmt"
	"strconv"
)

// Change is a change of the limits of a job's group while the job lives
// (jobworker update): a nil field is left as it is. Unlike in Limits, a
// zero CPUs or MemoryHigh is a value: no CPU cap, no memory high ("max").
// io.max is not among them: it is set at the start only.
type Change struct {
	CPUWeight  *uint32
	CPUs       *float64
	MemoryMax  *uint64
	MemoryHigh *uint64
	IOWeight   *uint32
	PidsMax    *uint64
}

// Empty reports whether c changes nothing.
func (c Change) Empty() bool {
	return c.CPUWeight == nil && c.CPUs == nil && c.MemoryMax == nil && c.MemoryHigh == nil && c.IOWeight == nil && c.PidsMax == nil
}

// Apply is l with c's changes.
func (c Change) Apply(l Limits) Limits {
	set := func(dst *uint64, v *uint64) {
		if v != nil {
			*dst = *v
		}
	}
	if c.CPUWeight != nil {
		l.CPUWeight = *c.CPUWeight
	}
	if c.CPUs != nil {
		l.CPUs = *c.CPUs
	}
	set(&l.MemoryMax, c.MemoryMax)
	set(&l.MemoryHigh, c.MemoryHigh)
	if c.IOWeight != nil {
		l.IOWeight = *c.IOWeight
	}
	set(&l.PidsMax, c.PidsMax)
	return l
}

// CheckChange refuses a change whose controller the host lacks, as Create
// refuses such limits.
func (h *Hierarchy) CheckChange(c Change) error {
	// Every limit that c sets, as a Limits with it non-zero.
	var l Limits
	if c.CPUWeight != nil {
		l.CPUWeight = 1
	}
	if c.CPUs != nil {
		l.CPUs = 1
	}
	if c.MemoryMax != nil {
		l.MemoryMax = 1
	}
	if c.MemoryHigh != nil {
		l.MemoryHigh = 1
	}
	if c.IOWeight != nil {
		l.IOWeight = 1
	}
	if c.PidsMax != nil {
		l.PidsMax = 1
	}
	return h.checkControllers(l)
}

// Change writes c into the group's control files, in Create's order (so a
// memory.max is written before the memory.high that goes with it). The
// limits after the change must have passed Validate.
func (g *Group) Change(c Change) error {
	var l Limits
	if c.CPUWeight != nil {
		l.CPUWeight = *c.CPUWeight
	}
	if c.CPUs != nil {
		if *c.CPUs == 0 {
			if err := writeFile(g.dir, "cpu.max", "max"); err != nil {
				return err
			}
		}
		l.CPUs = *c.CPUs
	}
	if c.MemoryMax != nil {
		l.MemoryMax = *c.MemoryMax
	}
	if c.IOWeight != nil {
		l.IOWeight = *c.IOWeight
	}
	if c.PidsMax != nil {
		l.PidsMax = *c.PidsMax
	}
	if err := g.apply(l); err != nil {
		return err
	}
	if c.MemoryHigh != nil {
		v := "max"
		if *c.MemoryHigh != 0 {
			v = strconv.FormatUint(*c.MemoryHigh, 10)
		}
		if err := writeFile(g.dir, "memory.high", v); err != nil {
			return err
		}
	}
	return nil
}

// MemoryCurrent is the memory the group uses now (memory.current).
func (g *Group) MemoryCurrent() (uint64, error) {
	s, err := readFile(g.dir, "memory.current")
	if err != nil {
		return 0, fmt.Errorf("read %s/memory.current: %w", g.dir, err)
	}
	return parseSingle(s)
}
