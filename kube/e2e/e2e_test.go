//go:build integration

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/client"
	"github.com/jobworker/jobworker/internal/testchild"
	"github.com/jobworker/jobworker/kube/provider"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	stats "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

const ns = "default"

// podSpec is a pod spec of one container running script with sh, that
// tolerates the jobworker nodes' taint.
func podSpec(script string) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Tolerations:   []corev1.Toleration{{Key: provider.Taint.Key, Operator: corev1.TolerationOpEqual, Value: provider.Taint.Value, Effect: provider.Taint.Effect}},
		Containers:    []corev1.Container{{Name: "job", Image: provider.DefaultImage, Command: []string{"sh", "-c", script}}},
	}
}

// createPod creates a pod named after the test and returns it.
func createPod(t *testing.T, name string, spec corev1.PodSpec, change ...func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	for _, f := range change {
		f(pod)
	}
	pod, err := cluster.kube.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		cluster.kube.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	return pod
}

// waitPod waits up to timeout until ok holds of the pod, and returns it.
func waitPod(t *testing.T, name string, timeout time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *corev1.Pod
	for time.Now().Before(deadline) {
		pod, err := cluster.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			last = pod
			if ok(pod) {
				return pod
			}
		}
		if err := cluster.exited(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last.Status, "", "  ")
	t.Fatalf("pod %s: not %s within %s; its status:\n%s", name, what, timeout, b)
	return nil
}

func phaseIs(p corev1.PodPhase) func(*corev1.Pod) bool {
	return func(pod *corev1.Pod) bool { return pod.Status.Phase == p }
}

// terminated is the pod's container's final state.
func terminated(t *testing.T, pod *corev1.Pod) *corev1.ContainerStateTerminated {
	t.Helper()
	if len(pod.Status.ContainerStatuses) != 1 || pod.Status.ContainerStatuses[0].State.Terminated == nil {
		t.Fatalf("pod %s: container status %+v, want one terminated container", pod.Name, pod.Status.ContainerStatuses)
	}
	return pod.Status.ContainerStatuses[0].State.Terminated
}

// logs reads the pod's logs through the API server's log endpoint.
func logs(t *testing.T, name string, opts *corev1.PodLogOptions) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, err := cluster.kube.CoreV1().Pods(ns).GetLogs(name, opts).Stream(ctx)
	if err != nil {
		t.Fatalf("logs of pod %s (%+v): %v", name, opts, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("logs of pod %s (%+v): %v", name, opts, err)
	}
	return b
}

// TestExitCodeAndLogs: `sh -c 'echo hi; exit 3'` is pod Failed, its
// container terminated with exit code 3, and its logs exactly "hi\n".
func TestExitCodeAndLogs(t *testing.T) {
	createPod(t, "exit3", podSpec("echo hi; exit 3"))
	pod := waitPod(t, "exit3", time.Minute, "Failed", phaseIs(corev1.PodFailed))
	if term := terminated(t, pod); term.ExitCode != 3 || term.Reason != "Error" {
		t.Errorf("pod exit3: terminated with exit code %d reason %q, want 3 Error", term.ExitCode, term.Reason)
	}
	if got := logs(t, "exit3", &corev1.PodLogOptions{}); string(got) != "hi\n" {
		t.Errorf("logs of pod exit3 = %q, want %q", got, "hi\n")
	}
}

// TestDeadlineExceeded: activeDeadlineSeconds is the job's timeout; the
// pod is Failed with reason DeadlineExceeded.
func TestDeadlineExceeded(t *testing.T) {
	d := int64(1)
	createPod(t, "deadline", podSpec("sleep 30"), func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = &d })
	pod := waitPod(t, "deadline", time.Minute, "Failed", phaseIs(corev1.PodFailed))
	if pod.Status.Reason != "DeadlineExceeded" || terminated(t, pod).Reason != "DeadlineExceeded" {
		t.Errorf("pod deadline: reason %q, container reason %q; want DeadlineExceeded for both", pod.Status.Reason, terminated(t, pod).Reason)
	}
}

