package provider

import (
	"fmt"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The reasons the provider gives in a pod's status and conditions.
const (
	// ReasonHostRestarted is the DisruptionTarget condition's reason on a
	// pod whose job was lost because its jobworker host restarted.
	ReasonHostRestarted = "JobworkerHostRestarted"
	// ReasonUnsupported is the pod's reason, and its event's, when the pod
	// asks for what a job cannot do.
	ReasonUnsupported = "Unsupported"
	// ReasonStartFailed is the pod's reason when the host refused the job.
	ReasonStartFailed = "StartFailed"
	// ReasonJobPaused is the reason of a Running pod's Ready condition,
	// False, while its job is paused (jobworker pause).
	ReasonJobPaused = "JobPaused"
	// ReasonJobLost is the pod's reason when its job is no longer on the
	// host (its state directory was cleared, or the job aged out).
	ReasonJobLost = "JobLost"
)

// PodStatus is the status of a pod whose job is j, as a kubelet would
// report it: the phase from the job's state, the container's state with its
// exit code and reason (OOMKilled, DeadlineExceeded, ...), and the
// conditions. A job lost to a host restart is Failed with the
// DisruptionTarget condition, so that a Job's pod failure policy can tell
// it from the command's own failure.
func PodStatus(pod *corev1.Pod, j *jobworkerv1.Job, hostIP string) corev1.PodStatus {
	created := metaTime(j.GetCreateTime())
	st := corev1.PodStatus{
		HostIP:    hostIP,
		HostIPs:   []corev1.HostIP{{IP: hostIP}},
		PodIP:     hostIP,
		PodIPs:    []corev1.PodIP{{IP: hostIP}},
		StartTime: &created,
		QOSClass:  qosClass(pod),
	}
	name := ""
	if len(pod.Spec.Containers) > 0 {
		name = pod.Spec.Containers[0].Name
	}
	cs := corev1.ContainerStatus{
		Name:        name,
		Image:       DefaultImage,
		ImageID:     DefaultImage,
		ContainerID: "jobworker://" + j.GetId(),
	}
	if len(pod.Spec.Containers) > 0 {
		cs.Image = pod.Spec.Containers[0].Image
	}
	ready := false
	switch j.GetState() {
	case jobworkerv1.JobState_JOB_STATE_PENDING:
		st.Phase = corev1.PodPending
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "JobPending", Message: "the job waits on its host for memory or a running slot"}
	case jobworkerv1.JobState_JOB_STATE_RUNNING, jobworkerv1.JobState_JOB_STATE_PAUSED:
		// A paused job (jobworker pause) is still running, frozen: the
		// pod stays Running, its container not ready until it resumes.
		st.Phase = corev1.PodRunning
		started := metaTime(j.GetStartTime())
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: started}
		s := true
		cs.Started = &s
		ready = j.GetState() == jobworkerv1.JobState_JOB_STATE_RUNNING
	default:
		st.Phase, st.Reason, st.Message = finalPhase(j)
		cs.State.Terminated = terminated(j)
		if j.GetReason() == jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED {
			st.Conditions = append(st.Conditions, corev1.PodCondition{
				Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
				Reason: ReasonHostRestarted, Message: "the jobworker host restarted while the job ran",
				LastTransitionTime: metaTime(j.GetEndTime()),
			})
		}
	}
	cs.Ready = ready
	st.ContainerStatuses = []corev1.ContainerStatus{cs}
	readyStatus, readyReason := corev1.ConditionFalse, ""
	if ready {
		readyStatus = corev1.ConditionTrue
	}
	if j.GetState() == jobworkerv1.JobState_JOB_STATE_PAUSED {
		readyReason = ReasonJobPaused
	}
	st.Conditions = append([]corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: created},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: created},
		{Type: corev1.ContainersReady, Status: readyStatus, Reason: readyReason, LastTransitionTime: created},
		{Type: corev1.PodReady, Status: readyStatus, Reason: readyReason, LastTransitionTime: created},
	}, st.Conditions...)
	return st
}

