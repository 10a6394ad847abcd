package cgroupfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Usage is what a job's cgroup has used. Fields whose control file is
// missing (its controller is off) stay zero.
type Usage struct {
	CPUUsageUsec, CPUUserUsec, CPUSystemUsec uint64
	MemoryCurrent, MemoryPeak                uint64
	IOReadBytes, IOWriteBytes                uint64
	IOReadOps, IOWriteOps                    uint64
	PidsCurrent                              uint64
	OOMKills                                 uint64
}

// Add adds v to u, field by field: the usage of several groups together.
func (u *Usage) Add(v Usage) {
	u.CPUUsageUsec += v.CPUUsageUsec
	u.CPUUserUsec += v.CPUUserUsec
	u.CPUSystemUsec += v.CPUSystemUsec
	u.MemoryCurrent += v.MemoryCurrent
	u.MemoryPeak += v.MemoryPeak
	u.IOReadBytes += v.IOReadBytes
	u.IOWriteBytes += v.IOWriteBytes
	u.IOReadOps += v.IOReadOps
	u.IOWriteOps += v.IOWriteOps
	u.PidsCurrent += v.PidsCurrent
	u.OOMKills += v.OOMKills
}

// Usage reads the group's usage.
func (g *Group) Usage() (Usage, error) {
	var u Usage
	read := func(file string, parse func(string) error) error {
		s, err := readFile(g.dir, file)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s/%s: %w", g.dir, file, err)
		}
		if err := parse(s); err != nil {
			return fmt.Errorf("parse %s/%s: %w", g.dir, file, err)
		}
		return nil
	}
	single := func(dst *uint64) func(string) error {
		return func(s string) error {
			v, err := parseSingle(s)
			*dst = v
			return err
		}
	}
	for _, r := range []struct {
		file  string
		parse func(string) error
	}{
		{"cpu.stat", func(s string) error {
			kv, err := parseFlatKeyed(s)
			u.CPUUsageUsec, u.CPUUserUsec, u.CPUSystemUsec = kv["usage_usec"], kv["user_usec"], kv["system_usec"]
			return err
		}},
		{"memory.current", single(&u.MemoryCurrent)},
		{"memory.peak", single(&u.MemoryPeak)},
		{"io.stat", func(s string) error {
			st, err := parseIOStat(s)
			u.IOReadBytes, u.IOWriteBytes, u.IOReadOps, u.IOWriteOps = st.rbytes, st.wbytes, st.rios, st.wios
			return err
		}},
		{"pids.current", single(&u.PidsCurrent)},
		{"memory.events", func(s string) error {
			kv, err := parseFlatKeyed(s)
			u.OOMKills = kv["oom_kill"]
			return err
		}},
	} {
		if err := read(r.file, r.parse); err != nil {
			return u, err
		}
	}
	return u, nil
}

// parseSingle parses a single-value file such as memory.current ("max" is
// the largest value).
func parseSingle(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return ^uint64(0), nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// parseFlatKeyed parses a flat keyed file (cpu.stat, memory.events): one
// "key value" a line.
func parseFlatKeyed(s string) (map[string]uint64, error) {
	kv := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return kv, fmt.Errorf("malformed line %q", line)
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return kv, fmt.Errorf("malformed line %q: %w", line, err)
		}
		kv[f[0]] = v
	}
	return kv, nil
}

type ioStat struct{ rbytes, wbytes, rios, wios uint64 }

// parseIOStat sums io.stat over devices: lines like
// "254:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
func parseIOStat(s string) (ioStat, error) {
	var st ioStat
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.Contains(f[0], ":") {
			return st, fmt.Errorf("malformed line %q", line)
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return st, fmt.Errorf("malformed field %q", kv)
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return st, fmt.Errorf("malformed field %q: %w", kv, err)
			}
			switch k {
			case "rbytes":
				st.rbytes += n
			case "wbytes":
				st.wbytes += n
			case "rios":
				st.rios += n
			case "wios":
				st.wios += n
			}
		}
	}
	return st, nil
}