// memoryRequest sets the container's memory request.
func memoryRequest(q string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(q)}
	}
}

// TestPlacement: the nodes offer what the hosts' GetServerStatus says (1
// and 4 GiB, and the host's CPUs); a pod that requests 2 GiB lands on the host that has room,
// and one that requests 8 GiB fits no host and stays Pending,
// Unschedulable.
func TestPlacement(t *testing.T) {
	for name, want := range map[string]string{hostSmall: "1Gi", hostLarge: "4Gi"} {
		n, err := cluster.kube.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := n.Status.Allocatable[corev1.ResourceMemory]
		if got.Cmp(resource.MustParse(want)) != 0 {
			t.Errorf("node %s: allocatable memory %s, want %s", name, got.String(), want)
		}
		// The servers run here, with this process's CPU affinity.
		if cpu := n.Status.Capacity[corev1.ResourceCPU]; cpu.Value() != int64(runtime.NumCPU()) {
			t.Errorf("node %s: CPU capacity %s, want the host's %d CPUs", name, cpu.String(), runtime.NumCPU())
		}
	}
	for i := range 3 {
		name := fmt.Sprintf("place-%d", i)
		createPod(t, name, podSpec("true"), memoryRequest("2Gi"))
		pod := waitPod(t, name, time.Minute, "Succeeded", phaseIs(corev1.PodSucceeded))
		if pod.Spec.NodeName != hostLarge {
			t.Errorf("pod %s (2Gi) ran on %s, want %s, the only host with room", name, pod.Spec.NodeName, hostLarge)
		}
	}
	createPod(t, "too-big", podSpec("true"), memoryRequest("8Gi"))
	pod := waitPod(t, "too-big", time.Minute, "Unschedulable", func(p *corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return true
			}
		}
		return false
	})
	if pod.Status.Phase != corev1.PodPending || pod.Spec.NodeName != "" {
		t.Errorf("pod too-big: phase %s on %q, want Pending on no node", pod.Status.Phase, pod.Spec.NodeName)
	}
}

// TestLogOptions: follow, tail and limitBytes through the API server's log
// endpoint (client-go GetLogs), byte-exact for binary output.
func TestLogOptions(t *testing.T) {
	data := make([]byte, 300<<10)
	rand.Read(data)
	// Where the job, an unprivileged user with a /tmp of its own, can read.
	file := filepath.Join(testchild.PublicDir(t), "data")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Follow, from before the job wrote everything to its end.
	createPod(t, "logs-follow", podSpec(fmt.Sprintf("sleep 1; head -c 100000 %s; sleep 1; tail -c +100001 %s", file, file)))
	waitPod(t, "logs-follow", time.Minute, "Running", phaseIs(corev1.PodRunning))
	if got := logs(t, "logs-follow", &corev1.PodLogOptions{Follow: true}); !bytes.Equal(got, data) {
		t.Errorf("followed logs: %d bytes, want the %d bytes written, byte for byte (equal prefix: %d)", len(got), len(data), commonPrefix(got, data))
	}
	waitPod(t, "logs-follow", time.Minute, "Succeeded", phaseIs(corev1.PodSucceeded))
	if got := logs(t, "logs-follow", &corev1.PodLogOptions{}); !bytes.Equal(got, data) {
		t.Errorf("logs: %d bytes, want the %d bytes written", len(got), len(data))
	}
	limit := int64(1000)
	if got := logs(t, "logs-follow", &corev1.PodLogOptions{LimitBytes: &limit}); !bytes.Equal(got, data[:limit]) {
		t.Errorf("logs with limitBytes 1000: %d bytes, want the first 1000", len(got))
	}
	createPod(t, "logs-tail", podSpec(`printf 'one\ntwo\nthree\nfour'`))
	waitPod(t, "logs-tail", time.Minute, "Succeeded", phaseIs(corev1.PodSucceeded))
	for _, tt := range []struct {
		tail int64
		want string
	}{{0, ""}, {1, "four"}, {2, "three\nfour"}, {4, "one\ntwo\nthree\nfour"}, {10, "one\ntwo\nthree\nfour"}} {
		if got := logs(t, "logs-tail", &corev1.PodLogOptions{TailLines: &tt.tail}); string(got) != tt.want {
			t.Errorf("logs with tailLines %d = %q, want %q", tt.tail, got, tt.want)
		}
	}
	tl, lb := int64(2), int64(3)
	if got := logs(t, "logs-tail", &corev1.PodLogOptions{TailLines: &tl, LimitBytes: &lb}); string(got) != "thr" {
		t.Errorf("logs with tailLines 2 and limitBytes 3 = %q, want %q", got, "thr")
	}
}

