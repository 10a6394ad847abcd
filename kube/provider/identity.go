package provider

import (
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The variables that record on a job which pod it runs. They are this
// package's one answer to "which pod is this job": PodEnv writes them,
// PodOf reads them back from a listed job, and nothing else looks at them.
const (
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

// PodEnv is what a job records of the pod it runs.
func PodEnv(pod *corev1.Pod) map[string]string {
	return map[string]string{
		EnvPodNamespace: pod.Namespace,
		EnvPodName:      pod.Name,
		EnvPodUID:       string(pod.UID),
	}
}

// PodOf reads back which pod a job runs; ok is false for a job that no pod
// started.
func PodOf(j *jobworkerv1.Job) (ref PodRef, ok bool) {
	env := j.GetEnv()
	ref = PodRef{Namespace: env[EnvPodNamespace], Name: env[EnvPodName], UID: types.UID(env[EnvPodUID])}
	return ref, ref.Namespace != "" && ref.Name != "" && ref.UID != ""
}
