package cgroupfs

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Limits are a job's resource limits; a zero field is not set.
type Limits struct {
	CPUWeight  uint32  // cpu.weight, 1-10000
	CPUs       float64 // cpu.max as a number of CPUs, e.g. 1.5
	MemoryMax  uint64  // memory.max in bytes
	MemoryHigh uint64  // memory.high in bytes, at most MemoryMax
	IOWeight   uint32  // io weight on io.weight's scale, 1-10000
	IOMax      []IOMax // io.max per device
	PidsMax    uint64  // pids.max
}

// IOMax caps I/O on one block device; a zero rate is no cap.
type IOMax struct {
	Device    string // a block device path (/dev/vda) or "MAJ:MIN"
	ReadBPS   uint64
	WriteBPS  uint64
	ReadIOPS  uint64
	WriteIOPS uint64

	// resolved is the "MAJ:MIN" of resolvedFrom, which Validate found;
	// apply writes it, so that a device is looked up once however often
	// its limits are validated. A copy of the Limits keeps it; JSON does
	// not.
	resolved, resolvedFrom string
}

// Bounds of the limits.
const (
	MaxCPUWeight = 10000
	MaxIOWeight  = 10000
	// cpuPeriod is the cpu.max period in microseconds (the kernel default).
	cpuPeriod = 100000
	// minCPUQuota is the smallest cpu.max quota the kernel takes (1 ms).
	minCPUQuota = 1000
	// MinCPUs is the smallest CPU cap: minCPUQuota of cpuPeriod.
	MinCPUs = float64(minCPUQuota) / cpuPeriod
	// MaxCPUs bounds a CPU cap far above any machine.
	MaxCPUs = 4096
	// MinMemory is the smallest memory limit taken: below it a job cannot
	// even exec.
	MinMemory = 1 << 20
)

// The Check functions are the one place of each limit's range. Validate
// calls them for the limits that are set (non-zero); a caller that tells
// an explicit zero from an unset limit (an API request) calls them for
// each limit it was given, zeros included. name is what the error calls
// the limit, at its start: "cpu_weight 0 is out of range 1-10000".

// CheckCPUWeight checks a cpu.weight: 1-MaxCPUWeight.
func CheckCPUWeight(name string, w uint32) error {
	if w < 1 || w > MaxCPUWeight {
		return fmt.Errorf("%s %d is out of range 1-%d", name, w, MaxCPUWeight)
	}
	return nil
}

// CheckCPUs checks a CPU cap in CPUs: MinCPUs-MaxCPUs.
func CheckCPUs(name string, cpus float64) error {
	if math.IsNaN(cpus) || cpus < MinCPUs || cpus > MaxCPUs {
		return fmt.Errorf("%s %v is out of range %v-%d", name, cpus, MinCPUs, MaxCPUs)
	}
	return nil
}

// CheckMemory checks a memory limit (memory.max or memory.high) in bytes:
// at least MinMemory.
func CheckMemory(name string, bytes uint64) error {
	if bytes < MinMemory {
		return fmt.Errorf("%s %d is below the minimum of %d (1 MiB)", name, bytes, MinMemory)
	}
	return nil
}

// CheckIOWeight checks an io weight on io.weight's scale: 1-MaxIOWeight.
func CheckIOWeight(name string, w uint32) error {
	if w < 1 || w > MaxIOWeight {
		return fmt.Errorf("%s %d is out of range 1-%d", name, w, MaxIOWeight)
	}
	return nil
}

// CheckPids checks a pids.max: at least 1.
func CheckPids(name string, n uint64) error {
	if n < 1 {
		return fmt.Errorf("%s %d: a job needs at least one process", name, n)
	}
	return nil
}

// Validate checks every limit that is set and says which is wrong. It
// resolves each IOMax device to its MAJ:MIN once and keeps the answer in l
// (in a copy of l.IOMax of its own, so that other copies of the Limits
// are not written to), so that validating the same limits again, and
// applying them, looks up no device a second time.
//
// A memory high below MinMemory is taken: a server's default of a
// fraction of a small memory limit can be.
func (l *Limits) Validate() error { return l.validate(ResolveDevice) }

// validate is Validate with the device lookup given.
func (l *Limits) validate(resolve func(dev string) (string, error)) error {
	checks := []struct {
		set   bool
		check func() error
	}{
		{l.CPUWeight != 0, func() error { return CheckCPUWeight("cpu weight", l.CPUWeight) }},
		{l.CPUs != 0, func() error { return CheckCPUs("CPU cap", l.CPUs) }},
		{l.MemoryMax != 0, func() error { return CheckMemory("memory limit", l.MemoryMax) }},
		{l.MemoryHigh != 0 && l.MemoryMax != 0 && l.MemoryHigh > l.MemoryMax, func() error {
			return fmt.Errorf("memory high %d exceeds the memory limit %d", l.MemoryHigh, l.MemoryMax)
		}},
		{l.IOWeight != 0, func() error { return CheckIOWeight("io weight", l.IOWeight) }},
		{l.PidsMax != 0, func() error { return CheckPids("pids limit", l.PidsMax) }},
	}
	for _, c := range checks {
		if c.set {
			if err := c.check(); err != nil {
				return err
			}
		}
	}
	return l.resolveDevices(resolve)
}

