package provider

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Taint is the taint of every jobworker node: only a pod that tolerates it
// is placed there, so that no workload lands on a node that runs host
// commands by accident.
var Taint = corev1.Taint{Key: "virtual-kubelet.io/provider", Value: "jobworker", Effect: corev1.TaintEffectNoSchedule}

// ReasonHostUnreachable is the Ready condition's reason on a node whose
// jobworker host does not answer.
const ReasonHostUnreachable = "JobworkerHostUnreachable"

// Node is a virtual node's status, from health checks of its jobworker
// host: capacity and allocatable from GetServerStatus, Ready false while
// the host does not answer. It is Virtual Kubelet's node.NodeProvider.
type Node struct {
	api     jobworkerv1.JobWorkerServiceClient
	name    string
	version string

	mu     sync.Mutex
	node   corev1.Node
	notify func(*corev1.Node)
}

// NewNode is the status keeper of node name at hostIP, whose kubelet API
// listens on port.
func NewNode(api jobworkerv1.JobWorkerServiceClient, name, hostIP string, port int32, version string) *Node {
	n := &Node{api: api, name: name, version: version}
	n.node = corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"type":                   "virtual-kubelet",
				"kubernetes.io/role":     "agent",
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     runtime.GOARCH,
			},
		},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{Taint}},
		Status: corev1.NodeStatus{
			Phase:           corev1.NodeRunning,
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: hostIP}, {Type: corev1.NodeHostName, Address: name}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: port}},
			NodeInfo: corev1.NodeSystemInfo{
				OperatingSystem: "linux",
				Architecture:    runtime.GOARCH,
				KubeletVersion:  version,
			},
		},
	}
	return n
}

// Spec is the node as it is now, for registering it.
func (n *Node) Spec() corev1.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return *n.node.DeepCopy()
}

// Ping is Virtual Kubelet's liveness check of the provider itself, which
// is alive while it runs: the host's health is the Ready condition.
func (n *Node) Ping(context.Context) error { return nil }

// NotifyNodeStatus registers the callback that takes each status change.
func (n *Node) NotifyNodeStatus(_ context.Context, cb func(*corev1.Node)) {
	n.mu.Lock()
	n.notify = cb
	n.mu.Unlock()
}

// Check asks the host for its status once and updates the node: its
// capacity, and Ready true, or Ready false with ReasonHostUnreachable and
// the error when the host does not answer within timeout.
func (n *Node) Check(ctx context.Context, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	st, err := n.api.GetServerStatus(ctx, &jobworkerv1.GetServerStatusRequest{})
	cancel()
	n.mu.Lock()
	before := n.node.DeepCopy()
	setStatus(&n.node, st, err)
	changed := !sameNodeStatus(before, &n.node)
	cb, node := n.notify, n.node.DeepCopy()
	n.mu.Unlock()
	if changed && cb != nil {
		cb(node)
	}
}

// Run checks the host every interval until ctx ends.
func (n *Node) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.Check(ctx, interval)
		}
	}
}

// setStatus puts a host's answer (or the error that came instead) on node.
func setStatus(node *corev1.Node, st *jobworkerv1.GetServerStatusResponse, err error) {
	now := metav1.Now()
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "JobworkerHostReady",
		Message: "the jobworker host answers", LastHeartbeatTime: now, LastTransitionTime: now}
	if err != nil {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, ReasonHostUnreachable, fmt.Sprintf("the jobworker host does not answer: %v", err)
	} else {
		node.Status.Capacity = Capacity(st)
		node.Status.Allocatable = Capacity(st)
	}
	conds := []corev1.NodeCondition{ready}
	for _, c := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeNetworkUnavailable} {
		conds = append(conds, corev1.NodeCondition{Type: c, Status: corev1.ConditionFalse, Reason: "JobworkerHostReady", LastHeartbeatTime: now, LastTransitionTime: now})
	}
	for i, c := range conds {
		for _, old := range node.Status.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				conds[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	node.Status.Conditions = conds
}

// Capacity is what a host offers pods: its CPUs, the memory jobs may
// reserve, and as many pods as it runs jobs at once (110, a kubelet's
// default, when it has no such bound).
func Capacity(st *jobworkerv1.GetServerStatusResponse) corev1.ResourceList {
	pods := int64(st.GetMaxRunning())
	if pods == 0 {
		pods = 110
	}
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(st.GetCpuCount()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(int64(st.GetMemoryCapacityBytes()), resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(pods, resource.DecimalSI),
	}
}

func sameNodeStatus(a, b *corev1.Node) bool {
	if len(a.Status.Conditions) != len(b.Status.Conditions) {
		return false
	}
	for i := range a.Status.Conditions {
		if a.Status.Conditions[i].Status != b.Status.Conditions[i].Status {
			return false
		}
	}
	for k, v := range b.Status.Capacity {
		if w, ok := a.Status.Capacity[k]; !ok || w.Cmp(v) != 0 {
			return false
		}
	}
	return len(a.Status.Capacity) == len(b.Status.Capacity)
}
