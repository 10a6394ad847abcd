package provider

import (
	"errors"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestNodeStatus: capacity and allocatable from GetServerStatus (110 pods
// when the host has no bound), Ready true while the host answers, and
// false with ReasonHostUnreachable, the capacity kept, when it does not.
func TestNodeStatus(t *testing.T) {
	n := NewNode(nil, "n", "10.0.0.1", 10250, "v")
	node := n.Spec()
	setStatus(&node, &jobworkerv1.GetServerStatusResponse{CpuCount: 8, MemoryCapacityBytes: 4 << 30}, nil)
	cpu, mem, pods := node.Status.Allocatable[corev1.ResourceCPU], node.Status.Allocatable[corev1.ResourceMemory], node.Status.Capacity[corev1.ResourcePods]
	if cpu.Value() != 8 || mem.Value() != 4<<30 || pods.Value() != 110 {
		t.Errorf("allocatable cpu %s memory %s, capacity pods %s; want 8, 4Gi, 110", cpu.String(), mem.String(), pods.String())
	}
	if c := ready(node); c.Status != corev1.ConditionTrue {
		t.Errorf("Ready = %s, want True while the host answers", c.Status)
	}
	setStatus(&node, nil, errors.New("connection refused"))
	if c := ready(node); c.Status != corev1.ConditionFalse || c.Reason != ReasonHostUnreachable {
		t.Errorf("Ready = %s %s, want False %s when the host does not answer", c.Status, c.Reason, ReasonHostUnreachable)
	}
	if mem := node.Status.Allocatable[corev1.ResourceMemory]; mem.Value() != 4<<30 {
		t.Errorf("allocatable memory %s after a failed check, want the last known 4Gi", mem.String())
	}
	setStatus(&node, &jobworkerv1.GetServerStatusResponse{CpuCount: 8, MaxRunning: 16}, nil)
	if pods := node.Status.Capacity[corev1.ResourcePods]; pods.Value() != 16 {
		t.Errorf("capacity pods %s, want max_running 16", pods.String())
	}
}

func ready(n corev1.Node) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}
