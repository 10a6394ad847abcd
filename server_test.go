//go:build !integration

package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/jobworker/jobworker/shim"
)

// TestRunAsCredential: jobs run as root only when --run-as says root; any
// other name for uid 0 is refused.
func TestRunAsCredential(t *testing.T) {
	users := map[string]*shim.Credential{
		"root":   {UID: 0, GID: 0},
		"toor":   {UID: 0, GID: 0},
		"0":      {UID: 0, GID: 0},
		"admin0": {UID: 0, GID: 1000},
		"daemon": {UID: 1, GID: 1},
		"nobody": {UID: 65534, GID: 65534},
		"wheel0": {UID: 1000, GID: 0},
	}
	errUnknown := errors.New("no such user")
	lookup := func(name string) (*shim.Credential, error) {
		if name == "root" {
			t.Errorf("--run-as root was looked up")
		}
		if c, ok := users[name]; ok {
			return c, nil
		}
		return nil, errUnknown
	}
	tests := []struct {
		name    string
		want    *shim.Credential // nil with no error: root
		wantErr error
	}{
		{"root", nil, nil},
		{"toor", nil, errRootAlias},
		{"0", nil, errRootAlias},
		{"admin0", nil, errRootAlias},
		{"daemon", users["daemon"], nil}, // uid 1: the first that is not root
		{"nobody", users["nobody"], nil},
		{"wheel0", users["wheel0"], nil}, // gid 0 is not uid 0
		{"ghost", nil, errUnknown},
		{"Root", nil, errUnknown}, // spelled root means exactly that
	}
	for _, tt := range tests {
		got, err := runAsCredential(tt.name, lookup)
		if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("runAsCredential(%q) = %+v, %v; want %+v, %v", tt.name, got, err, tt.want, tt.wantErr)
		}
		if errors.Is(err, errRootAlias) && !strings.Contains(err.Error(), "--run-as root") {
			t.Errorf("runAsCredential(%q): message %q does not say how to ask for root", tt.name, err)
		}
	}
	// The real lookup: the number 0 is root's uid, and not spelled root.
	if _, err := runAsCredential("0", shim.LookupUser); !errors.Is(err, errRootAlias) {
		t.Errorf("runAsCredential(\"0\", shim.LookupUser) = %v, want %v", err, errRootAlias)
	}
}
