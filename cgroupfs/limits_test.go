//go:build !integration

package cgroupfs

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckLimits: the range of each limit, with the rows at and past each
// end, and the whole message a caller gets, which starts with the name it
// gave (the CLI swaps an API field's name there for its flag's).
func TestCheckLimits(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // the whole message; "": accepted
	}{
		{"cpu weight 0", CheckCPUWeight("cpu_weight", 0), "cpu_weight 0 is out of range 1-10000"},
		{"cpu weight 1", CheckCPUWeight("cpu_weight", 1), ""},
		{"cpu weight max", CheckCPUWeight("cpu_weight", MaxCPUWeight), ""},
		{"cpu weight over", CheckCPUWeight("cpu_weight", MaxCPUWeight+1), "cpu_weight 10001 is out of range 1-10000"},
		{"cpus negative", CheckCPUs("cpus", -1), "cpus -1 is out of range 0.01-4096"},
		{"cpus 0", CheckCPUs("cpus", 0), "cpus 0 is out of range 0.01-4096"},
		{"cpus just below min", CheckCPUs("cpus", math.Nextafter(MinCPUs, 0)), "cpus 0.009999999999999998 is out of range 0.01-4096"},
		{"cpus min", CheckCPUs("cpus", MinCPUs), ""},
		{"cpus max", CheckCPUs("cpus", MaxCPUs), ""},
		{"cpus just over max", CheckCPUs("cpus", math.Nextafter(MaxCPUs, math.Inf(1))), "cpus 4096.000000000001 is out of range 0.01-4096"},
		{"cpus NaN", CheckCPUs("cpus", math.NaN()), "cpus NaN is out of range 0.01-4096"},
		{"cpus +Inf", CheckCPUs("cpus", math.Inf(1)), "cpus +Inf is out of range 0.01-4096"},
		{"memory 0", CheckMemory("memory_max_bytes", 0), "memory_max_bytes 0 is below the minimum of 1048576 (1 MiB)"},
		{"memory below 1 MiB", CheckMemory("memory_max_bytes", MinMemory-1), "memory_max_bytes 1048575 is below the minimum of 1048576 (1 MiB)"},
		{"memory 1 MiB", CheckMemory("memory_high_bytes", MinMemory), ""},
		{"memory most", CheckMemory("memory_high_bytes", math.MaxUint64), ""},
		{"io weight 0", CheckIOWeight("io_weight", 0), "io_weight 0 is out of range 1-10000"},
		{"io weight 1", CheckIOWeight("io_weight", 1), ""},
		{"io weight max", CheckIOWeight("io_weight", MaxIOWeight), ""},
		{"io weight over", CheckIOWeight("io_weight", MaxIOWeight+1), "io_weight 10001 is out of range 1-10000"},
		{"pids 0", CheckPids("pids_max", 0), "pids_max 0: a job needs at least one process"},
		{"pids 1", CheckPids("pids_max", 1), ""},
		{"pids most", CheckPids("pids_max", math.MaxUint64), ""},
	}
	for _, tt := range tests {
		got := ""
		if tt.err != nil {
			got = tt.err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// countingResolver resolves any device to "254:" and its length, and
// counts the lookups.
type countingResolver struct{ calls map[string]int }

func (c *countingResolver) resolve(dev string) (string, error) {
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[dev]++
	if dev == "/dev/missing" {
		return "", os.ErrNotExist
	}
	return "254:" + string(rune('0'+len(dev)%10)), nil
}

// TestValidateResolvesOnce: Validate looks each device up once; validating
// the limits again, or a copy of them, looks up none; a device changed in
// a copy is looked up anew; the caller's other copies are never written to.
func TestValidateResolvesOnce(t *testing.T) {
	var r countingResolver
	orig := Limits{IOMax: []IOMax{{Device: "/dev/a", WriteBPS: 1}, {Device: "/dev/bb", ReadIOPS: 2}}}
	l := orig
	if err := l.validate(r.resolve); err != nil {
		t.Fatal(err)
	}
	if r.calls["/dev/a"] != 1 || r.calls["/dev/bb"] != 1 {
		t.Fatalf("first Validate looked up %v, want each device once", r.calls)
	}
	if got := l.IOMax[0].resolved + " " + l.IOMax[1].resolved; got != "254:6 254:7" {
		t.Errorf("resolved devices %q, want \"254:6 254:7\"", got)
	}
	if orig.IOMax[0].resolved != "" {
		t.Error("Validate wrote its resolution into the IOMax of another copy of the limits")
	}

	again := l
	if err := again.validate(r.resolve); err != nil {
		t.Fatal(err)
	}
	if err := l.validate(r.resolve); err != nil {
		t.Fatal(err)
	}
	if r.calls["/dev/a"] != 1 || r.calls["/dev/bb"] != 1 {
		t.Errorf("validating resolved limits again looked up %v, want no more lookups", r.calls)
	}

	changed := l
	changed.IOMax = append([]IOMax(nil), l.IOMax...)
	changed.IOMax[1].Device = "/dev/ccc"
	if err := changed.validate(r.resolve); err != nil {
		t.Fatal(err)
	}
	if r.calls["/dev/ccc"] != 1 || r.calls["/dev/a"] != 1 || changed.IOMax[1].resolved != "254:8" {
		t.Errorf("after a device changed: lookups %v, resolved %q; want /dev/ccc looked up once, as 254:8", r.calls, changed.IOMax[1].resolved)
	}

	// Two paths of one device are refused after their lookups; a failed
	// lookup is the error.
	twice := Limits{IOMax: []IOMax{{Device: "/dev/x"}, {Device: "/dev/y"}}}
	if err := twice.validate(r.resolve); err == nil || !strings.Contains(err.Error(), "/dev/y is given twice") {
		t.Errorf("two paths of one device: %v, want given twice", err)
	}
	missing := Limits{IOMax: []IOMax{{Device: "/dev/missing"}}}
	if err := missing.validate(r.resolve); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a device that cannot be looked up: %v, want its error", err)
	}
}

// TestApplyWritesResolvedDevice: apply writes the MAJ:MIN that Validate
// found, without looking the device up again (the path here names no
// device at all, so a second lookup would fail).
func TestApplyWritesResolvedDevice(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"io.max", "pids.max"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var r countingResolver
	l := Limits{IOMax: []IOMax{{Device: "/no/such/device", WriteBPS: 1 << 20}}, PidsMax: 7}
	if err := l.validate(r.resolve); err != nil {
		t.Fatal(err)
	}
	g := &Group{dir: dir}
	if err := g.apply(l); err != nil {
		t.Fatalf("apply: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "io.max"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "254:5 rbps=max wbps=1048576 riops=max wiops=max"; string(got) != want {
		t.Errorf("io.max = %q, want %q", got, want)
	}
	if r.calls["/no/such/device"] != 1 {
		t.Errorf("lookups %v, want one, by validate", r.calls)
	}
}
