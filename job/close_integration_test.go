//go:build integration

package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobworker/jobworker/shim"
	"golang.org/x/sys/unix"
)

// TestCloseRacesLaunch: Close begins while a job is being launched
// (admitted, its cgroup made, its shim started but not yet exec'd into
// the command). Start then either refuses it (ErrClosed) or starts it, and
// Close stops it: when Close returns, a job Start acknowledged has ended
// and its cgroup is gone, and no job of it is left running unsupervised.
//
// The shim is started through a script that first waits at a FIFO, so the
// launch is held for as long as the test wants: the test lets it go on
// only once Close has begun (m.quit is closed right after closing is
// set). The job ignores SIGTERM, so the stop takes the whole grace: a
// Close that did not wait for the job returns while it still runs.
func TestCloseRacesLaunch(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.StopGrace = 2 * time.Second
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	if err := unix.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "held-shim")
	script := "#!/bin/sh\n/bin/cat " + gate + " >/dev/null\nexec " + os.Getenv("JOBWORKER_BIN") + ` "$@"` + "\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Launcher = shim.Launcher{Binary: wrapper}
	m := open(t, cfg)

	type started struct {
		st  Status
		err error
	}
	startDone := make(chan started, 1)
	go func() {
		st, err := m.Start(Request{Owner: "alice", Command: "sh", Args: []string{"-c", "trap '' TERM; exec sleep 1000"}})
		startDone <- started{st, err}
	}()
	// The launch is under way once the script waits at the gate.
	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(gate, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
		}
		opened <- f
	}()
	var g *os.File
	select {
	case g = <-opened:
	case r := <-startDone:
		t.Fatalf("Start returned (%v, %v) before its shim reached the gate", r.st, r.err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the shim did not reach the gate within two minutes")
	}
	if g == nil {
		t.FailNow()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- m.Close(ctx) }()
	<-m.quit // Close has begun: no job is admitted from here on.
	g.Close()

	var err error
	select {
	case err = <-closed:
	case <-time.After(3 * time.Minute):
		t.Fatal("Close did not return within three minutes")
	}
	if err != nil {
		t.Errorf("Close: %v", err)
	}
	// What Close left, before the job could end of itself.
	var r started
	select {
	case r = <-startDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("Start did not return within two minutes of Close")
	}
	switch {
	case errors.Is(r.err, ErrClosed):
		if ents, _ := os.ReadDir(filepath.Join(e.state, "jobs")); len(ents) != 0 {
			t.Errorf("Start refused the job with ErrClosed, but the state directory holds %v", ents)
		}
	case r.err != nil:
		t.Fatalf("Start: %v, want a job or ErrClosed", r.err)
	default:
		st, err := m.Get(r.st.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != StateStopped {
			t.Errorf("when Close returned, the job it raced was %v, want stopped", st.State)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(e.parent, "jobs", "user-*", "*-*-*-*-*")); len(left) > 0 {
		t.Errorf("when Close returned, job cgroups were left: %v", left)
	}
}