// finalPhase is the phase, reason and message of a pod whose job ended.
func finalPhase(j *jobworkerv1.Job) (corev1.PodPhase, string, string) {
	switch j.GetState() {
	case jobworkerv1.JobState_JOB_STATE_COMPLETED:
		return corev1.PodSucceeded, "", ""
	case jobworkerv1.JobState_JOB_STATE_STOPPED:
		if j.ExitCode != nil && j.GetExitCode() == 0 {
			return corev1.PodSucceeded, "", ""
		}
		return corev1.PodFailed, "Stopped", "the job was stopped"
	}
	switch j.GetReason() {
	case jobworkerv1.FailureReason_FAILURE_REASON_TIMED_OUT:
		return corev1.PodFailed, "DeadlineExceeded", fmt.Sprintf("the job ran longer than activeDeadlineSeconds (%s)", j.GetTimeout().AsDuration())
	case jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED:
		return corev1.PodFailed, ReasonHostRestarted, "the jobworker host restarted while the job ran"
	case jobworkerv1.FailureReason_FAILURE_REASON_EXEC_FAILED:
		return corev1.PodFailed, ReasonStartFailed, j.GetMessage()
	}
	return corev1.PodFailed, "", j.GetMessage()
}

// terminated is the container's state once its job ended. The exit code is
// the command's own, or 128 plus the signal that killed it, as a kubelet
// reports it.
func terminated(j *jobworkerv1.Job) *corev1.ContainerStateTerminated {
	t := &corev1.ContainerStateTerminated{
		StartedAt:   metaTime(j.GetStartTime()),
		FinishedAt:  metaTime(j.GetEndTime()),
		Message:     j.GetMessage(),
		ContainerID: "jobworker://" + j.GetId(),
	}
	switch {
	case j.ExitCode != nil:
		t.ExitCode = j.GetExitCode()
	case j.Signal != nil:
		t.ExitCode = 128 + j.GetSignal()
		t.Signal = j.GetSignal()
	default:
		t.ExitCode = 128 + 9
	}
	switch {
	case j.GetState() == jobworkerv1.JobState_JOB_STATE_COMPLETED:
		t.Reason = "Completed"
	case j.GetReason() == jobworkerv1.FailureReason_FAILURE_REASON_OOM_KILLED:
		t.Reason = "OOMKilled"
	case j.GetReason() == jobworkerv1.FailureReason_FAILURE_REASON_TIMED_OUT:
		t.Reason = "DeadlineExceeded"
	case j.GetReason() == jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED:
		t.Reason = ReasonHostRestarted
	case j.GetReason() == jobworkerv1.FailureReason_FAILURE_REASON_EXEC_FAILED:
		t.Reason = "StartError"
	case j.GetReason() == jobworkerv1.FailureReason_FAILURE_REASON_OUTPUT_LOST:
		t.Reason = "OutputLost"
	case j.GetReason() == jobworkerv1.FailureReason_FAILURE_REASON_DAMAGED:
		t.Reason = "Damaged"
	case j.GetState() == jobworkerv1.JobState_JOB_STATE_STOPPED:
		t.Reason = "Stopped"
	default:
		t.Reason = "Error"
	}
	return t
}

// FailedStatus is the status of a pod that never became a job, or whose
// job is gone: Failed with reason and message, its container terminated.
func FailedStatus(pod *corev1.Pod, reason, message string) corev1.PodStatus {
	now := metav1.Now()
	st := corev1.PodStatus{
		Phase:     corev1.PodFailed,
		Reason:    reason,
		Message:   message,
		StartTime: &now,
		QOSClass:  qosClass(pod),
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: reason, LastTransitionTime: now},
		},
	}
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name:  c.Name,
			Image: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 128, Reason: reason, Message: message, FinishedAt: now,
			}},
		})
	}
	return st
}

// qosClass is the pod's QoS class as the API server computed it; the
// status must carry it, since a status update cannot change it.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	return corev1.PodQOSBestEffort
}

func metaTime(t *timestamppb.Timestamp) metav1.Time {
	if t == nil {
		return metav1.Time{}
	}
	return metav1.NewTime(t.AsTime())
}
