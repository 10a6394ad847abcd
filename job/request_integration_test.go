//go:build integration

package job

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jobworker/jobworker/shim"
)

// TestStartRequestID: a StartJob retried with the same request ID by the
// same owner returns the first job, also while the first is still being
// admitted and after a restart; another owner's same request ID is another
// job; a start that failed left nothing, so its retry tries again.
func TestStartRequestID(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	m := open(t, cfg)
	const rid = "0f8fad5b-d9cb-469f-a165-70867728950e"
	req := Request{Owner: "alice", Command: "sleep", Args: []string{"1000"}, RequestID: rid}

	// Ten at once: one job.
	ids := make([]string, 10)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			st, err := m.Start(req)
			if err != nil {
				t.Error(err)
			}
			ids[i] = st.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ten starts with one request ID made jobs %v, want one", ids)
		}
	}
	if n := len(m.List(Filter{Owners: []string{"alice"}})); n != 1 {
		t.Errorf("alice has %d jobs after ten starts with one request ID, want 1", n)
	}
	again, err := m.Start(req)
	if err != nil || again.ID != ids[0] {
		t.Errorf("a retry: %s, %v; want job %s", again.ID, err, ids[0])
	}
	bob, err := m.Start(Request{Owner: "bob", Command: "sleep", Args: []string{"1000"}, RequestID: rid})
	if err != nil || bob.ID == ids[0] {
		t.Errorf("bob's start with alice's request ID: %s, %v; want a job of his own", bob.ID, err)
	}

	// A start that fails leaves no job: its retry is tried again.
	missing := Request{Owner: "alice", Command: "no-such-command", RequestID: "7c9e6679-7425-40de-944b-e07fc1f90ae7"}
	for range 2 {
		var se *shim.StartError
		if _, err := m.Start(missing); !errors.As(err, &se) || se.Reason != shim.ReasonNotFound {
			t.Errorf("start of a missing command: %v, want not found each time", err)
		}
	}

	// After a restart the request ID still names the job.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m2 := open(t, cfg)
	after, err := m2.Start(req)
	if err != nil || after.ID != ids[0] {
		t.Errorf("after a restart, a retry: %s, %v; want job %s", after.ID, err, ids[0])
	}
	if n := len(m2.List(Filter{Owners: []string{"alice"}})); n != 1 {
		t.Errorf("alice has %d jobs after the restart and a retry, want 1", n)
	}
}
