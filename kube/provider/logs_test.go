package provider

import (
	"bytes"
	"errors"
	"testing"
)

// TestLimitWriter: limitBytes passes exactly that many bytes, however the
// output is cut into chunks, then ends the stream; no limit passes all.
func TestLimitWriter(t *testing.T) {
	for _, tt := range []struct {
		limit  int
		chunks []string
		want   string
		ended  bool
	}{
		{0, []string{"abc", "def"}, "abcdef", false},
		{1, []string{"abc"}, "a", true},
		{3, []string{"abc", "def"}, "abc", true},
		{4, []string{"abc", "def"}, "abcd", true},
		{6, []string{"abc", "def"}, "abcdef", true},
		{7, []string{"abc", "def"}, "abcdef", false},
	} {
		var out bytes.Buffer
		w := &limitWriter{w: &out, left: int64(tt.limit), unlimited: tt.limit == 0}
		ended := false
		for _, c := range tt.chunks {
			if _, err := w.Write([]byte(c)); errors.Is(err, errLimit) {
				ended = true
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if out.String() != tt.want || ended != tt.ended {
			t.Errorf("limit %d, chunks %q: wrote %q (ended %v), want %q (ended %v)", tt.limit, tt.chunks, out.String(), ended, tt.want, tt.ended)
		}
	}
}
