package job

import (
	"context"
	"errors"
	"testing"
	"time"
)

// eventTypes reads n events of w.
func eventTypes(t *testing.T, w *Watcher, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for range n {
		ev, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, ev.Job.ID+" "+string(ev.Type))
	}
	return got
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEventsOfStateChanges drives jobs through their life as the Manager
// does (state set, then notifyLocked) and checks the events each change
// makes: created for a queued job, created and started for one started at
// once, then paused, resumed, limits_updated, ended and pruned.
func TestEventsOfStateChanges(t *testing.T) {
	m := &Manager{events: newEventLog(64)}
	w, err := m.WatchEvents(Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	queued := &job{st: Status{ID: "q", Owner: "alice", State: StatePending}, changed: make(chan struct{})}
	m.eventsLocked(queued) // Start queues it
	queued.st.State = StateRunning
	m.notifyLocked(queued) // launch
	direct := &job{st: Status{ID: "d", Owner: "bob", State: StateRunning}, changed: make(chan struct{})}
	m.notifyLocked(direct) // launch of a job started at once
	direct.st.State = StatePaused
	m.notifyLocked(direct)
	direct.st.State = StateRunning
	m.notifyLocked(direct)
	m.publishLocked(direct, EventLimitsUpdated)
	m.notifyLocked(direct) // no state change: no other event
	direct.st.State = StateFailed
	direct.st.Reason = ReasonOOMKilled
	m.notifyLocked(direct)
	m.publishLocked(direct, EventPruned)
	want := []string{"q created", "q started", "d created", "d started", "d paused", "d resumed", "d limits_updated", "d ended", "d pruned"}
	if got := eventTypes(t, w, len(want)); !equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	// Sequence numbers count from 1; the ended event has the reason.
	all, err := m.WatchEvents(Filter{}, 7)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := all.Next(context.Background())
	if err != nil || ev.Seq != 8 || ev.Type != EventEnded || ev.Job.Reason != ReasonOOMKilled {
		t.Errorf("event after 7: %+v, %v; want 8, ended, oom_killed", ev, err)
	}
}

// TestEventsFilter: a watcher sees only the events of the jobs its filter
// matches, by the job's status at the event.
func TestEventsFilter(t *testing.T) {
	m := &Manager{events: newEventLog(64)}
	w, err := m.WatchEvents(Filter{Owners: []string{"alice"}, States: []State{StateCompleted, StateFailed}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{"bob", "alice"} {
		j := &job{st: Status{ID: owner, Owner: owner, State: StateRunning}, changed: make(chan struct{})}
		m.notifyLocked(j)
		j.st.State = StateCompleted
		m.notifyLocked(j)
	}
	if got, want := eventTypes(t, w, 1), []string{"alice ended"}; !equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestEventsSlowWatcher: a watcher more than half the buffer behind is
// ended with a BehindError naming the last event it was given, and a
// watcher resuming after that event gets every later one, without a gap,
// while the publisher never waited for either.
func TestEventsSlowWatcher(t *testing.T) {
	m := &Manager{events: newEventLog(8)}
	slow, err := m.WatchEvents(Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	j := &job{st: Status{ID: "j"}}
	m.publishLocked(j, EventLimitsUpdated) // 1
	ev, err := slow.Next(context.Background())
	if err != nil || ev.Seq != 1 {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	for range 5 { // 2..6: five behind, over the limit of 4
		m.publishLocked(j, EventLimitsUpdated)
	}
	_, err = slow.Next(context.Background())
	var behind *BehindError
	if !errors.As(err, &behind) || !errors.Is(err, ErrWatchBehind) || behind.Last != 1 || behind.Lag != 5 || behind.Max != 4 {
		t.Fatalf("slow watcher: %v, want a BehindError after event 1, 5 behind of at most 4", err)
	}
	resumed, err := m.WatchEvents(Filter{}, behind.Last)
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(2); want <= 6; want++ {
		ev, err := resumed.Next(context.Background())
		if err != nil || ev.Seq != want {
			t.Fatalf("resumed: %+v, %v; want event %d", ev, err, want)
		}
	}
	// Events the ring no longer keeps, or never had, cannot be resumed.
	for range 8 {
		m.publishLocked(j, EventLimitsUpdated)
	}
	if _, err := m.WatchEvents(Filter{}, 1); !errors.Is(err, ErrEventsGone) {
		t.Errorf("resume after a dropped event: %v, want ErrEventsGone", err)
	}
	if _, err := m.WatchEvents(Filter{}, 100); !errors.Is(err, ErrEventsGone) {
		t.Errorf("resume after an event not yet published: %v, want ErrEventsGone", err)
	}
}

// TestEventsNextEndsWithContext: Next waits for an event until its
// context ends.
func TestEventsNextEndsWithContext(t *testing.T) {
	m := &Manager{events: newEventLog(8)}
	w, err := m.WatchEvents(Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next: %v, want context.Canceled", err)
	}
}
