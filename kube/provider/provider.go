// Package provider is jobworker's Virtual Kubelet provider: it runs the
// pods Kubernetes places on one virtual node as jobs of one jobworker host.
// It implements Virtual Kubelet's interfaces (nodeutil.Provider,
// node.PodNotifier, node.NodeProvider) and nothing of the node machinery,
// which the virtual-kubelet library runs.
package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// Config is what a Provider works with.
type Config struct {
	NodeName string // the virtual node's name
	HostIP   string // the address pods and the node report
	// API is the jobworker host, called with the provider's one identity.
	API jobworkerv1.JobWorkerServiceClient
	// Kube reads back the pods of the jobs found at start-up.
	Kube     kubernetes.Interface
	Recorder record.EventRecorder // pod events: why a pod was refused
	Image    string               // the placeholder image; DefaultImage if empty
	Log      *slog.Logger
}

// Provider runs one node's pods as jobs.
type Provider struct {
	cfg Config
	ctx context.Context // the provider's life: watches and log streams end with it
	wg  sync.WaitGroup

	mu     sync.Mutex
	pods   map[string]*entry // by namespace/name
	notify func(*corev1.Pod)
	usage  map[string]cpuSample // by pod UID, for CPU rates
}

// entry is one pod the provider knows: its spec and last status, and the
// job that runs it (none when the pod was refused).
type entry struct {
	pod   *corev1.Pod
	jobID string
	job   *jobworkerv1.Job // the last status seen
	stop  sync.Once
}

// New makes the provider for one node and rebuilds what it knew before a
// restart: every job of the host that records a pod (PodOf) whose pod
// still exists with that UID and is bound to this node is that pod again,
// and its status is watched anew, so a restart of the provider never
// starts a pod a second time; a job still running whose pod no longer
// exists (deleted while the provider was away) is stopped with the host's
// default grace. The provider lives until ctx ends; Wait waits for its
// goroutines.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Image == "" {
		cfg.Image = DefaultImage
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Provider{cfg: cfg, ctx: ctx, pods: map[string]*entry{}, usage: map[string]cpuSample{}}
	jobs, err := listJobs(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("list the jobs of node %s's host: %w", cfg.NodeName, err)
	}
	var orphans []string
	for _, j := range jobs {
		ref, ok := PodOf(j)
		if !ok {
			continue
		}
		pod, err := cfg.Kube.CoreV1().Pods(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("look up pod %s of job %s: %w", ref.Key(), j.GetId(), err)
		}
		if err != nil || pod.UID != ref.UID {
			// The pod was deleted while the provider was away: its job
			// must not run on.
			if !ended(j) {
				orphans = append(orphans, j.GetId())
			}
			continue
		}
		if pod.Spec.NodeName != cfg.NodeName {
			continue
		}
		if e, seen := p.pods[ref.Key()]; seen && e.job.GetCreateTime().AsTime().After(j.GetCreateTime().AsTime()) {
			continue
		}
		pod.Status = PodStatus(pod, j, cfg.HostIP)
		p.pods[ref.Key()] = &entry{pod: pod, jobID: j.GetId(), job: j}
		cfg.Log.Info("found the job of a pod", "pod", ref.Key(), "job", j.GetId(), "state", j.GetState().String())
	}
	for key, e := range p.pods {
		p.watch(key, e.jobID)
	}
	for _, id := range orphans {
		cfg.Log.Info("stopping the job of a pod deleted while the provider was away", "job", id)
		p.wg.Go(func() {
			if _, err := cfg.API.StopJob(ctx, &jobworkerv1.StopJobRequest{Id: id}); err != nil && ctx.Err() == nil {
				cfg.Log.Warn("stop the job of a deleted pod", "job", id, "err", err)
			}
		})
	}
	return p, nil
}

// listJobs lists all the host's jobs, page by page, waiting with back-off
// while the host does not answer: a provider that starts while its host is
// down serves the node once the host is back.
func listJobs(ctx context.Context, cfg Config) ([]*jobworkerv1.Job, error) {
	var jobs []*jobworkerv1.Job
	req := &jobworkerv1.ListJobsRequest{PageSize: 1000}
	for {
		list, err := listPage(ctx, cfg, req)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, list.GetJobs()...)
		if list.GetNextPageToken() == "" {
			return jobs, nil
		}
		req.PageToken = list.GetNextPageToken()
	}
}

