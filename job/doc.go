// Package job is jobworker's job library: it admits, starts, watches, stops
// and records jobs, each in its own cgroup with its output in a ringlog. It
// knows nothing of gRPC; the server is a thin layer over a Manager.
//
// # Lifecycle
//
//	            Start
//	              │ validate; reject what can never fit
//	              ▼
//	   fits now? ─no─► PENDING ──(FIFO: the head starts when it fits)──┐
//	              │        │                                            │
//	             yes      Stop                                          │
//	              │        ▼                                            │
//	              │     STOPPED                                         │
//	              ▼                                                     │
//	 cgroup + shim + exec ◄─────────────────────────────────────────────┘
//	   │        │
//	   │        └─ exec fails: Start's error, no job left (queued: FAILED exec_failed)
//	   ▼
//	RUNNING ──exit 0──────────────────────────────► COMPLETED
//	   │ ───exit N / signal / OOM kill ────────────► FAILED (exit_code, signal, oom_killed)
//	   │ ───timeout: SIGTERM, grace, cgroup.kill ──► FAILED (timed_out)
//	   │ ───Stop: SIGTERM, grace, cgroup.kill ─────► STOPPED
//	   │ ───output cannot be stored: kill ─────────► FAILED (output_lost)
//	   └────server gone, found at the next Open ───► FAILED (server_restarted)
//
//	a record found unreadable at Open ──────────────► FAILED (damaged)
//
// When the job's main process ends, whatever it left running in its cgroup
// is killed, the output pipe drains to EOF, the final usage is read and the
// cgroup removed; only then is the job's final state recorded.
//
// # Persistence
//
// Each job has a directory <state>/jobs/<id>/ with job.json (rewritten
// atomically on every state change: temporary file, fsync, rename, fsync of
// the job's directory and of jobs/, which names it; see writeRecordSync)
// and output/ (the ringlog's segment files, each fsynced when it is full
// and the last when the job ends). Start syncs a job's record before it
// returns the job, so that a job a client was told of survives a crash.
// The record has types of its own and a format version (record.go);
// one of a newer version than this package reads is left on disk, not
// loaded. Open loads every record; jobs that were PENDING or RUNNING are
// marked FAILED with server_restarted, and every cgroup left under the
// parent is killed and removed, since no job of a fresh Manager runs yet.
// A job damaged on disk never stops Open: it is listed with what can still
// be read and Status.Damaged saying what is wrong, a record that cannot be
// read now but may be later is left alone, and each is reported (damage.go
// has the rules). Retention removes finished jobs past an age or a count.
package job
