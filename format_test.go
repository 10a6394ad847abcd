//go:build !integration

package main

import (
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

func TestOutcome(t *testing.T) {
	code, sig := int32(3), int32(9)
	tests := []struct {
		j    *jobworkerv1.Job
		want string
	}{
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_RUNNING}, "running"},
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: jobworkerv1.FailureReason_FAILURE_REASON_EXIT_CODE, ExitCode: &code}, "failed (exit code 3)"},
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: jobworkerv1.FailureReason_FAILURE_REASON_OOM_KILLED, Signal: &sig}, "failed (oom_killed, signal 9)"},
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_FAILED, Reason: jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED}, "failed (server_restarted)"},
		{&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_STOPPED, Signal: &sig}, "stopped (signal 9)"},
	}
	for _, tt := range tests {
		if got := outcome(tt.j); got != tt.want {
			t.Errorf("outcome(%v) = %q, want %q", tt.j, got, tt.want)
		}
	}
}