// listPage is one page of ListJobs, asked again with back-off while the
// host does not answer.
func listPage(ctx context.Context, cfg Config, req *jobworkerv1.ListJobsRequest) (*jobworkerv1.ListJobsResponse, error) {
	backoff := 200 * time.Millisecond
	for said := false; ; {
		list, err := cfg.API.ListJobs(ctx, req)
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return list, err
		}
		if !said {
			cfg.Log.Warn("the jobworker host does not answer; waiting for it", "err", err)
			said = true
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Wait waits for the provider's goroutines, which end with its context.
func (p *Provider) Wait() { p.wg.Wait() }

// CreatePod runs the pod as a job. A pod that asks for what a job cannot do
// (RefusedError), or whose job the host refuses, fails at once with a
// warning event that says why; it is never retried, since it would fail
// the same way. Only an unreachable host makes CreatePod return an error,
// for Virtual Kubelet to try again; the retry carries the same request ID,
// so it never makes a second job.
func (p *Provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	key := pod.Namespace + "/" + pod.Name
	p.mu.Lock()
	if e, ok := p.pods[key]; ok && e.pod.UID == pod.UID {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	req, err := JobRequest(pod, p.cfg.Image)
	if err != nil {
		p.fail(pod, ReasonUnsupported, fmt.Sprintf("jobworker cannot run this pod: %v", err))
		return nil
	}
	resp, err := p.cfg.API.StartJob(ctx, req)
	if err != nil {
		if status.Code(err) == codes.Unavailable || ctx.Err() != nil {
			return fmt.Errorf("start the job of pod %s: %w", key, err)
		}
		p.fail(pod, ReasonStartFailed, fmt.Sprintf("the jobworker host refused the job: %s", status.Convert(err).Message()))
		return nil
	}
	j := resp.GetJob()
	pod = pod.DeepCopy()
	pod.Status = PodStatus(pod, j, p.cfg.HostIP)
	p.mu.Lock()
	p.pods[key] = &entry{pod: pod, jobID: j.GetId(), job: j}
	p.mu.Unlock()
	p.cfg.Log.Info("started the job of a pod", "pod", key, "job", j.GetId())
	p.emit(pod)
	p.watch(key, j.GetId())
	return nil
}

// fail records a pod that has no job as Failed, with a warning event.
func (p *Provider) fail(pod *corev1.Pod, reason, message string) {
	pod = pod.DeepCopy()
	pod.Status = FailedStatus(pod, reason, message)
	p.mu.Lock()
	p.pods[pod.Namespace+"/"+pod.Name] = &entry{pod: pod}
	p.mu.Unlock()
	if p.cfg.Recorder != nil {
		p.cfg.Recorder.Event(pod, corev1.EventTypeWarning, reason, message)
	}
	p.cfg.Log.Info("refused a pod", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "message", message)
	p.emit(pod)
}

// UpdatePod takes the pod's new spec; a running job's limits do not change.
func (p *Provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.pods[pod.Namespace+"/"+pod.Name]; ok && e.pod.UID == pod.UID {
		st := e.pod.Status
		e.pod = pod.DeepCopy()
		e.pod.Status = st
	}
	return nil
}

// DeletePod stops the pod's job with the pod's grace period: SIGTERM, then
// the kill when the grace runs out. It returns at once; the job's final
// status reaches Kubernetes through the watch, and Virtual Kubelet removes
// the pod then. A pod whose job has ended is forgotten.
func (p *Provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	key := pod.Namespace + "/" + pod.Name
	p.mu.Lock()
	e, ok := p.pods[key]
	if !ok || e.pod.UID != pod.UID {
		p.mu.Unlock()
		return errdefs.NotFoundf("pod %s is not on node %s", key, p.cfg.NodeName)
	}
	if e.jobID == "" || ended(e.job) {
		delete(p.pods, key)
		delete(p.usage, string(pod.UID))
		p.mu.Unlock()
		return nil
	}
	id := e.jobID
	p.mu.Unlock()
	grace := 30 * time.Second
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	e.stop.Do(func() {
		p.wg.Go(func() {
			_, err := p.cfg.API.StopJob(p.ctx, &jobworkerv1.StopJobRequest{Id: id, Grace: durationpb.New(grace)})
			if err != nil && p.ctx.Err() == nil {
				p.cfg.Log.Warn("stop the job of a deleted pod", "pod", key, "job", id, "err", err)
			}
		})
	})
	return nil
}

// GetPod is the pod as the provider knows it, with its last status.
func (p *Provider) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.pods[namespace+"/"+name]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s is not on node %s", namespace, name, p.cfg.NodeName)
	}
	return e.pod.DeepCopy(), nil
}

// GetPodStatus is the pod's last status.
func (p *Provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods is every pod the provider knows.
func (p *Provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pods := make([]*corev1.Pod, 0, len(p.pods))
	for _, e := range p.pods {
		pods = append(pods, e.pod.DeepCopy())
	}
	return pods, nil
}

// NotifyPods registers the callback that takes each pod whose status
// changed, and hands it every pod known so far.
func (p *Provider) NotifyPods(ctx context.Context, cb func(*corev1.Pod)) {
	p.mu.Lock()
	p.notify = cb
	pods := make([]*corev1.Pod, 0, len(p.pods))
	for _, e := range p.pods {
		pods = append(pods, e.pod.DeepCopy())
	}
	p.mu.Unlock()
	p.wg.Go(func() {
		for _, pod := range pods {
			cb(pod)
		}
	})
}

// emit hands a pod's new status to Virtual Kubelet, once it listens.
func (p *Provider) emit(pod *corev1.Pod) {
	p.mu.Lock()
	cb := p.notify
	p.mu.Unlock()
	if cb != nil {
		cb(pod.DeepCopy())
	}
}

// watch follows job id's status for pod key until the job ends, the pod is
// forgotten or the provider stops. A dropped stream (the host restarting,
// say) is watched again with back-off; a job the host no longer has fails
// the pod with ReasonJobLost.
func (p *Provider) watch(key, id string) {
	p.wg.Go(func() {
		backoff := 200 * time.Millisecond
		for p.ctx.Err() == nil {
			err := p.watchOnce(key, id, func() { backoff = 200 * time.Millisecond })
			switch {
			case err == nil || p.ctx.Err() != nil:
				return
			case status.Code(err) == codes.NotFound:
				p.lost(key, id)
				return
			}
			t := time.NewTimer(backoff)
			select {
			case <-p.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	})
}

// watchOnce follows one status stream; it returns nil once the job ended.
func (p *Provider) watchOnce(key, id string, connected func()) error {
	stream, err := p.cfg.API.GetJobStatus(p.ctx, &jobworkerv1.GetJobStatusRequest{Id: id, Watch: true})
	if err != nil {
		return err
	}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		connected()
		if !p.update(key, id, r.GetJob()) {
			return nil
		}
		if ended(r.GetJob()) {
			return nil
		}
	}
}

// update records job j's status on pod key and hands the pod on when its
// status changed. It is false when the pod no longer has that job.
func (p *Provider) update(key, id string, j *jobworkerv1.Job) bool {
	p.mu.Lock()
	e, ok := p.pods[key]
	if !ok || e.jobID != id {
		p.mu.Unlock()
		return false
	}
	e.job = j
	st := PodStatus(e.pod, j, p.cfg.HostIP)
	changed := !samePhase(e.pod.Status, st)
	e.pod.Status = st
	pod := e.pod.DeepCopy()
	p.mu.Unlock()
	if changed {
		p.emit(pod)
	}
	return true
}

// lost fails a pod whose job the host no longer has.
func (p *Provider) lost(key, id string) {
	p.mu.Lock()
	e, ok := p.pods[key]
	if !ok || e.jobID != id {
		p.mu.Unlock()
		return
	}
	msg := fmt.Sprintf("job %s is no longer on the jobworker host", id)
	e.pod.Status = FailedStatus(e.pod, ReasonJobLost, msg)
	pod := e.pod.DeepCopy()
	p.mu.Unlock()
	p.emit(pod)
}

// samePhase tells two statuses apart by what Kubernetes needs to hear
// about: phase, reason, the conditions and the container's state and
// readiness (not usage).
func samePhase(a, b corev1.PodStatus) bool {
	if a.Phase != b.Phase || a.Reason != b.Reason || len(a.ContainerStatuses) != len(b.ContainerStatuses) || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		if a.Conditions[i].Type != b.Conditions[i].Type || a.Conditions[i].Status != b.Conditions[i].Status || a.Conditions[i].Reason != b.Conditions[i].Reason {
			return false
		}
	}
	for i := range a.ContainerStatuses {
		x, y := a.ContainerStatuses[i].State, b.ContainerStatuses[i].State
		if (x.Waiting == nil) != (y.Waiting == nil) || (x.Running == nil) != (y.Running == nil) || (x.Terminated == nil) != (y.Terminated == nil) ||
			a.ContainerStatuses[i].Ready != b.ContainerStatuses[i].Ready {
			return false
		}
	}
	return true
}

func ended(j *jobworkerv1.Job) bool {
	switch j.GetState() {
	case jobworkerv1.JobState_JOB_STATE_PENDING, jobworkerv1.JobState_JOB_STATE_RUNNING, jobworkerv1.JobState_JOB_STATE_PAUSED:
		return false
	}
	return true
}

// jobOf is the job ID of pod namespace/name.
func (p *Provider) jobOf(namespace, name string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.pods[namespace+"/"+name]
	if !ok {
		return "", errdefs.NotFoundf("pod %s/%s is not on node %s", namespace, name, p.cfg.NodeName)
	}
	if e.jobID == "" {
		return "", errdefs.NotFoundf("pod %s/%s has no job: %s", namespace, name, e.pod.Status.Message)
	}
	return e.jobID, nil
}

// RunInContainer is refused: a job has no exec.
func (p *Provider) RunInContainer(ctx context.Context, namespace, podName, containerName string, cmd []string, attach api.AttachIO) error {
	return errdefs.InvalidInput("jobworker jobs do not support exec")
}

// AttachToContainer is refused: a job has no stdin or TTY.
func (p *Provider) AttachToContainer(ctx context.Context, namespace, podName, containerName string, attach api.AttachIO) error {
	return errdefs.InvalidInput("jobworker jobs do not support attach")
}

// PortForward is refused: jobworker maps no ports.
func (p *Provider) PortForward(ctx context.Context, namespace, pod string, port int32, stream io.ReadWriteCloser) error {
	return errdefs.InvalidInput("jobworker jobs do not support port forwarding")
}
