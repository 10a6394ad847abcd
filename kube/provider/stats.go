package provider

import (
	"context"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	stats "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// cpuSample is a job's CPU time when it was last read, for the rate the
// stats report (UsageNanoCores).
type cpuSample struct {
	at   time.Time
	usec uint64
}

// podUsage is one running pod's usage now.
type podUsage struct {
	ref       PodRef
	container string
	start     metav1.Time
	usage     *jobworkerv1.Usage
}

// running reads the usage of every running (or paused) pod's job.
func (p *Provider) running(ctx context.Context) []podUsage {
	p.mu.Lock()
	type item struct {
		ref       PodRef
		container string
		id        string
	}
	var items []item
	for _, e := range p.pods {
		if e.jobID == "" || ended(e.job) || len(e.pod.Spec.Containers) == 0 {
			continue
		}
		items = append(items, item{PodRef{e.pod.Namespace, e.pod.Name, e.pod.UID}, e.pod.Spec.Containers[0].Name, e.jobID})
	}
	p.mu.Unlock()
	var out []podUsage
	for _, it := range items {
		st, err := p.cfg.API.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: it.id})
		if err != nil {
			continue
		}
		r, err := st.Recv()
		if err != nil || ended(r.GetJob()) || r.GetJob().GetState() == jobworkerv1.JobState_JOB_STATE_PENDING {
			continue
		}
		out = append(out, podUsage{ref: it.ref, container: it.container, start: metaTime(r.GetJob().GetStartTime()), usage: r.GetJob().GetUsage()})
	}
	return out
}

// nanoCores is the job's CPU rate since its last sample, or since it
// started at the first.
func (p *Provider) nanoCores(id string, start time.Time, usec uint64, now time.Time) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev, ok := p.usage[id]
	p.usage[id] = cpuSample{at: now, usec: usec}
	if !ok {
		prev = cpuSample{at: start}
	}
	d := now.Sub(prev.at)
	if d <= 0 || usec < prev.usec {
		return 0
	}
	return uint64(float64(usec-prev.usec) * 1e3 / d.Seconds())
}

// GetStatsSummary is the kubelet's /stats/summary from the jobs' usage:
// each running pod's CPU (time and rate) and memory, and the node's sums.
// Memory is zero where the host has no memory controller.
func (p *Provider) GetStatsSummary(ctx context.Context) (*stats.Summary, error) {
	now := time.Now()
	t := metav1.NewTime(now)
	var nodeCores, nodeCPU, nodeMem uint64
	sum := &stats.Summary{Node: stats.NodeStats{NodeName: p.cfg.NodeName}}
	for _, u := range p.running(ctx) {
		cpu := u.usage.GetCpuUsageUsec() * 1000
		cores := p.nanoCores(string(u.ref.UID), u.start.Time, u.usage.GetCpuUsageUsec(), now)
		mem := u.usage.GetMemoryCurrentBytes()
		nodeCores += cores
		nodeCPU += cpu
		nodeMem += mem
		cs := &stats.CPUStats{Time: t, UsageNanoCores: &cores, UsageCoreNanoSeconds: &cpu}
		ms := &stats.MemoryStats{Time: t, UsageBytes: &mem, WorkingSetBytes: &mem}
		sum.Pods = append(sum.Pods, stats.PodStats{
			PodRef:     stats.PodReference{Name: u.ref.Name, Namespace: u.ref.Namespace, UID: string(u.ref.UID)},
			StartTime:  u.start,
			Containers: []stats.ContainerStats{{Name: u.container, StartTime: u.start, CPU: cs, Memory: ms}},
			CPU:        cs,
			Memory:     ms,
		})
	}
	sum.Node.CPU = &stats.CPUStats{Time: t, UsageNanoCores: &nodeCores, UsageCoreNanoSeconds: &nodeCPU}
	sum.Node.Memory = &stats.MemoryStats{Time: t, UsageBytes: &nodeMem, WorkingSetBytes: &nodeMem}
	return sum, nil
}

// GetMetricsResource is the kubelet's /metrics/resource, which
// metrics-server reads for `kubectl top`: each running pod's and
// container's CPU time and working set, the container's start time (by
// which metrics-server tells a restarted container's counter from a
// running one's), and the node's sums.
func (p *Provider) GetMetricsResource(ctx context.Context) ([]*dto.MetricFamily, error) {
	ms := time.Now().UnixMilli()
	gauge, counter := dto.MetricType_GAUGE, dto.MetricType_COUNTER
	fam := func(name, help string, typ dto.MetricType) *dto.MetricFamily {
		return &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: typ.Enum()}
	}
	label := func(kv ...string) []*dto.LabelPair {
		var l []*dto.LabelPair
		for i := 0; i < len(kv); i += 2 {
			l = append(l, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
		}
		return l
	}
	add := func(f *dto.MetricFamily, v float64, labels []*dto.LabelPair) {
		m := &dto.Metric{Label: labels, TimestampMs: proto.Int64(ms)}
		if f.GetType() == dto.MetricType_COUNTER {
			m.Counter = &dto.Counter{Value: proto.Float64(v)}
		} else {
			m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
		}
		f.Metric = append(f.Metric, m)
	}
	cstart := fam("container_start_time_seconds", "Start time of the container since the Unix epoch in seconds", gauge)
	ccpu := fam("container_cpu_usage_seconds_total", "Cumulative CPU time of the container in core-seconds", counter)
	cmem := fam("container_memory_working_set_bytes", "Current working set of the container in bytes", gauge)
	pcpu := fam("pod_cpu_usage_seconds_total", "Cumulative CPU time of the pod in core-seconds", counter)
	pmem := fam("pod_memory_working_set_bytes", "Current working set of the pod in bytes", gauge)
	ncpu := fam("node_cpu_usage_seconds_total", "Cumulative CPU time of the node's pods in core-seconds", counter)
	nmem := fam("node_memory_working_set_bytes", "Current working set of the node's pods in bytes", gauge)
	var cpuSum, memSum float64
	for _, u := range p.running(ctx) {
		cpu := float64(u.usage.GetCpuUsageUsec()) / 1e6
		mem := float64(u.usage.GetMemoryCurrentBytes())
		cpuSum += cpu
		memSum += mem
		add(cstart, float64(u.start.UnixNano())/1e9, label("container", u.container, "namespace", u.ref.Namespace, "pod", u.ref.Name))
		add(ccpu, cpu, label("container", u.container, "namespace", u.ref.Namespace, "pod", u.ref.Name))
		add(cmem, mem, label("container", u.container, "namespace", u.ref.Namespace, "pod", u.ref.Name))
		add(pcpu, cpu, label("namespace", u.ref.Namespace, "pod", u.ref.Name))
		add(pmem, mem, label("namespace", u.ref.Namespace, "pod", u.ref.Name))
	}
	add(ncpu, cpuSum, nil)
	add(nmem, memSum, nil)
	return []*dto.MetricFamily{cstart, ccpu, cmem, pcpu, pmem, ncpu, nmem}, nil
}
