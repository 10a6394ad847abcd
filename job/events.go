package job

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// EventType is the kind of a job's state change.
type EventType string

// The events.
const (
	EventCreated       EventType = "created"
	EventStarted       EventType = "started"
	EventPaused        EventType = "paused"
	EventResumed       EventType = "resumed"
	EventEnded         EventType = "ended"
	EventLimitsUpdated EventType = "limits_updated"
	EventPruned        EventType = "pruned"
)

// Event is one state change of a job: its sequence number (1 for the first
// event of the Manager, then one more for each), when it happened, and the
// job's status just after it (without live usage and output figures).
type Event struct {
	Seq  uint64
	Time time.Time
	Type EventType
	Job  Status
}

// DefaultEventBuffer is the number of events a Manager keeps when
// Config.EventBuffer is 0.
const DefaultEventBuffer = 4096

// Errors of WatchEvents and Watcher.Next.
var (
	// ErrWatchBehind: the watcher fell more than half the event buffer
	// behind the newest event; its BehindError says where to resume.
	ErrWatchBehind = errors.New("the watcher fell too far behind")
	// ErrEventsGone: the events asked for are no longer kept (or were
	// never known to this server, which restarted since).
	ErrEventsGone = errors.New("the events asked for are no longer kept")
)

// BehindError is the ErrWatchBehind of one watcher.
type BehindError struct {
	// Last is the sequence number of the last event the watcher was
	// given (or the one it resumed after): a WatchEvents after it resumes
	// without a gap while the server still keeps what followed.
	Last uint64
	// Lag is how many events it was behind; Max the most it may be.
	Lag, Max uint64
}

func (e *BehindError) Error() string {
	return fmt.Sprintf("the watcher fell %d events behind (at most %d may be waiting): resume after event %d", e.Lag, e.Max, e.Last)
}

func (e *BehindError) Unwrap() error { return ErrWatchBehind }

// eventLog is the Manager's last events, in a ring: publishing one costs
// the same however many watchers there are and however slow they are,
// since each watcher reads the ring at its own pace.
type eventLog struct {
	mu   sync.Mutex
	ring []Event
	next uint64        // the sequence number of the next event
	wake chan struct{} // closed and replaced at every event
}

func newEventLog(size int) *eventLog {
	if size <= 0 {
		size = DefaultEventBuffer
	}
	return &eventLog{ring: make([]Event, size), next: 1, wake: make(chan struct{})}
}

func (l *eventLog) publish(t EventType, st Status) Event {
	l.mu.Lock()
	ev := Event{Seq: l.next, Time: time.Now(), Type: t, Job: st}
	l.ring[l.next%uint64(len(l.ring))] = ev
	l.next++
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
	return ev
}

// oldestLocked is the sequence number of the oldest event kept.
func (l *eventLog) oldestLocked() uint64 {
	if n := uint64(len(l.ring)); l.next > n {
		return l.next - n
	}
	return 1
}

// publishLocked records event t of j. Called with m.mu held, so that the
// events of a job are in the order of its changes.
func (m *Manager) publishLocked(j *job, t EventType) {
	// An event carries the job without its command's arguments and
	// environment: the event buffer holds thousands, and those (up to
	// the request bound each) stay on disk (trim.go); Get has them.
	st := j.st
	st.Args, st.Env = nil, nil
	ev := m.events.publish(t, st)
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(ev)
	}
}

// eventsLocked publishes what changed of j's state since its last event:
// created (a job not yet published), then started, paused, resumed or
// ended. Called by notifyLocked, with m.mu held.
func (m *Manager) eventsLocked(j *job) {
	if j.pubState == "" {
		m.publishLocked(j, EventCreated)
		if j.st.State == StatePending {
			j.pubState = StatePending
			return
		}
		j.pubState = StatePending
	}
	if j.st.State == j.pubState {
		return
	}
	var t EventType
	switch {
	case j.st.State.Ended():
		t = EventEnded
	case j.st.State == StatePaused:
		t = EventPaused
	case j.st.State == StateRunning && j.pubState == StatePaused:
		t = EventResumed
	case j.st.State == StateRunning:
		t = EventStarted
	}
	j.pubState = j.st.State
	if t != "" {
		m.publishLocked(j, t)
	}
}

// Watcher reads a Manager's events that match its filter (WatchEvents).
type Watcher struct {
	l    *eventLog
	f    Filter
	next uint64 // the next event to look at
	max  uint64 // the most events it may be behind
}

// WatchEvents returns a Watcher of the events of the jobs that match f: those
// after event after, or when after is 0, those from now on. An after whose
// following events are no longer kept, or that this server never
// published, is ErrEventsGone.
func (m *Manager) WatchEvents(f Filter, after uint64) (*Watcher, error) {
	l := m.events
	l.mu.Lock()
	defer l.mu.Unlock()
	w := &Watcher{l: l, f: f, next: l.next, max: uint64(len(l.ring)) / 2}
	if after == 0 {
		return w, nil
	}
	if after >= l.next {
		return nil, fmt.Errorf("%w: event %d is newer than the newest, %d (the server restarted since?): watch from now and list the jobs", ErrEventsGone, after, l.next-1)
	}
	if after+1 < l.oldestLocked() {
		return nil, fmt.Errorf("%w: the oldest event kept is %d, after %d: watch from now and list the jobs", ErrEventsGone, l.oldestLocked(), after)
	}
	w.next = after + 1
	// A resumed watcher may fall half the buffer further behind than it
	// starts, short of losing an event.
	w.max = min(w.max+(l.next-w.next), uint64(len(l.ring))-1)
	return w, nil
}

// Next returns the next event that matches, waiting for it until ctx ends.
// A watcher that falls more than half the event buffer behind the newest
// event (one resumed after an older event: that much further than it
// started) gets a *BehindError, and then the same again: it is done.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	l := w.l
	for {
		l.mu.Lock()
		if lag := l.next - w.next; lag > w.max {
			l.mu.Unlock()
			return Event{}, &BehindError{Last: w.next - 1, Lag: lag, Max: w.max}
		}
		if w.next < l.next {
			ev := l.ring[w.next%uint64(len(l.ring))]
			l.mu.Unlock()
			w.next++
			if w.f.match(&ev.Job) {
				return ev, nil
			}
			continue
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}
