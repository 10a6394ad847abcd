package cgroupfs

import (
	"errors"
	"fmt"
	"math"
	"os"
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

// Validate checks every limit's range and says which is wrong.
func (l Limits) Validate() error {
	if l.CPUWeight > MaxCPUWeight {
		return fmt.Errorf("cpu weight %d is out of range 1-%d", l.CPUWeight, MaxCPUWeight)
	}
	if l.CPUs != 0 && (math.IsNaN(l.CPUs) || l.CPUs < MinCPUs || l.CPUs > MaxCPUs) {
		return fmt.Errorf("CPU cap %v is out of range %v-%d CPUs", l.CPUs, MinCPUs, MaxCPUs)
	}
	if l.MemoryMax != 0 && l.MemoryMax < MinMemory {
		return fmt.Errorf("memory limit %d bytes is below the minimum of %d (1 MiB)", l.MemoryMax, MinMemory)
	}
	if l.MemoryHigh != 0 && l.MemoryMax != 0 && l.MemoryHigh > l.MemoryMax {
		return fmt.Errorf("memory high %d exceeds the memory limit %d", l.MemoryHigh, l.MemoryMax)
	}
	if l.IOWeight > MaxIOWeight {
		return fmt.Errorf("io weight %d is out of range 1-%d", l.IOWeight, MaxIOWeight)
	}
	seen := map[string]bool{}
	for _, m := range l.IOMax {
		dev, err := ResolveDevice(m.Device)
		if err != nil {
			return err
		}
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

// apply writes the limits into the group's control files.
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
		dev, err := ResolveDevice(m.Device)
		if err != nil {
			return err
		}
		if err := writeFile(g.dir, "io.max", ioMaxLine(dev, m)); err != nil {
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
