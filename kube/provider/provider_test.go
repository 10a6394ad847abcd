package provider

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

// fakeHost is a jobworker host with a fixed list of jobs, which it lists
// at most pageSize at a time whatever the request asks, as a server may.
type fakeHost struct {
	jobworkerv1.JobWorkerServiceClient // nil: a call not faked panics
	jobs                               []*jobworkerv1.Job
	pageSize                           int

	mu      sync.Mutex
	stopped []string
}

func (h *fakeHost) ListJobs(_ context.Context, req *jobworkerv1.ListJobsRequest, _ ...grpc.CallOption) (*jobworkerv1.ListJobsResponse, error) {
	from := 0
	if req.GetPageToken() != "" {
		from, _ = strconv.Atoi(req.GetPageToken())
	}
	to := min(from+h.pageSize, len(h.jobs))
	resp := &jobworkerv1.ListJobsResponse{Jobs: h.jobs[from:to]}
	if to < len(h.jobs) {
		resp.NextPageToken = strconv.Itoa(to)
	}
	return resp, nil
}

func (h *fakeHost) StopJob(_ context.Context, req *jobworkerv1.StopJobRequest, _ ...grpc.CallOption) (*jobworkerv1.StopJobResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = append(h.stopped, req.GetId())
	return &jobworkerv1.StopJobResponse{}, nil
}

// GetJobStatus answers a watch with the job as it is listed, then ends it.
func (h *fakeHost) GetJobStatus(_ context.Context, req *jobworkerv1.GetJobStatusRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[jobworkerv1.GetJobStatusResponse], error) {
	for _, j := range h.jobs {
		if j.GetId() == req.GetId() {
			return &oneStatus{job: j}, nil
		}
	}
	return nil, fmt.Errorf("no job %s", req.GetId())
}

type oneStatus struct {
	grpc.ClientStream
	job  *jobworkerv1.Job
	sent bool
}

func (s *oneStatus) Recv() (*jobworkerv1.GetJobStatusResponse, error) {
	if s.sent {
		return nil, io.EOF
	}
	s.sent = true
	return &jobworkerv1.GetJobStatusResponse{Job: s.job}, nil
}

// TestNewFindsEveryJob: after a restart the provider finds its pods' jobs
// on every page of the host's list, not only the first: a pod whose job is
// listed last is known again, and the running job of a pod deleted
// meanwhile, listed last too, is stopped.
func TestNewFindsEveryJob(t *testing.T) {
	const node = "n"
	pod := func(name, uid string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid)},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c"}}}}
	}
	job := func(id string, p *corev1.Pod, state jobworkerv1.JobState) *jobworkerv1.Job {
		j := &jobworkerv1.Job{Id: id, State: state}
		if p != nil {
			j.Labels = PodLabels(p)
		}
		return j
	}
	kept := pod("kept", "11111111-1111-1111-1111-111111111111")
	deleted := pod("deleted", "22222222-2222-2222-2222-222222222222")
	host := &fakeHost{pageSize: 100}
	// Newest first: 250 jobs no pod started, then the two pods' jobs.
	for i := range 250 {
		host.jobs = append(host.jobs, job(fmt.Sprintf("other-%d", i), nil, jobworkerv1.JobState_JOB_STATE_COMPLETED))
	}
	host.jobs = append(host.jobs,
		job("kept-job", kept, jobworkerv1.JobState_JOB_STATE_COMPLETED),
		job("deleted-job", deleted, jobworkerv1.JobState_JOB_STATE_RUNNING))
	ctx, cancel := context.WithCancel(context.Background())
	p, err := New(ctx, Config{NodeName: node, HostIP: "10.0.0.1", API: host, Kube: fake.NewClientset(kept)})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	p.Wait()
	got, err := p.GetPod(context.Background(), "ns", "kept")
	if err != nil {
		t.Fatalf("GetPod(kept), whose job is on the list's last page: %v", err)
	}
	if got.Status.Phase != corev1.PodSucceeded {
		t.Errorf("pod kept: phase %s, want Succeeded from its job", got.Status.Phase)
	}
	if len(host.stopped) != 1 || host.stopped[0] != "deleted-job" {
		t.Errorf("stopped %v, want the job of the deleted pod, deleted-job", host.stopped)
	}
}
