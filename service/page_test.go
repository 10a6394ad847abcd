//go:build !integration

package service

import (
	"testing"
	"time"

	"github.com/jobworker/jobworker/job"
)

// TestPageToken: a token gives back its cursor exactly; anything else is
// refused; page sizes are bounded.
func TestPageToken(t *testing.T) {
	c := job.Cursor{Created: time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC), ID: "6f9619ff-8b86-4011-b42d-00c04fc964ff"}
	got, err := parsePageToken(pageToken(c))
	if err != nil || !got.Created.Equal(c.Created) || got.ID != c.ID {
		t.Errorf("parsePageToken(pageToken(%v)) = %v, %v", c, got, err)
	}
	if got, err := parsePageToken(""); got != nil || err != nil {
		t.Errorf("the empty token = %v, %v; want the first page", got, err)
	}
	for _, bad := range []string{"x", "!!!", pageToken(job.Cursor{ID: "../etc"}), "djE6MTox"} {
		if _, err := parsePageToken(bad); err == nil {
			t.Errorf("parsePageToken(%q) accepted", bad)
		}
	}
	for _, tt := range []struct {
		in   uint32
		want int
	}{{0, 100}, {1, 1}, {1000, 1000}, {1001, 1000}, {1 << 31, 1000}} {
		if got := pageSize(tt.in); got != tt.want {
			t.Errorf("pageSize(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
