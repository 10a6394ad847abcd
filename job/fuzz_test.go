//go:build !integration

package job

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jobworker/jobworker/cgroupfs"
)

// FuzzValidate feeds hostile requests to Validate: it never panics, and a
// request it accepts holds no NUL byte, only portable variable names, an
// absolute clean working directory, only UTF-8 strings and sizes within the
// documented limits.
//
// A portable name is POSIX's (Base Definitions 8.1): ASCII letters, digits
// and _, not starting with a digit. portableEnvName says so on its own, not
// through the validator under test.
func FuzzValidate(f *testing.F) {
	f.Add("/bin/true", "arg", "NAME", "value", "/tmp", int64(0), uint32(100), uint64(1<<20))
	f.Add("", "", "", "", "", int64(-1), uint32(0), uint64(0))
	f.Add("a\x00b", "x\x00", "A=B", "v\x00", "../etc", int64(1), uint32(20000), uint64(1))
	f.Add("sh", "-c", "1BAD", "", "/tmp/../etc", int64(time.Hour), uint32(10000), uint64(1<<40))
	f.Add(strings.Repeat("a", 5000), "\xff\xfe", "JOBWORKER_JOB_ID", "x", "//tmp", int64(0), uint32(1), uint64(0))
	// Otherwise valid requests with names just outside the rule, so that
	// the name check is reached by the seeds alone.
	for _, name := range []string{"_", "a_Z9", "1BAD", "A-B", "A=B", "A B", "A.B", "É", "A\n", "A\x00", ""} {
		f.Add("/bin/true", "arg", name, "v", "/tmp", int64(0), uint32(100), uint64(1<<20))
	}
	f.Fuzz(func(t *testing.T, command, arg, envName, envValue, dir string, timeout int64, weight uint32, memory uint64) {
		r := Request{
			Command: command,
			Args:    []string{arg, arg},
			Env:     map[string]string{envName: envValue},
			Dir:     dir,
			Timeout: time.Duration(timeout),
			Limits:  cgroupfs.Limits{CPUWeight: weight, MemoryMax: memory},
		}
		if err := r.Validate(); err != nil {
			return
		}
		for _, str := range []string{command, arg, envValue, dir} {
			if !utf8.ValidString(str) {
				t.Fatalf("accepted a string that is not UTF-8: %q", str)
			}
		}
		if r.Command == "" || strings.ContainsRune(r.Command, 0) || len(r.Command) > MaxCommandBytes {
			t.Fatalf("accepted command %q", r.Command)
		}
		if strings.ContainsRune(arg, 0) {
			t.Fatalf("accepted argument %q", arg)
		}
		if !portableEnvName.MatchString(envName) || envName == "JOBWORKER_JOB_ID" || strings.ContainsRune(envValue, 0) {
			t.Fatalf("accepted variable %q=%q", envName, envValue)
		}
		if dir != "" && (!filepath.IsAbs(dir) || filepath.Clean(dir) != dir) {
			t.Fatalf("accepted working directory %q", dir)
		}
		if timeout < 0 || weight > cgroupfs.MaxCPUWeight || (memory != 0 && memory < cgroupfs.MinMemory) {
			t.Fatalf("accepted timeout %d, weight %d, memory %d", timeout, weight, memory)
		}
	})
}

var portableEnvName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
