//go:build integration

package job

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
)

func sleeper(owner string, memory uint64) Request {
	return Request{Owner: owner, Command: "sleep", Args: []string{"1000"}, Limits: cgroupfs.Limits{MemoryMax: memory}}
}

func mustStart(t *testing.T, m *Manager, req Request, want State) Status {
	t.Helper()
	st, err := m.Start(req)
	if err != nil {
		t.Fatalf("Start(%s %v): %v", req.Owner, req.Args, err)
	}
	if st.State != want {
		t.Fatalf("a job of %s: %s, want %s", req.Owner, st.State, want)
	}
	return st
}

func state(t *testing.T, m *Manager, id string) State {
	t.Helper()
	st, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return st.State
}

// TestFairTurn: alice fills the server (--max-running 1) and queues 10
// more; bob's job, queued after them, starts at the first free slot.
func TestFairTurn(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MaxRunning = 1
	m := open(t, cfg)
	first := mustStart(t, m, sleeper("alice", 0), StateRunning)
	var queued []Status
	for range 10 {
		queued = append(queued, mustStart(t, m, sleeper("alice", 0), StatePending))
	}
	bob := mustStart(t, m, sleeper("bob", 0), StatePending)
	grace := 0 * time.Second
	if _, err := m.Stop(context.Background(), first.ID, &grace); err != nil {
		t.Fatal(err)
	}
	eventuallyState(t, m, bob.ID, StateRunning)
	for _, q := range queued {
		if s := state(t, m, q.ID); s != StatePending {
			t.Errorf("alice's queued job %s is %s when bob's took the free slot, want PENDING", q.ID, s)
		}
	}
	// Then alice's next, in her order.
	if _, err := m.Stop(context.Background(), bob.ID, &grace); err != nil {
		t.Fatal(err)
	}
	eventuallyState(t, m, queued[0].ID, StateRunning)
	for _, q := range queued {
		m.Stop(context.Background(), q.ID, &grace)
	}
}

// TestFairHeadDoesNotBlock: alice's next job does not fit the memory
// capacity; bob's smaller one, started after it, runs at once.
func TestFairHeadDoesNotBlock(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MemoryCapacity = 128 << 20
	m := open(t, cfg)
	a := mustStart(t, m, sleeper("alice", 64<<20), StateRunning)
	big := mustStart(t, m, sleeper("alice", 100<<20), StatePending)
	b := mustStart(t, m, sleeper("bob", 32<<20), StateRunning)
	grace := 0 * time.Second
	for _, id := range []string{a.ID, big.ID, b.ID} {
		m.Stop(context.Background(), id, &grace)
	}
}

// TestQuotas: each quota refuses with its name, value and flag, or holds a
// job PENDING, per user; --quota-exempt users are not bound.
func TestQuotas(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.Quotas = Quotas{MaxRunning: 1, MaxPending: 2, Memory: 96 << 20, Exempt: []string{"carol"}}
	m := open(t, cfg)
	var quota *QuotaError
	_, err := m.Start(sleeper("alice", 128<<20))
	if !errors.As(err, &quota) || quota.Flag != "--user-memory" || !strings.Contains(err.Error(), "--user-memory") || !strings.Contains(err.Error(), "100663296") {
		t.Errorf("a job over alice's memory quota: %v, want a QuotaError naming --user-memory and 100663296", err)
	}
	var ids []string
	ids = append(ids, mustStart(t, m, sleeper("alice", 32<<20), StateRunning).ID)
	ids = append(ids, mustStart(t, m, sleeper("alice", 32<<20), StatePending).ID) // --user-max-running 1
	ids = append(ids, mustStart(t, m, sleeper("alice", 32<<20), StatePending).ID)
	_, err = m.Start(sleeper("alice", 32<<20))
	if !errors.As(err, &quota) || quota.Flag != "--user-max-pending" || !strings.Contains(err.Error(), "pending jobs per user 2 (--user-max-pending) reached") {
		t.Errorf("alice's third pending job: %v, want a QuotaError of --user-max-pending 2", err)
	}
	// Bob is not held back by alice's quotas.
	ids = append(ids, mustStart(t, m, sleeper("bob", 64<<20), StateRunning).ID)
	// Bob's memory quota: 64 MiB of 96 reserved; the running quota holds
	// his next anyway, so lift it with an update of the one running.
	if _, err := m.Update(ids[3], cgroupfs.Change{MemoryMax: u64p(128 << 20)}); !errors.As(err, &quota) || quota.Flag != "--user-memory" {
		t.Errorf("raising bob's job past his memory quota: %v, want a QuotaError of --user-memory", err)
	}
	// Carol is exempt: past every quota.
	for range 3 {
		ids = append(ids, mustStart(t, m, sleeper("carol", 128<<20), StateRunning).ID)
	}
	grace := 0 * time.Second
	for _, id := range ids {
		m.Stop(context.Background(), id, &grace)
	}
}

// TestQuotaMemoryWaits: a job within a user's memory quota alone, but not
// beside the user's running ones, waits PENDING and starts once they end.
func TestQuotaMemoryWaits(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.Quotas = Quotas{Memory: 96 << 20}
	m := open(t, cfg)
	a := mustStart(t, m, sleeper("alice", 64<<20), StateRunning)
	b := mustStart(t, m, sleeper("alice", 64<<20), StatePending)
	c := mustStart(t, m, sleeper("bob", 64<<20), StateRunning)
	grace := 0 * time.Second
	m.Stop(context.Background(), a.ID, &grace)
	eventuallyState(t, m, b.ID, StateRunning)
	m.Stop(context.Background(), b.ID, &grace)
	m.Stop(context.Background(), c.ID, &grace)
}

// TestQuotaRetainCount: a user's oldest finished jobs past
// --user-retain-count are removed; another user's are kept.
func TestQuotaRetainCount(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.Quotas = Quotas{RetainCount: 2}
	m := open(t, cfg)
	var alice []string
	for range 3 {
		st := mustStart(t, m, Request{Owner: "alice", Command: "true"}, StateRunning)
		wait(t, m, st.ID)
		alice = append(alice, st.ID)
	}
	bob := mustStart(t, m, Request{Owner: "bob", Command: "true"}, StateRunning)
	wait(t, m, bob.ID)
	if _, err := m.Get(alice[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("alice's oldest of 3 finished jobs with --user-retain-count 2: %v, want it removed", err)
	}
	for _, id := range []string{alice[1], alice[2], bob.ID} {
		if _, err := m.Get(id); err != nil {
			t.Errorf("job %s: %v, want it kept", id, err)
		}
	}
}

func u64p(v uint64) *uint64 { return &v }

// eventuallyState waits, with Watch, until job id is in state want.
func eventuallyState(t *testing.T, m *Manager, id string, want State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reached := errors.New("reached")
	var last State
	err := m.Watch(ctx, id, time.Second, func(st Status) error {
		last = st.State
		if st.State == want {
			return reached
		}
		return nil
	})
	if err != reached {
		t.Fatalf("job %s: %s (%v), want %s", id, last, err, want)
	}
}
