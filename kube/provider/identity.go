package provider

import (
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The labels that record on a job which pod it runs. They are this
// package's one answer to "which pod is this job": PodLabels writes them,
// PodOf reads them back from a listed job, and nothing else looks at them.
// The job also gets the same in its environment (PodEnv), for the command
// to know its pod, as the downward API would tell it; jobs started before
// the labels existed are recognised by it.
const (
	LabelPodNamespace = "kube.jobworker.io/pod-namespace"
	LabelPodName      = "kube.jobworker.io/pod-name"
	LabelPodUID       = "kube.jobworker.io/pod-uid"

	EnvPodNamespace = "JOBWORKER_KUBE_POD_NAMESPACE"
	EnvPodName      = "JOBWORKER_KUBE_POD_NAME"
	EnvPodUID       = "JOBWORKER_KUBE_POD_UID"
)

// PodRef names a pod: where it is and which incarnation of that name.
type PodRef struct {
	Namespace, Name string
	UID             types.UID
}

// Key is the pod's namespace/name, the key Virtual Kubelet addresses pods
// by.
func (r PodRef) Key() string { return r.Namespace + "/" + r.Name }

// PodLabels are the labels of the job of pod.
func PodLabels(pod *corev1.Pod) map[string]string {
	return map[string]string{
		LabelPodNamespace: pod.Namespace,
		LabelPodName:      pod.Name,
		LabelPodUID:       string(pod.UID),
	}
}

// PodEnv is what a job's environment says of the pod it runs.
func PodEnv(pod *corev1.Pod) map[string]string {
	return map[string]string{
		EnvPodNamespace: pod.Namespace,
		EnvPodName:      pod.Name,
		EnvPodUID:       string(pod.UID),
	}
}

// PodOf reads back which pod a job runs, from its labels (or, for a job
// from before them, its environment); ok is false for a job that no pod
// started.
func PodOf(j *jobworkerv1.Job) (ref PodRef, ok bool) {
	l := j.GetLabels()
	ref = PodRef{Namespace: l[LabelPodNamespace], Name: l[LabelPodName], UID: types.UID(l[LabelPodUID])}
	if ref.UID == "" {
		env := j.GetEnv()
		ref = PodRef{Namespace: env[EnvPodNamespace], Name: env[EnvPodName], UID: types.UID(env[EnvPodUID])}
	}
	return ref, ref.Namespace != "" && ref.Name != "" && ref.UID != ""
}
