//go:build !integration

package cgroupfs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestProcs reads cgroup.procs of a group and of its descendants.
func TestProcs(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // directory under the group: its cgroup.procs
		want  []int
	}{
		{"empty", map[string]string{".": ""}, nil},
		{"one", map[string]string{".": "42\n"}, []int{42}},
		{"several", map[string]string{".": "1\n7\n"}, []int{1, 7}},
		{"descendants", map[string]string{".": "", "a": "3\n", "a/b": "4\n5\n", "c": ""}, []int{3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for sub, procs := range tt.files {
				if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, sub, "cgroup.procs"), []byte(procs), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := procsUnder(dir)
			slices.Sort(got)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("procsUnder = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := procsUnder(filepath.Join(t.TempDir(), "gone")); err == nil {
		t.Error("procsUnder of a missing group = nil error, want one")
	}
}
