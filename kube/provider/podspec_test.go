package provider

import (
	"errors"
	"strings"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestCPUWeight: the kubelet's rule, CPU shares (1024 a CPU, 2-262144) to
// cgroup v2's weight 1-10000, at its boundaries.
func TestCPUWeight(t *testing.T) {
	for _, tt := range []struct {
		q    string
		want uint32
	}{
		{"0", 1},
		{"1m", 1},      // 1 share, raised to 2
		{"2m", 1},      // 2 shares
		{"100m", 4},    // 102 shares
		{"250m", 10},   // 256 shares
		{"1", 39},      // 1024 shares
		{"2", 79},      // 2048 shares
		{"256", 10000}, // 262144 shares
		{"1000", 10000},
	} {
		if got := CPUWeight(resource.MustParse(tt.q)); got != tt.want {
			t.Errorf("CPUWeight(%s) = %d, want %d", tt.q, got, tt.want)
		}
	}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "0b9ee6e5-4e43-4d1b-a6cb-3b3ae0b8e3f1"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "c", Image: DefaultImage, Command: []string{"sh", "-c"}, Args: []string{"echo hi"},
				WorkingDir: "/tmp", Env: []corev1.EnvVar{{Name: "A", Value: "1"}},
			}},
		},
	}
}

// TestJobRequest: a pod of one container becomes its job: command and
// arguments, env with the pod's identity, working directory, limits,
// deadline, and the pod's UID as the request ID.
func TestJobRequest(t *testing.T) {
	pod := testPod()
	c := &pod.Spec.Containers[0]
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("1500m")}
	c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("32Mi")}
	d := int64(7)
	pod.Spec.ActiveDeadlineSeconds = &d
	pod.Annotations = map[string]string{AnnotationPidsLimit: "50", AnnotationIOWeight: "200"}
	req, err := JobRequest(pod, DefaultImage)
	if err != nil {
		t.Fatal(err)
	}
	if req.GetCommand() != "sh" || strings.Join(req.GetArgs(), "|") != "-c|echo hi" || req.GetWorkingDir() != "/tmp" {
		t.Errorf("JobRequest: command %q args %q dir %q", req.GetCommand(), req.GetArgs(), req.GetWorkingDir())
	}
	if req.GetRequestId() != string(pod.UID) {
		t.Errorf("JobRequest: request_id %q, want the pod's UID", req.GetRequestId())
	}
	env := req.GetEnv()
	if env["A"] != "1" || env[EnvPodNamespace] != "ns" || env[EnvPodName] != "p" || env[EnvPodUID] != string(pod.UID) {
		t.Errorf("JobRequest: env %v", env)
	}
	if l := req.GetLabels(); len(l) != 3 || l[LabelPodNamespace] != "ns" || l[LabelPodName] != "p" || l[LabelPodUID] != string(pod.UID) {
		t.Errorf("JobRequest: labels %v, want the pod's namespace, name and UID", l)
	}
	job := &jobworkerv1.Job{Labels: req.GetLabels()}
	if ref, ok := PodOf(job); !ok || ref.Key() != "ns/p" || ref.UID != pod.UID {
		t.Errorf("PodOf(a job with the labels) = %v, %v", ref, ok)
	}
	old := &jobworkerv1.Job{Env: PodEnv(pod)}
	if ref, ok := PodOf(old); !ok || ref.Key() != "ns/p" {
		t.Errorf("PodOf(a job from before the labels, its pod in its env) = %v, %v", ref, ok)
	}
	if _, ok := PodOf(&jobworkerv1.Job{}); ok {
		t.Error("PodOf(a job no pod started) = ok")
	}
	l := req.GetLimits()
	if l.GetMemoryMaxBytes() != 64<<20 || l.GetCpus() != 1.5 || l.GetCpuWeight() != 39 || l.GetPidsMax() != 50 || l.GetIoWeight() != 200 {
		t.Errorf("JobRequest: limits %v", l)
	}
	if req.GetTimeout().AsDuration().Seconds() != 7 {
		t.Errorf("JobRequest: timeout %v, want 7s", req.GetTimeout().AsDuration())
	}
	// A memory request alone places the pod; it sets no limit.
	pod = testPod()
	pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}
	if req, err := JobRequest(pod, DefaultImage); err != nil || req.GetLimits().MemoryMaxBytes != nil {
		t.Errorf("JobRequest(memory request only) = %v, %v; want no memory limit", req.GetLimits(), err)
	}
}

// TestJobRequestRefused: what a job cannot do is refused with a reason
// that names it; the service-account token volume is accepted.
func TestJobRequestRefused(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*corev1.Pod)
		want   string // in the reason
	}{
		{"two containers", func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) }, "2 containers"},
		{"no container", func(p *corev1.Pod) { p.Spec.Containers = nil }, "0 containers"},
		{"init container", func(p *corev1.Pod) { p.Spec.InitContainers = p.Spec.Containers }, "init containers"},
		{"restart always", func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyAlways }, "restartPolicy is Always"},
		{"volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, `volume "data"`},
		{"image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "busybox" }, `image "busybox"`},
		{"no command", func(p *corev1.Pod) { p.Spec.Containers[0].Command = nil }, "no command"},
		{"ports", func(p *corev1.Pod) { p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80}} }, "ports"},
		{"probe", func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{} }, "probes"},
		{"gpu", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}
		}, "limits nvidia.com/gpu"},
		{"pids annotation", func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationPidsLimit: "0"} }, AnnotationPidsLimit},
		{"io annotation", func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationIOWeight: "10001"} }, AnnotationIOWeight},
	} {
		pod := testPod()
		tt.change(pod)
		_, err := JobRequest(pod, DefaultImage)
		var r *RefusedError
		if !errors.As(err, &r) || !strings.Contains(r.Reason, tt.want) {
			t.Errorf("%s: JobRequest = %v, want a RefusedError naming %q", tt.name, err, tt.want)
		}
	}
	pod := testPod()
	pod.Spec.Volumes = []corev1.Volume{{Name: "kube-api-access-x1y2z", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}, {ConfigMap: &corev1.ConfigMapProjection{}}},
	}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "kube-api-access-x1y2z", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}
	if _, err := JobRequest(pod, DefaultImage); err != nil {
		t.Errorf("JobRequest(service-account token volume) = %v, want it accepted", err)
	}
}
