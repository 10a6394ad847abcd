package shim_test

import (
	"io"
	"os"
	"testing"

	"github.com/jobworker/jobworker/shim"
)

// Shared by the unit and the integration tests of the shim (no build tag).

// start runs spec through l and returns its output and exit code, or the
// start error.
func start(t *testing.T, l shim.Launcher, spec shim.Spec) (string, int, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := l.Start(spec, w, w)
	w.Close()
	if err != nil {
		return "", -1, err
	}
	out, _ := io.ReadAll(r)
	st, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return string(out), st.ExitCode(), nil
}