// TestLogTimestampsSince: timestamps and since through the API server's
// log endpoint, from the host's time index. The pod writes a line, waits
// for a gate, and writes another; the gate opens after a whole second
// (sinceTime travels in whole seconds) that starts after the first line
// was read: each line gets the time its first byte arrived, the first
// before that second and the second after it, and sinceTime at that
// second leaves only the second line.
func TestLogTimestampsSince(t *testing.T) {
	gate := filepath.Join(testchild.PublicDir(t), "gate")
	createPod(t, "logs-times", podSpec(fmt.Sprintf("echo early; while [ ! -e %s ]; do sleep 0.05; done; echo late", gate)))
	waitPod(t, "logs-times", time.Minute, "Running", phaseIs(corev1.PodRunning))
	deadline := time.Now().Add(time.Minute)
	for string(logs(t, "logs-times", &corev1.PodLogOptions{})) != "early\n" {
		if time.Now().After(deadline) {
			t.Fatal("pod logs-times did not write its first line")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The next whole second at least 200 ms on: the host's index gives a
	// write its own time after a pause of 100 ms.
	cut := time.Now().Add(200 * time.Millisecond).Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(cut)) // for the clock to pass cut, not for another process
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitPod(t, "logs-times", time.Minute, "Succeeded", phaseIs(corev1.PodSucceeded))

	stamped := string(logs(t, "logs-times", &corev1.PodLogOptions{Timestamps: true}))
	lines := strings.SplitAfter(stamped, "\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("logs with timestamps = %q, want two lines", stamped)
	}
	var at [2]time.Time
	for i, want := range []string{"early\n", "late\n"} {
		ts, text, ok := strings.Cut(lines[i], " ")
		when, err := time.Parse(client.TimestampLayout, ts)
		if !ok || err != nil || text != want || len(ts) != len(client.TimestampLayout)-len("Z07:00")+1 {
			t.Fatalf("logs with timestamps: line %d = %q, want %q after an RFC 3339 time with nine digits (%v)", i, lines[i], want, err)
		}
		at[i] = when
	}
	if !at[0].Before(cut) || at[1].Before(cut) {
		t.Errorf("logs with timestamps: early at %s, late at %s; want early before %s and late at or after it", at[0], at[1], cut)
	}
	since := metav1.NewTime(cut)
	if got := logs(t, "logs-times", &corev1.PodLogOptions{SinceTime: &since}); string(got) != "late\n" {
		t.Errorf("logs with sinceTime %s = %q, want %q", cut, got, "late\n")
	}
	if got := logs(t, "logs-times", &corev1.PodLogOptions{SinceTime: &since, Timestamps: true}); string(got) != lines[1] {
		t.Errorf("logs with sinceTime and timestamps = %q, want %q", got, lines[1])
	}
	hour := int64(3600)
	if got := logs(t, "logs-times", &corev1.PodLogOptions{SinceSeconds: &hour}); string(got) != "early\nlate\n" {
		t.Errorf("logs with sinceSeconds 3600 = %q, want all of it", got)
	}
	// limitBytes counts the prefixes too, as a kubelet's does.
	limit := int64(len(lines[0]) + 4)
	if got := logs(t, "logs-times", &corev1.PodLogOptions{Timestamps: true, LimitBytes: &limit}); string(got) != stamped[:limit] {
		t.Errorf("logs with timestamps and limitBytes %d = %q, want %q", limit, got, stamped[:limit])
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestDeleteWithGrace: deleting a running pod with a 2 s grace stops its
// job with that grace: the job is STOPPED and its TERM handler, which takes
// a second, ran to its end (what it printed is in the job's output), which
// the hosts' own default grace (stopGrace, 500 ms) would not have let it.
func TestDeleteWithGrace(t *testing.T) {
	pod := createPod(t, "grace", podSpec(`trap 'sleep 1; echo got TERM; exit 0' TERM; echo started; while :; do sleep 0.1; done`))
	waitPod(t, "grace", time.Minute, "Running", phaseIs(corev1.PodRunning))
	grace := int64(2)
	if err := cluster.kube.CoreV1().Pods(ns).Delete(context.Background(), "grace", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		jobs := cluster.jobsOf(t, string(pod.UID))
		if len(jobs) != 1 {
			t.Fatalf("pod grace has %d jobs, want 1", len(jobs))
		}
		j := jobs[0]
		if j.GetState() == jobworkerv1.JobState_JOB_STATE_STOPPED {
			// sh may say "Terminated" of its sleep, which got the SIGTERM too.
			out := jobOutput(t, j)
			if !strings.HasPrefix(out, "started\n") || !strings.HasSuffix(out, "got TERM\n") {
				t.Errorf("the stopped job's output = %q, want %q, then the TERM handler's %q", out, "started\n", "got TERM\n")
			}
			if j.ExitCode == nil || j.GetExitCode() != 0 {
				t.Errorf("the stopped job: exit code set %v (%d), signal %d, want exit 0 from the TERM handler", j.ExitCode != nil, j.GetExitCode(), j.GetSignal())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job of the deleted pod is %s, want STOPPED", j.GetState())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jobOutput reads a job's whole output from its host.
func jobOutput(t *testing.T, j *jobworkerv1.Job) string {
	t.Helper()
	for _, h := range cluster.hosts {
		st, err := h.conn.GetJobOutput(context.Background(), &jobworkerv1.GetJobOutputRequest{Id: j.GetId()})
		if err != nil {
			continue
		}
		var b bytes.Buffer
		for {
			r, err := st.Recv()
			if err != nil {
				break
			}
			b.Write(r.GetData())
		}
		if b.Len() > 0 {
			return b.String()
		}
	}
	return ""
}

// TestRefused: a pod that asks for what a job cannot do fails, with a
// warning event whose message names the reason: two containers, a volume,
// and a limit whose cgroup controller this host lacks (the host refuses the
// job, naming the controller).
func TestRefused(t *testing.T) {
	two := podSpec("true")
	two.Containers = append(two.Containers, corev1.Container{Name: "second", Image: provider.DefaultImage, Command: []string{"true"}})
	vol := podSpec("true")
	vol.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	vol.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	limit, controller := limitWithoutController(t)
	for _, tt := range []struct {
		name, reason, want string
		spec               corev1.PodSpec
	}{
		{"refuse-two", provider.ReasonUnsupported, "2 containers", two},
		{"refuse-volume", provider.ReasonUnsupported, `volume "scratch"`, vol},
		{"refuse-limit", provider.ReasonStartFailed, controller, limit},
	} {
		createPod(t, tt.name, tt.spec)
		pod := waitPod(t, tt.name, time.Minute, "Failed", phaseIs(corev1.PodFailed))
		if pod.Status.Reason != tt.reason || !strings.Contains(pod.Status.Message, tt.want) {
			t.Errorf("pod %s: reason %q message %q, want %s naming %q", tt.name, pod.Status.Reason, pod.Status.Message, tt.reason, tt.want)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			evs, err := cluster.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
				FieldSelector: fields.Set{"involvedObject.name": tt.name, "involvedObject.uid": string(pod.UID)}.String()})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range evs.Items {
				if e.Type == corev1.EventTypeWarning && e.Reason == tt.reason && strings.Contains(e.Message, tt.want) {
					found = true
				}
			}
			if found {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("pod %s: no warning event %s naming %q; events: %+v", tt.name, tt.reason, tt.want, evs.Items)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if jobs := cluster.jobsOf(t, string(pod.UID)); tt.reason == provider.ReasonUnsupported && len(jobs) != 0 {
			t.Errorf("pod %s was refused but has %d jobs", tt.name, len(jobs))
		}
	}
}

// kubeletGet reads path from the kubelet API of node name as
// metrics-server does for `kubectl top`: directly, over TLS, with a client
// certificate of the CA the API server's kubelet client certificate is
// from.
func kubeletGet(t *testing.T, name, path string) []byte {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join(cluster.dir, "kubelet-client.crt"), filepath.Join(cluster.dir, "kubelet-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(cluster.kubeletAPI)
	p, _ := strconv.Atoi(port)
	if name == hostLarge {
		p++ // the second --node
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{kp}, InsecureSkipVerify: true}}}
	resp, err := c.Get("https://" + net.JoinHostPort(host, strconv.Itoa(p)) + path)
	if err != nil {
		t.Fatalf("kubelet API of %s: GET %s: %v", name, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("kubelet API of %s: GET %s: %s %v %s", name, path, resp.Status, err, b)
	}
	return b
}

// limitWithoutController is a pod spec asking for a limit whose cgroup
// controller the hosts lack, and the controller's name, which the host's
// refusal names. Where the hosts have every controller the pod asks for a
// memory limit no host can ever hold, which the host refuses naming memory.
func limitWithoutController(t *testing.T) (corev1.PodSpec, string) {
	t.Helper()
	have := map[string]bool{}
	for _, h := range cluster.hosts {
		st, err := h.conn.GetServerStatus(context.Background(), &jobworkerv1.GetServerStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.GetCgroupControllers() {
			have[c] = true
		}
	}
	spec := podSpec("true")
	c := &spec.Containers[0]
	switch {
	case !have["memory"]:
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
		return spec, "memory"
	case !have["cpu"]:
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
		return spec, "cpu"
	}
	// A small request, or the limit would be the request, which no node
	// offers, and the pod would never be placed.
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Gi")}
	c.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")}
	return spec, "memory"
}

// TestStats: the kubelet API's stats summary, which `kubectl top` reads
// through metrics-server, answers with the running job's CPU usage, and
// /metrics/resource with its CPU time; a client without the API server's
// client certificate is refused.
func TestStats(t *testing.T) {
	d := int64(60)
	createPod(t, "busy", podSpec("while :; do :; done"), func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = &d })
	pod := waitPod(t, "busy", time.Minute, "Running", phaseIs(corev1.PodRunning))
	deadline := time.Now().Add(30 * time.Second)
	for {
		body := kubeletGet(t, pod.Spec.NodeName, "/stats/summary")
		var sum stats.Summary
		if err := json.Unmarshal(body, &sum); err != nil {
			t.Fatalf("stats summary: %v", err)
		}
		var cpu, rate uint64
		for _, ps := range sum.Pods {
			if ps.PodRef.UID == string(pod.UID) && ps.CPU != nil && ps.CPU.UsageCoreNanoSeconds != nil {
				cpu, rate = *ps.CPU.UsageCoreNanoSeconds, *ps.CPU.UsageNanoCores
			}
		}
		if cpu > 100e6 && rate > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats summary: pod busy used %d ns of CPU (%d nanocores) after 30 s, want more than 0.1 s; summary: %s", cpu, rate, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	body := kubeletGet(t, pod.Spec.NodeName, "/metrics/resource")
	for _, series := range []string{
		`pod_cpu_usage_seconds_total{namespace="default",pod="busy"}`,
		`container_cpu_usage_seconds_total{container="job",namespace="default",pod="busy"}`,
		`container_start_time_seconds{container="job",namespace="default",pod="busy"}`,
	} {
		if !strings.Contains(string(body), series) {
			t.Errorf("metrics/resource has no %s:\n%s", series, body)
		}
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := c.Get("https://" + cluster.kubeletAPI + "/stats/summary"); err == nil {
		resp.Body.Close()
		t.Errorf("kubelet API without a client certificate: %s, want the TLS handshake refused", resp.Status)
	}
}

// TestProviderRestart: jobworker-kube is killed and started again. It
// finds its pods' jobs on the hosts: no pod runs twice, every pod's status
// is right again, also of a job that ended while it was down and of one
// that runs on and ends after it is back, and the job of a pod deleted
// while it was down is stopped.
func TestProviderRestart(t *testing.T) {
	gate := filepath.Join(testchild.PublicDir(t), "gate")
	long := createPod(t, "restart-long", podSpec("sleep 4; echo done"))
	quick := createPod(t, "restart-quick", podSpec("echo quick"))
	orphan := createPod(t, "restart-orphan", podSpec("sleep 300"))
	gated := createPod(t, "restart-gated", podSpec(fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; echo gated", gate)))
	waitPod(t, "restart-long", time.Minute, "Running", phaseIs(corev1.PodRunning))
	waitPod(t, "restart-quick", time.Minute, "Succeeded", phaseIs(corev1.PodSucceeded))
	waitPod(t, "restart-orphan", time.Minute, "Running", phaseIs(corev1.PodRunning))
	waitPod(t, "restart-gated", time.Minute, "Running", phaseIs(corev1.PodRunning))
	cluster.provider.kill(syscall.SIGKILL)
	// A pod deleted while no provider runs (forcibly: no kubelet answers).
	zero := int64(0)
	if err := cluster.kube.CoreV1().Pods(ns).Delete(context.Background(), "restart-orphan", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	// The long pod's job ends while no provider watches it.
	jobs := cluster.jobsOf(t, string(long.UID))
	if len(jobs) != 1 {
		t.Fatalf("pod restart-long has %d jobs, want 1", len(jobs))
	}
	deadline := time.Now().Add(time.Minute)
	for cluster.jobsOf(t, string(long.UID))[0].GetState() == jobworkerv1.JobState_JOB_STATE_RUNNING {
		if time.Now().After(deadline) {
			t.Fatal("the job of pod restart-long did not end")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if p, _ := cluster.kube.CoreV1().Pods(ns).Get(context.Background(), "restart-long", metav1.GetOptions{}); p.Status.Phase != corev1.PodRunning {
		t.Fatalf("pod restart-long is %s with no provider running, want still Running", p.Status.Phase)
	}
	cluster.provider = cluster.providerFn()
	pod := waitPod(t, "restart-long", time.Minute, "Succeeded after the restart", phaseIs(corev1.PodSucceeded))
	if term := terminated(t, pod); term.ExitCode != 0 || term.Reason != "Completed" {
		t.Errorf("pod restart-long: exit %d reason %q, want 0 Completed", term.ExitCode, term.Reason)
	}
	waitPod(t, "restart-quick", 10*time.Second, "Succeeded", phaseIs(corev1.PodSucceeded))
	// The provider is back (it has told of restart-long's end): the gated
	// pod's job, still running, ends now, and its status follows.
	if p, _ := cluster.kube.CoreV1().Pods(ns).Get(context.Background(), "restart-gated", metav1.GetOptions{}); p.Status.Phase != corev1.PodRunning {
		t.Fatalf("pod restart-gated is %s before its gate opened, want Running", p.Status.Phase)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pod = waitPod(t, "restart-gated", time.Minute, "Succeeded after its gate opened", phaseIs(corev1.PodSucceeded))
	if term := terminated(t, pod); term.ExitCode != 0 || term.Reason != "Completed" {
		t.Errorf("pod restart-gated: exit %d reason %q, want 0 Completed", term.ExitCode, term.Reason)
	}
	if got := logs(t, "restart-gated", &corev1.PodLogOptions{}); string(got) != "gated\n" {
		t.Errorf("logs of pod restart-gated = %q, want %q", got, "gated\n")
	}
	for _, p := range []*corev1.Pod{long, quick, gated} {
		if jobs := cluster.jobsOf(t, string(p.UID)); len(jobs) != 1 {
			t.Errorf("pod %s has %d jobs after the provider's restart, want 1", p.Name, len(jobs))
		}
	}
	// The deleted pod's job is stopped once the provider is back.
	deadline = time.Now().Add(time.Minute)
	for {
		jobs := cluster.jobsOf(t, string(orphan.UID))
		if len(jobs) != 1 {
			t.Fatalf("pod restart-orphan has %d jobs, want 1", len(jobs))
		}
		if jobs[0].GetState() == jobworkerv1.JobState_JOB_STATE_STOPPED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job of pod restart-orphan, deleted while the provider was down, is %s after its restart, want STOPPED", jobs[0].GetState())
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range []string{hostSmall, hostLarge} {
		if err := cluster.waitNodeReady(ctx, n, true); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostKilled: `kill -9` of one jobworker host while a batch/v1 Job's
// pod runs there: its node goes NotReady; once the host is back, the pod
// ends Failed with the DisruptionTarget condition, and the Job (backoffLimit
// 2) runs the pod again, on either host, and completes.
func TestHostKilled(t *testing.T) {
	backoff := int32(2)
	spec := podSpec("echo started; sleep 6; echo done")
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "survivor", Namespace: ns},
		Spec:       batchv1.JobSpec{BackoffLimit: &backoff, Template: corev1.PodTemplateSpec{Spec: spec}},
	}
	if _, err := cluster.kube.BatchV1().Jobs(ns).Create(context.Background(), job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := metav1.DeletePropagationBackground
		cluster.kube.BatchV1().Jobs(ns).Delete(context.Background(), "survivor", metav1.DeleteOptions{PropagationPolicy: &bg})
	})
	var first *corev1.Pod
	deadline := time.Now().Add(time.Minute)
	for first == nil {
		pods, err := cluster.kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "job-name=survivor"})
		if err != nil {
			t.Fatal(err)
		}
		for i := range pods.Items {
			if pods.Items[i].Status.Phase == corev1.PodRunning {
				first = &pods.Items[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the Job's pod did not run")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A follower of the pod's logs across the host's death and restart: it
	// has the first line when the host is killed; its stream resumes at the
	// next byte and ends with the job.
	type follow struct {
		b  []byte
		at time.Time // when the stream ended
	}
	followed, reading := make(chan follow, 1), make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		rc, err := cluster.kube.CoreV1().Pods(ns).GetLogs(first.Name, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
		if err != nil {
			close(reading)
			followed <- follow{[]byte(err.Error()), time.Now()}
			return
		}
		defer rc.Close()
		var b bytes.Buffer
		for !strings.Contains(b.String(), "\n") {
			chunk := make([]byte, 64)
			n, err := rc.Read(chunk)
			b.Write(chunk[:n])
			if err != nil {
				break
			}
		}
		close(reading)
		io.Copy(&b, rc)
		followed <- follow{b.Bytes(), time.Now()}
	}()
	<-reading
	host := cluster.hosts[first.Spec.NodeName]
	host.proc.kill(syscall.SIGKILL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cluster.waitNodeReady(ctx, host.name, false); err != nil {
		t.Fatalf("after kill -9 of its host: %v", err)
	}
	restarting := time.Now()
	if err := cluster.startHost(host); err != nil {
		t.Fatal(err)
	}
	if err := cluster.waitNodeReady(ctx, host.name, true); err != nil {
		t.Fatalf("after its host restarted: %v", err)
	}
	pod := waitPod(t, first.Name, time.Minute, "Failed", phaseIs(corev1.PodFailed))
	disrupted := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == provider.ReasonHostRestarted {
			disrupted = true
		}
	}
	if !disrupted {
		t.Errorf("pod %s: conditions %+v, want DisruptionTarget %s", pod.Name, pod.Status.Conditions, provider.ReasonHostRestarted)
	}
	select {
	case f := <-followed:
		if string(f.b) != "started\n" {
			t.Errorf("logs followed across the host's restart = %q, want %q once", f.b, "started\n")
		}
		if f.at.Before(restarting) {
			t.Errorf("the logs followed ended %s before the host was started again: the stream was cut, not resumed", restarting.Sub(f.at))
		}
	case <-time.After(time.Minute):
		t.Error("the logs followed across the host's restart did not end with the job")
	}
	deadline = time.Now().Add(2 * time.Minute)
	for {
		j, err := cluster.kube.BatchV1().Jobs(ns).Get(context.Background(), "survivor", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if j.Status.Succeeded == 1 {
			if j.Status.Failed != 1 {
				t.Errorf("Job survivor: %d failed pods, want 1 (the disrupted one)", j.Status.Failed)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Job survivor did not complete: %+v", j.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestProviderStartsWithHostDown: jobworker-kube starts while one host is
// down: it serves the other node at once (a pod that only fits there
// runs), and the down host's node once the host is back.
func TestProviderStartsWithHostDown(t *testing.T) {
	cluster.provider.kill(syscall.SIGKILL)
	small := cluster.hosts[hostSmall]
	small.proc.kill(syscall.SIGKILL)
	cluster.provider = cluster.providerFn()
	createPod(t, "while-down", podSpec("echo up"), memoryRequest("2Gi"))
	pod := waitPod(t, "while-down", time.Minute, "Succeeded", phaseIs(corev1.PodSucceeded))
	if pod.Spec.NodeName != hostLarge {
		t.Errorf("pod while-down ran on %s, want %s", pod.Spec.NodeName, hostLarge)
	}
	if err := cluster.startHost(small); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cluster.waitNodeReady(ctx, hostSmall, true); err != nil {
		t.Fatalf("after its host came back: %v", err)
	}
}

// podReady is the pod's Ready condition.
func podReady(p *corev1.Pod) corev1.PodCondition {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c
		}
	}
	return corev1.PodCondition{}
}

// TestPausedPod: a pod whose job is paused on its host (jobworker pause)
// stays Running, not ready with reason JobPaused, and is ready again once
// the job resumes; deleting it while paused stops its job.
func TestPausedPod(t *testing.T) {
	createPod(t, "paused", podSpec("while :; do sleep 0.1; done"))
	pod := waitPod(t, "paused", time.Minute, "Running", phaseIs(corev1.PodRunning))
	jobs := cluster.jobsOf(t, string(pod.UID))
	if len(jobs) != 1 {
		t.Fatalf("pod paused has %d jobs, want 1", len(jobs))
	}
	host := cluster.hosts[pod.Spec.NodeName]
	id := jobs[0].GetId()
	if _, err := host.conn.PauseJob(context.Background(), &jobworkerv1.PauseJobRequest{Id: id}); err != nil {
		t.Fatalf("PauseJob: %v", err)
	}
	waitPod(t, "paused", time.Minute, "not ready, JobPaused", func(p *corev1.Pod) bool {
		r := podReady(p)
		return r.Status == corev1.ConditionFalse && r.Reason == provider.ReasonJobPaused
	})
	if p, err := cluster.kube.CoreV1().Pods(ns).Get(context.Background(), "paused", metav1.GetOptions{}); err != nil {
		t.Fatalf("get pod paused: %v", err)
	} else if p.Status.Phase != corev1.PodRunning {
		t.Fatalf("pod paused: phase %s while its job is paused, want Running", p.Status.Phase)
	}
	if _, err := host.conn.ResumeJob(context.Background(), &jobworkerv1.ResumeJobRequest{Id: id}); err != nil {
		t.Fatalf("ResumeJob: %v", err)
	}
	waitPod(t, "paused", time.Minute, "ready again", func(p *corev1.Pod) bool { return podReady(p).Status == corev1.ConditionTrue })
	if _, err := host.conn.PauseJob(context.Background(), &jobworkerv1.PauseJobRequest{Id: id}); err != nil {
		t.Fatalf("PauseJob: %v", err)
	}
	waitPod(t, "paused", time.Minute, "not ready, JobPaused", func(p *corev1.Pod) bool { return podReady(p).Reason == provider.ReasonJobPaused })
	grace := int64(2)
	if err := cluster.kube.CoreV1().Pods(ns).Delete(context.Background(), "paused", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		j := cluster.jobsOf(t, string(pod.UID))[0]
		if j.GetState() == jobworkerv1.JobState_JOB_STATE_STOPPED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the paused job of the deleted pod is %s, want STOPPED", j.GetState())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
