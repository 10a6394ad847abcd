//go:build !integration

package cgroupfs

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	hybrid := `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 33 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory
`
	unified := `34 25 0:29 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
99 34 0:29 / /mnt/other\040dir rw - cgroup2 cgroup2 rw
`
	elsewhere := `99 34 0:29 / /mnt/other\040dir rw - cgroup2 cgroup2 rw
`
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"hybrid", hybrid, "/sys/fs/cgroup/unified", false},
		{"unified", unified, "/sys/fs/cgroup", false},
		{"elsewhere, escaped space", elsewhere, "/mnt/other dir", false},
		{"cgroup v1 only", "35 33 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "", true},
		{"empty", "", "", true},
		{"garbage", "no separator here\n - \n", "", true},
	}
	for _, tt := range tests {
		got, err := parseMountinfo([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: parseMountinfo = %q, %v; want %q, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"0::/\n", "/", false},
		{"0::/system.slice/jobworker.service/supervisor\n", "/system.slice/jobworker.service/supervisor", false},
		{"12:memory:/x\n1:name=systemd:/y\n0::/user.slice\n", "/user.slice", false},
		{"12:memory:/x\n", "", true},
		{"", "", true},
		{"0::relative\n", "", true},
	}
	for _, tt := range tests {
		got, err := parseProcCgroup([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseProcCgroup(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseFlatKeyed(t *testing.T) {
	cpu := "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
	kv, err := parseFlatKeyed(cpu)
	if err != nil || kv["usage_usec"] != 1234 || kv["user_usec"] != 1000 || kv["system_usec"] != 234 {
		t.Errorf("parseFlatKeyed(cpu.stat) = %v, %v", kv, err)
	}
	ev := "low 0\nhigh 3\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n"
	kv, err = parseFlatKeyed(ev)
	if err != nil || kv["oom_kill"] != 1 || kv["max"] != 7 {
		t.Errorf("parseFlatKeyed(memory.events) = %v, %v", kv, err)
	}
	for _, bad := range []string{"usage_usec\n", "usage_usec x\n", "a 1 2\n", "a -1\n"} {
		if _, err := parseFlatKeyed(bad); err == nil {
			t.Errorf("parseFlatKeyed(%q) succeeded, want an error", bad)
		}
	}
	if kv, err := parseFlatKeyed(""); err != nil || len(kv) != 0 {
		t.Errorf("parseFlatKeyed(empty) = %v, %v", kv, err)
	}
	if kv, _ := parseFlatKeyed("big 18446744073709551615\n"); kv["big"] != math.MaxUint64 {
		t.Errorf("parseFlatKeyed(max uint64) = %v", kv)
	}
}

func TestParseIOStat(t *testing.T) {
	tests := []struct {
		in      string
		want    ioStat
		wantErr bool
	}{
		{"", ioStat{}, false},
		{"254:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n", ioStat{100, 200, 3, 4}, false},
		{"254:0 rbytes=100 wbytes=200 rios=3 wios=4\n8:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=9 dios=9\n", ioStat{101, 202, 4, 5}, false},
		{"254:0 rbytes=1 cost.usage=5 cost.wait=0\n", ioStat{1, 0, 0, 0}, false},
		{"rbytes=1\n", ioStat{}, true},
		{"254:0 rbytes\n", ioStat{}, true},
		{"254:0 rbytes=x\n", ioStat{}, true},
	}
	for _, tt := range tests {
		got, err := parseIOStat(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("parseIOStat(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseSingle(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"0\n", 0, false},
		{"4096\n", 4096, false},
		{"max\n", math.MaxUint64, false},
		{"", 0, true},
		{"-1", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSingle(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSingle(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCPUMax(t *testing.T) {
	tests := []struct {
		cpus float64
		want string
	}{
		{MinCPUs, "1000 100000"},
		{0.001, "1000 100000"}, // below the kernel's minimum quota: clamped
		{0.5, "50000 100000"},
		{1, "100000 100000"},
		{1.5, "150000 100000"},
		{2.345, "234500 100000"},
		{MaxCPUs, "409600000 100000"},
	}
	for _, tt := range tests {
		if got := CPUMax(tt.cpus); got != tt.want {
			t.Errorf("CPUMax(%v) = %q, want %q", tt.cpus, got, tt.want)
		}
	}
}

func TestBFQWeight(t *testing.T) {
	tests := []struct{ in, want uint32 }{
		{0, 1}, {1, 1}, {50, 50}, {100, 100}, {101, 100}, {199, 109}, {1000, 182}, {5050, 550}, {9999, 1000}, {10000, 1000},
	}
	for _, tt := range tests {
		if got := BFQWeight(tt.in); got != tt.want {
			t.Errorf("BFQWeight(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
	prev := uint32(0)
	for w := uint32(1); w <= MaxIOWeight; w++ {
		got := BFQWeight(w)
		if got < prev || got < 1 || got > 1000 {
			t.Fatalf("BFQWeight is not monotonic within 1-1000 at %d: %d after %d", w, got, prev)
		}
		prev = got
	}
}

func TestUserDir(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"alice", "user-alice", false},
		{"dev-user", "user-dev-user", false},
		{"A.b_c", "user-A.b_c", false},
		{"..", "user-..", false},
		{".", "user-.", false},
		{"a/b", "user-a%2Fb", false},
		{"../../etc", "user-..%2F..%2Fetc", false},
		{"a%2Fb", "user-a%252Fb", false}, // % itself is escaped: no collision with "a/b"
		{"cgroup.procs", "user-cgroup.procs", false},
		{"a b\x00", "user-a%20b%00", false},
		{"é", "user-%C3%A9", false},
		{"", "", true},
		{strings.Repeat("x", 195), "user-" + strings.Repeat("x", 195), false},
		{strings.Repeat("x", 196), "", true},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got, err := UserDir(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("UserDir(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil {
			if strings.Contains(got, "/") || got == "." || got == ".." {
				t.Errorf("UserDir(%q) = %q escapes its parent", tt.in, got)
			}
			if other, ok := seen[got]; ok {
				t.Errorf("UserDir(%q) = UserDir(%q) = %q", tt.in, other, got)
			}
			seen[got] = tt.in
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name    string
		l       Limits
		wantErr string // substring; "" for valid
	}{
		{"none", Limits{}, ""},
		{"cpu weight 1", Limits{CPUWeight: 1}, ""},
		{"cpu weight max", Limits{CPUWeight: 10000}, ""},
		{"cpu weight over", Limits{CPUWeight: 10001}, "cpu weight 10001"},
		{"cpus min", Limits{CPUs: MinCPUs}, ""},
		{"cpus below min", Limits{CPUs: 0.009}, "CPU cap"},
		{"cpus negative", Limits{CPUs: -1}, "CPU cap"},
		{"cpus NaN", Limits{CPUs: math.NaN()}, "CPU cap"},
		{"cpus huge", Limits{CPUs: 5000}, "CPU cap"},
		{"memory 1M", Limits{MemoryMax: 1 << 20}, ""},
		{"memory below 1M", Limits{MemoryMax: 1<<20 - 1}, "below the minimum"},
		{"high equal max", Limits{MemoryMax: 64 << 20, MemoryHigh: 64 << 20}, ""},
		{"high over max", Limits{MemoryMax: 64 << 20, MemoryHigh: 64<<20 + 1}, "exceeds"},
		{"high below 1M, a default's 0.9 of 1M", Limits{MemoryMax: 1 << 20, MemoryHigh: 943718}, ""},
		{"pids 1", Limits{PidsMax: 1}, ""},
		{"io weight max", Limits{IOWeight: 10000}, ""},
		{"io weight over", Limits{IOWeight: 10001}, "io weight"},
		{"io max by number", Limits{IOMax: []IOMax{{Device: "8:0", WriteBPS: 1}}}, ""},
		{"io max twice", Limits{IOMax: []IOMax{{Device: "8:0"}, {Device: "008:00"}}}, "twice"},
		{"io max bad device", Limits{IOMax: []IOMax{{Device: "sda"}}}, "block device path or MAJ:MIN"},
		{"io max not a device", Limits{IOMax: []IOMax{{Device: "/etc/passwd"}}}, "not a block device"},
		{"io max missing device", Limits{IOMax: []IOMax{{Device: "/dev/no-such-disk"}}}, "no such file"},
		{"io max bad numbers", Limits{IOMax: []IOMax{{Device: "8:x"}}}, "MAJ:MIN"},
	}
	for _, tt := range tests {
		err := tt.l.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestIOMaxLine(t *testing.T) {
	got := ioMaxLine("254:0", IOMax{WriteBPS: 1 << 20, ReadIOPS: 10})
	if want := "254:0 rbps=max wbps=1048576 riops=10 wiops=max"; got != want {
		t.Errorf("ioMaxLine = %q, want %q", got, want)
	}
}

func TestMissingControllerError(t *testing.T) {
	h := &Hierarchy{parent: "/sys/fs/cgroup/jobworker", controllers: map[string]bool{"cpu": true, "pids": true}}
	if err := h.checkControllers(Limits{CPUWeight: 5, PidsMax: 10}); err != nil {
		t.Errorf("limits on present controllers: %v", err)
	}
	for _, tt := range []struct {
		l    Limits
		ctrl string
	}{
		{Limits{MemoryMax: 1 << 30}, "memory"},
		{Limits{MemoryHigh: 1 << 30}, "memory"},
		{Limits{IOWeight: 100}, "io"},
		{Limits{IOMax: []IOMax{{Device: "8:0"}}}, "io"},
	} {
		err := h.checkControllers(tt.l)
		var mce *MissingControllerError
		if !errors.As(err, &mce) || mce.Controller != tt.ctrl || !strings.Contains(err.Error(), "cgroup v2 unified") {
			t.Errorf("checkControllers(%+v) = %v, want a MissingControllerError for %s that says how to enable it", tt.l, err, tt.ctrl)
		}
	}
}

// TestRemoveTree: a tree of empty directories goes, deepest first; a
// missing tree is no error; a directory that cannot go (on a cgroup mount,
// one with processes; here, one with a file) is reported, and the rest
// still goes.
func TestRemoveTree(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "parent")
	for _, d := range []string{"supervisor", "user-a/job1", "user-a/job2", "user-b/job3/deeper"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveTree(tree); err != nil {
		t.Fatalf("RemoveTree(%s) = %v", tree, err)
	}
	if _, err := os.Stat(tree); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after RemoveTree, stat %s: %v, want not exist", tree, err)
	}
	if err := RemoveTree(tree); err != nil {
		t.Errorf("RemoveTree of a missing tree = %v, want nil", err)
	}

	busy := filepath.Join(tree, "user-a", "busy")
	if err := os.MkdirAll(busy, 0o755); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(tree, "user-b", "job4"), 0o755)
	os.WriteFile(filepath.Join(busy, "cgroup.procs"), []byte("1\n"), 0o644)
	err := RemoveTree(tree)
	if !errors.Is(err, syscall.ENOTEMPTY) || !strings.Contains(err.Error(), busy) {
		t.Errorf("RemoveTree with %s busy = %v, want ENOTEMPTY naming it", busy, err)
	}
	if _, err := os.Stat(filepath.Join(tree, "user-b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("user-b beside the busy cgroup: stat %v, want removed", err)
	}
}

// TestAllControllers: the four controllers, sorted, in a slice of the
// caller's own that changing does not change the next answer.
func TestAllControllers(t *testing.T) {
	got := AllControllers()
	if want := []string{"cpu", "io", "memory", "pids"}; !slices.Equal(got, want) {
		t.Fatalf("AllControllers() = %q, want %q", got, want)
	}
	got[0] = "changed"
	if again := AllControllers(); again[0] != "cpu" {
		t.Errorf("after the caller changed its slice, AllControllers() = %q", again)
	}
}