// resolveDevices resolves the IOMax devices not resolved yet and refuses
// a device given twice.
func (l *Limits) resolveDevices(resolve func(dev string) (string, error)) error {
	cloned := false
	seen := map[string]bool{}
	for i, m := range l.IOMax {
		if m.resolved == "" || m.resolvedFrom != m.Device {
			dev, err := resolve(m.Device)
			if err != nil {
				return err
			}
			if !cloned {
				l.IOMax, cloned = slices.Clone(l.IOMax), true
			}
			l.IOMax[i].resolved, l.IOMax[i].resolvedFrom = dev, m.Device
		}
		dev := l.IOMax[i].resolved
		if seen[dev] {
			return fmt.Errorf("io max: device %s is given twice", m.Device)
		}
		seen[dev] = true
	}
	return nil
}

// CPUMax is the cpu.max value of a CPU cap: quota and period in
// microseconds. 1.5 CPUs is "150000 100000".
func CPUMax(cpus float64) string {
	quota := max(int64(math.Round(cpus*cpuPeriod)), minCPUQuota)
	return fmt.Sprintf("%d %d", quota, cpuPeriod)
}

// BFQWeight maps a weight on io.weight's scale (1-10000, default 100) to
// io.bfq.weight's (1-1000, default 100): 1-100 unchanged, 100-10000 linearly
// onto 100-1000, so the default stays the default and the ends stay ends.
func BFQWeight(w uint32) uint32 {
	if w <= 100 {
		return max(w, 1)
	}
	return 100 + uint32(math.Round(float64(w-100)*900/9900))
}

// ResolveDevice turns a block device path or "MAJ:MIN" into "MAJ:MIN".
func ResolveDevice(dev string) (string, error) {
	if maj, min, ok := strings.Cut(dev, ":"); ok {
		a, err1 := strconv.ParseUint(maj, 10, 32)
		b, err2 := strconv.ParseUint(min, 10, 32)
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("io device %q: want a block device path or MAJ:MIN", dev)
		}
		return fmt.Sprintf("%d:%d", a, b), nil
	}
	if !strings.HasPrefix(dev, "/") {
		return "", fmt.Errorf("io device %q: want a block device path or MAJ:MIN", dev)
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", fmt.Errorf("io device %s: %w", dev, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("io device %s is not a block device", dev)
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)), nil
}

// ioMaxLine is the io.max line of m for device "MAJ:MIN".
func ioMaxLine(dev string, m IOMax) string {
	v := func(n uint64) string {
		if n == 0 {
			return "max"
		}
		return strconv.FormatUint(n, 10)
	}
	return fmt.Sprintf("%s rbps=%s wbps=%s riops=%s wiops=%s", dev, v(m.ReadBPS), v(m.WriteBPS), v(m.ReadIOPS), v(m.WriteIOPS))
}

// ErrNoIOWeight is returned for an io weight on a kernel that offers neither
// io.bfq.weight nor io.weight.
var ErrNoIOWeight = errors.New("io weight needs io.bfq.weight (the BFQ scheduler on the device) or io.weight (blk-iocost), and this kernel offers neither")

// apply writes the limits, which Validate has accepted, into the group's
// control files.
func (g *Group) apply(l Limits) error {
	if l.CPUWeight != 0 {
		if err := writeFile(g.dir, "cpu.weight", strconv.FormatUint(uint64(l.CPUWeight), 10)); err != nil {
			return err
		}
	}
	if l.CPUs != 0 {
		if err := writeFile(g.dir, "cpu.max", CPUMax(l.CPUs)); err != nil {
			return err
		}
	}
	if l.MemoryMax != 0 {
		if err := writeFile(g.dir, "memory.max", strconv.FormatUint(l.MemoryMax, 10)); err != nil {
			return err
		}
		// A hard limit is on memory, not memory plus swap.
		if err := writeFile(g.dir, "memory.swap.max", "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if l.MemoryHigh != 0 {
		if err := writeFile(g.dir, "memory.high", strconv.FormatUint(l.MemoryHigh, 10)); err != nil {
			return err
		}
	}
	if l.IOWeight != 0 {
		err := writeFile(g.dir, "io.bfq.weight", strconv.FormatUint(uint64(BFQWeight(l.IOWeight)), 10))
		if errors.Is(err, os.ErrNotExist) {
			err = writeFile(g.dir, "io.weight", "default "+strconv.FormatUint(uint64(l.IOWeight), 10))
			if errors.Is(err, os.ErrNotExist) {
				return ErrNoIOWeight
			}
		}
		if err != nil {
			return err
		}
	}
	for _, m := range l.IOMax {
		if err := writeFile(g.dir, "io.max", ioMaxLine(m.resolved, m)); err != nil {
			return err
		}
	}
	if l.PidsMax != 0 {
		if err := writeFile(g.dir, "pids.max", strconv.FormatUint(l.PidsMax, 10)); err != nil {
			return err
		}
	}
	return nil
}
