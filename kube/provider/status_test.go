package provider

import (
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
)

// TestPodStatus: each way a job ends is the pod phase, container exit
// code and reason a kubelet would report; a host restart adds the
// DisruptionTarget condition.
func TestPodStatus(t *testing.T) {
	S, R := jobworkerv1.JobState_JOB_STATE_FAILED, jobworkerv1.FailureReason_FAILURE_REASON_UNSPECIFIED
	for _, tt := range []struct {
		name       string
		job        *jobworkerv1.Job
		phase      corev1.PodPhase
		podReason  string
		waiting    bool
		running    bool
		exit       int32
		reason     string
		disruption bool
	}{
		{"pending", &jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_PENDING}, corev1.PodPending, "", true, false, 0, "", false},
		{"running", &jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_RUNNING}, corev1.PodRunning, "", false, true, 0, "", false},
		{"completed", &jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_COMPLETED, ExitCode: proto.Int32(0)}, corev1.PodSucceeded, "", false, false, 0, "Completed", false},
		{"exit 3", &jobworkerv1.Job{State: S, Reason: jobworkerv1.FailureReason_FAILURE_REASON_EXIT_CODE, ExitCode: proto.Int32(3)}, corev1.PodFailed, "", false, false, 3, "Error", false},
		{"signal", &jobworkerv1.Job{State: S, Reason: jobworkerv1.FailureReason_FAILURE_REASON_SIGNAL, Signal: proto.Int32(11)}, corev1.PodFailed, "", false, false, 139, "Error", false},
		{"oom", &jobworkerv1.Job{State: S, Reason: jobworkerv1.FailureReason_FAILURE_REASON_OOM_KILLED, Signal: proto.Int32(9)}, corev1.PodFailed, "", false, false, 137, "OOMKilled", false},
		{"deadline", &jobworkerv1.Job{State: S, Reason: jobworkerv1.FailureReason_FAILURE_REASON_TIMED_OUT, Signal: proto.Int32(9)}, corev1.PodFailed, "DeadlineExceeded", false, false, 137, "DeadlineExceeded", false},
		{"host restarted", &jobworkerv1.Job{State: S, Reason: jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED}, corev1.PodFailed, ReasonHostRestarted, false, false, 137, ReasonHostRestarted, true},
		{"stopped, TERM handled", &jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_STOPPED, ExitCode: proto.Int32(0)}, corev1.PodSucceeded, "", false, false, 0, "Stopped", false},
		{"stopped, killed", &jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_STOPPED, Signal: proto.Int32(15)}, corev1.PodFailed, "Stopped", false, false, 143, "Stopped", false},
		{"unknown reason", &jobworkerv1.Job{State: S, Reason: R}, corev1.PodFailed, "", false, false, 137, "Error", false},
	} {
		pod := testPod()
		st := PodStatus(pod, tt.job, "10.0.0.1")
		if st.Phase != tt.phase || st.Reason != tt.podReason {
			t.Errorf("%s: phase %s reason %q, want %s %q", tt.name, st.Phase, st.Reason, tt.phase, tt.podReason)
		}
		cs := st.ContainerStatuses[0].State
		if (cs.Waiting != nil) != tt.waiting || (cs.Running != nil) != tt.running {
			t.Errorf("%s: container state %+v", tt.name, cs)
		}
		if !tt.waiting && !tt.running {
			if cs.Terminated == nil || cs.Terminated.ExitCode != tt.exit || cs.Terminated.Reason != tt.reason {
				t.Errorf("%s: terminated %+v, want exit %d reason %s", tt.name, cs.Terminated, tt.exit, tt.reason)
			}
		}
		got := false
		for _, c := range st.Conditions {
			if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == ReasonHostRestarted {
				got = true
			}
		}
		if got != tt.disruption {
			t.Errorf("%s: DisruptionTarget %v, want %v", tt.name, got, tt.disruption)
		}
	}
}

// TestPaused: a paused job (jobworker pause) is a Running pod whose
// container runs but is not ready, and the change is one to report both
// ways; the job has not ended, so the pod's watch goes on and deleting the
// pod stops it.
func TestPaused(t *testing.T) {
	pod := testPod()
	running := PodStatus(pod, &jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_RUNNING}, "10.0.0.1")
	paused := PodStatus(pod, &jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_PAUSED}, "10.0.0.1")
	if paused.Phase != corev1.PodRunning || paused.ContainerStatuses[0].State.Running == nil || paused.ContainerStatuses[0].Ready {
		t.Errorf("paused: phase %s, container %+v; want Running, running and not ready", paused.Phase, paused.ContainerStatuses[0])
	}
	for _, c := range paused.Conditions {
		if c.Type == corev1.PodReady && (c.Status != corev1.ConditionFalse || c.Reason != ReasonJobPaused) {
			t.Errorf("paused: Ready %s %q, want False %s", c.Status, c.Reason, ReasonJobPaused)
		}
	}
	if samePhase(running, paused) || samePhase(paused, running) {
		t.Error("samePhase(running, paused): the pause would not be reported")
	}
	if ended(&jobworkerv1.Job{State: jobworkerv1.JobState_JOB_STATE_PAUSED}) {
		t.Error("ended(a paused job) = true")
	}
}
