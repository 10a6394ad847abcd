package provider

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
)

// TestLimitWriter: limitBytes passes exactly that many bytes, however the
// output is cut into chunks, then ends the stream.
func TestLimitWriter(t *testing.T) {
	for _, tt := range []struct {
		limit  int
		chunks []string
		want   string
		ended  bool
	}{
		{1, []string{"abc"}, "a", true},
		{3, []string{"abc", "def"}, "abc", true},
		{4, []string{"abc", "def"}, "abcd", true},
		{6, []string{"abc", "def"}, "abcdef", true},
		{7, []string{"abc", "def"}, "abcdef", false},
	} {
		var out bytes.Buffer
		w := &limitWriter{w: &out, left: int64(tt.limit)}
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

// TestSince: sinceSeconds counts back from now, sinceTime is the time
// itself, and neither asks for all the output.
func TestSince(t *testing.T) {
	now := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	if got := since(api.ContainerLogOpts{SinceSeconds: 90}, now); !got.AsTime().Equal(now.Add(-90 * time.Second)) {
		t.Errorf("since(sinceSeconds 90) = %v, want %v", got.AsTime(), now.Add(-90*time.Second))
	}
	at := now.Add(-time.Hour)
	if got := since(api.ContainerLogOpts{SinceTime: at}, now); !got.AsTime().Equal(at) {
		t.Errorf("since(sinceTime %v) = %v", at, got.AsTime())
	}
	if got := since(api.ContainerLogOpts{}, now); got != nil {
		t.Errorf("since(no since) = %v, want nil", got.AsTime())
	}
}

// TestKeepTailLines: a request that names tailLines, 0 included, is told
// from one that does not, which Virtual Kubelet's options cannot do.
func TestKeepTailLines(t *testing.T) {
	for _, tt := range []struct {
		query string
		want  bool
	}{{"", false}, {"?follow=true", false}, {"?tailLines=", false}, {"?tailLines=0", true}, {"?tailLines=3&follow=true", true}} {
		var got, called bool
		h := KeepTailLines(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called, got = true, tailLinesGiven(r.Context())
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/containerLogs/ns/p/c"+tt.query, nil))
		if !called || got != tt.want {
			t.Errorf("%q: handler called %v, tailLines given %v; want called, %v", tt.query, called, got, tt.want)
		}
	}
}
