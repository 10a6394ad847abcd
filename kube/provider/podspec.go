package provider

import (
	"fmt"
	"strconv"
	"strings"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"time"
)

// DefaultImage is the placeholder image a pod names for its one
// container: a job runs a command of the host, never an image, so any other
// image is refused rather than silently not pulled.
const DefaultImage = "jobworker.dev/job"

// The annotations that set the limits a pod's resources cannot express.
const (
	AnnotationPidsLimit = "jobworker.dev/pids-limit"
	AnnotationIOWeight  = "jobworker.dev/io-weight"
)

// RefusedError says why a pod cannot be run as a job; its message is the
// pod event's.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

func refused(format string, a ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, a...)}
}

// JobRequest turns a pod into the StartJobRequest that runs it, or says with
// a *RefusedError what of the pod a job cannot do. image is the placeholder
// image the pod must name. The request's request_id is the pod's UID, so a
// start the provider repeats (after its own restart, or a lost answer)
// returns the first job instead of starting a second one.
func JobRequest(pod *corev1.Pod, image string) (*jobworkerv1.StartJobRequest, error) {
	spec := &pod.Spec
	switch {
	case len(spec.Containers) != 1:
		return nil, refused("the pod has %d containers: a job runs exactly one", len(spec.Containers))
	case len(spec.InitContainers) > 0:
		return nil, refused("the pod has init containers: a job runs exactly one container")
	case len(spec.EphemeralContainers) > 0:
		return nil, refused("the pod has ephemeral containers: a job runs exactly one container")
	case spec.RestartPolicy != corev1.RestartPolicyNever:
		return nil, refused("restartPolicy is %s: a job runs its command once; use restartPolicy: Never (a batch/v1 Job retries a failed pod)", spec.RestartPolicy)
	}
	for _, v := range spec.Volumes {
		if !isServiceAccountToken(v) {
			return nil, refused("the pod has volume %q: a job has no volumes (only the service-account token's, which it ignores, is accepted)", v.Name)
		}
	}
	c := &spec.Containers[0]
	switch {
	case c.Image != image:
		return nil, refused("container %q has image %q: a job runs a command of the host, so the image must be the placeholder %q", c.Name, c.Image, image)
	case len(c.Command) == 0:
		return nil, refused("container %q has no command: a job needs the program to run (an image's entrypoint means nothing here)", c.Name)
	case len(c.Ports) > 0:
		return nil, refused("container %q has ports: a job's network is the host's and jobworker does not map ports", c.Name)
	case c.LivenessProbe != nil || c.ReadinessProbe != nil || c.StartupProbe != nil:
		return nil, refused("container %q has probes: jobworker does not run probes", c.Name)
	case c.Lifecycle != nil:
		return nil, refused("container %q has lifecycle hooks: jobworker does not run them", c.Name)
	case c.Stdin || c.TTY:
		return nil, refused("container %q asks for stdin or a TTY: a job has neither", c.Name)
	case len(c.EnvFrom) > 0:
		return nil, refused("container %q has envFrom: name each variable in env instead", c.Name)
	}
	for _, m := range c.VolumeMounts {
		if !isTokenMount(spec, m) {
			return nil, refused("container %q mounts volume %q: a job has no volumes", c.Name, m.Name)
		}
	}
	req := &jobworkerv1.StartJobRequest{
		Command:    c.Command[0],
		Args:       append(append([]string{}, c.Command[1:]...), c.Args...),
		Env:        map[string]string{},
		WorkingDir: c.WorkingDir,
		RequestId:  string(pod.UID),
		Labels:     PodLabels(pod),
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			return nil, refused("variable %s of container %q comes from %s, which was not resolved: give it a value", e.Name, c.Name, valueFromKind(e.ValueFrom))
		}
		req.Env[e.Name] = e.Value
	}
	for k, v := range PodEnv(pod) {
		req.Env[k] = v
	}
	limits, err := jobLimits(pod, c)
	if err != nil {
		return nil, err
	}
	req.Limits = limits
	if d := spec.ActiveDeadlineSeconds; d != nil && *d > 0 {
		req.Timeout = durationpb.New(time.Duration(*d) * time.Second)
	}
	return req, nil
}

// jobLimits maps a container's resources and the pod's annotations to a
// job's limits. Requests place the pod (the scheduler counts them against
// the node's allocatable); limits bound the job.
func jobLimits(pod *corev1.Pod, c *corev1.Container) (*jobworkerv1.Limits, error) {
	l := &jobworkerv1.Limits{}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		l.MemoryMaxBytes = proto.Uint64(uint64(q.Value()))
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		l.Cpus = proto.Float64(float64(q.MilliValue()) / 1000)
	}
	if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		l.CpuWeight = proto.Uint32(CPUWeight(q))
	}
	for name := range c.Resources.Limits {
		switch name {
		case corev1.ResourceMemory, corev1.ResourceCPU:
		default:
			return nil, refused("container %q limits %s: a job can limit only cpu and memory (pids and io through the %s and %s annotations)", c.Name, name, AnnotationPidsLimit, AnnotationIOWeight)
		}
	}
	if s, ok := pod.Annotations[AnnotationPidsLimit]; ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			return nil, refused("annotation %s=%q: want a positive number of processes", AnnotationPidsLimit, s)
		}
		l.PidsMax = proto.Uint64(n)
	}
	if s, ok := pod.Annotations[AnnotationIOWeight]; ok {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n < 1 || n > 10000 {
			return nil, refused("annotation %s=%q: want a weight of 1-10000", AnnotationIOWeight, s)
		}
		l.IoWeight = proto.Uint32(uint32(n))
	}
	return l, nil
}

// CPUWeight is the cpu.weight the kubelet gives a container that requests
// q of CPU: the request in CPU shares (1024 a CPU, at least 2 and at most
// 262144), mapped linearly onto cgroup v2's weights 1-10000 the way the
// kubelet and runc do (1 + (shares-2)*9999/262142).
func CPUWeight(q resource.Quantity) uint32 {
	const minShares, maxShares = 2, 262144
	shares := q.MilliValue() * 1024 / 1000
	shares = min(max(shares, minShares), maxShares)
	return uint32(1 + (shares-minShares)*9999/(maxShares-minShares))
}

// isServiceAccountToken tells the volume the service-account admission
// adds to every pod (kube-api-access-*: a projected token, the cluster's
// CA and the namespace), which a job does not need and the provider
// ignores.
func isServiceAccountToken(v corev1.Volume) bool {
	if v.Projected == nil || !strings.HasPrefix(v.Name, "kube-api-access-") {
		return false
	}
	for _, s := range v.Projected.Sources {
		if s.ServiceAccountToken == nil && s.ConfigMap == nil && s.DownwardAPI == nil {
			return false
		}
	}
	return true
}

func isTokenMount(spec *corev1.PodSpec, m corev1.VolumeMount) bool {
	for _, v := range spec.Volumes {
		if v.Name == m.Name {
			return isServiceAccountToken(v)
		}
	}
	return false
}

func valueFromKind(s *corev1.EnvVarSource) string {
	switch {
	case s.FieldRef != nil:
		return "a field reference"
	case s.ResourceFieldRef != nil:
		return "a resource field reference"
	case s.ConfigMapKeyRef != nil:
		return "a config map"
	case s.SecretKeyRef != nil:
		return "a secret"
	}
	return "a reference"
}
