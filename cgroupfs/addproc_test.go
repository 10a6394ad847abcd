//go:build !integration

package cgroupfs

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRetryEINVAL: AddProc's retry waits between tries, longer each time,
// and gives up after addProcTries; any other answer ends it at once.
func TestRetryEINVAL(t *testing.T) {
	einval := fmt.Errorf("write %q to %s: %w", "1", "cgroup.procs", unix.EINVAL)
	tests := []struct {
		name      string
		answers   []error // what each write returns; the last one repeats
		wantErr   error
		wantTries int
		wantWaits []time.Duration
	}{
		{"success at once", []error{nil}, nil, 1, nil},
		{"another error at once", []error{unix.ESRCH}, unix.ESRCH, 1, nil},
		{"EINVAL once, then success", []error{einval, nil}, nil, 2, []time.Duration{5 * time.Millisecond}},
		{"EINVAL, then another error", []error{einval, einval, unix.EBUSY}, unix.EBUSY, 3, []time.Duration{5 * time.Millisecond, 10 * time.Millisecond}},
		{"EINVAL until the last try succeeds", []error{einval, einval, einval, einval, nil}, nil, 5, []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}},
		{"EINVAL every time", []error{einval}, unix.EINVAL, addProcTries, []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}},
	}
	for _, tt := range tests {
		tries := 0
		var waits []time.Duration
		err := retryEINVAL(func() error {
			err := tt.answers[min(tries, len(tt.answers)-1)]
			tries++
			return err
		}, func(d time.Duration) { waits = append(waits, d) })
		if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: retryEINVAL = %v, want %v", tt.name, err, tt.wantErr)
		}
		if tries != tt.wantTries || !slices.Equal(waits, tt.wantWaits) {
			t.Errorf("%s: %d tries with waits %v, want %d with %v", tt.name, tries, waits, tt.wantTries, tt.wantWaits)
		}
	}
}
