package service

import (
	"fmt"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Conversions between the API's messages and the job library's types.

// limitsFromProto checks and converts requested limits; unset fields stay
// zero (the server's defaults), explicit zeros are refused. The ranges are
// cgroupfs's, named by the API's fields.
func limitsFromProto(l *jobworkerv1.Limits) (cgroupfs.Limits, error) {
	var out cgroupfs.Limits
	if l == nil {
		return out, nil
	}
	if l.CpuWeight != nil {
		if err := cgroupfs.CheckCPUWeight("cpu_weight", *l.CpuWeight); err != nil {
			return out, err
		}
		out.CPUWeight = *l.CpuWeight
	}
	if l.Cpus != nil && *l.Cpus != 0 {
		if err := cgroupfs.CheckCPUs("cpus", *l.Cpus); err != nil {
			return out, err
		}
		out.CPUs = *l.Cpus
	}
	if l.MemoryMaxBytes != nil {
		if err := cgroupfs.CheckMemory("memory_max_bytes", *l.MemoryMaxBytes); err != nil {
			return out, err
		}
		out.MemoryMax = *l.MemoryMaxBytes
	}
	if l.MemoryHighBytes != nil {
		if err := cgroupfs.CheckMemory("memory_high_bytes", *l.MemoryHighBytes); err != nil {
			return out, err
		}
		out.MemoryHigh = *l.MemoryHighBytes
	}
	if l.IoWeight != nil {
		if err := cgroupfs.CheckIOWeight("io_weight", *l.IoWeight); err != nil {
			return out, err
		}
		out.IOWeight = *l.IoWeight
	}
	for _, m := range l.IoMax {
		if m.GetReadBps() == 0 && m.GetWriteBps() == 0 && m.GetReadIops() == 0 && m.GetWriteIops() == 0 {
			return out, fmt.Errorf("io_max for %q sets no rate", m.GetDevice())
		}
		out.IOMax = append(out.IOMax, cgroupfs.IOMax{Device: m.GetDevice(), ReadBPS: m.GetReadBps(), WriteBPS: m.GetWriteBps(), ReadIOPS: m.GetReadIops(), WriteIOPS: m.GetWriteIops()})
	}
	if l.PidsMax != nil {
		if err := cgroupfs.CheckPids("pids_max", *l.PidsMax); err != nil {
			return out, err
		}
		out.PidsMax = *l.PidsMax
	}
	// Validate resolves the io.max devices once, into out.
	err := out.Validate()
	return out, err
}

var stateToProto = map[job.State]jobworkerv1.JobState{
	job.StatePending:   jobworkerv1.JobState_JOB_STATE_PENDING,
	job.StateRunning:   jobworkerv1.JobState_JOB_STATE_RUNNING,
	job.StateCompleted: jobworkerv1.JobState_JOB_STATE_COMPLETED,
	job.StateFailed:    jobworkerv1.JobState_JOB_STATE_FAILED,
	job.StateStopped:   jobworkerv1.JobState_JOB_STATE_STOPPED,
}

var stateFromProto = func() map[jobworkerv1.JobState]job.State {
	m := map[jobworkerv1.JobState]job.State{}
	for k, v := range stateToProto {
		m[v] = k
	}
	return m
}()

var reasonToProto = map[job.Reason]jobworkerv1.FailureReason{
	job.ReasonNone:            jobworkerv1.FailureReason_FAILURE_REASON_UNSPECIFIED,
	job.ReasonExitCode:        jobworkerv1.FailureReason_FAILURE_REASON_EXIT_CODE,
	job.ReasonSignal:          jobworkerv1.FailureReason_FAILURE_REASON_SIGNAL,
	job.ReasonOOMKilled:       jobworkerv1.FailureReason_FAILURE_REASON_OOM_KILLED,
	job.ReasonTimedOut:        jobworkerv1.FailureReason_FAILURE_REASON_TIMED_OUT,
	job.ReasonExecFailed:      jobworkerv1.FailureReason_FAILURE_REASON_EXEC_FAILED,
	job.ReasonServerRestarted: jobworkerv1.FailureReason_FAILURE_REASON_SERVER_RESTARTED,
	job.ReasonOutputLost:      jobworkerv1.FailureReason_FAILURE_REASON_OUTPUT_LOST,
	job.ReasonDamaged:         jobworkerv1.FailureReason_FAILURE_REASON_DAMAGED,
}

func jobToProto(st job.Status) *jobworkerv1.Job {
	j := &jobworkerv1.Job{
		Id:             st.ID,
		Owner:          st.Owner,
		Command:        st.Command,
		Args:           st.Args,
		Env:            st.Env,
		WorkingDir:     st.Dir,
		Limits:         limitsToProto(st.Limits),
		State:          stateToProto[st.State],
		Reason:         reasonToProto[st.Reason],
		Message:        st.Message,
		CreateTime:     timestamppb.New(st.Created),
		Usage:          usageToProto(st.Usage),
		OutputSize:     st.OutputSize,
		OutputStart:    st.OutputStart,
		Damaged:        st.Damaged,
		Network:        networkToProto(st.Network),
		SecretEnvNames: st.SecretEnvNames,
	}
	if st.Timeout > 0 {
		j.Timeout = durationpb.New(st.Timeout)
	}
	if st.ExitCode != nil {
		c := int32(*st.ExitCode)
		j.ExitCode = &c
	}
	if st.Signal != nil {
		sig := int32(*st.Signal)
		j.Signal = &sig
	}
	if !st.Started.IsZero() {
		j.StartTime = timestamppb.New(st.Started)
	}
	if !st.Ended.IsZero() {
		j.EndTime = timestamppb.New(st.Ended)
	}
	return j
}

func limitsToProto(l cgroupfs.Limits) *jobworkerv1.Limits {
	p := &jobworkerv1.Limits{}
	if l.CPUWeight != 0 {
		p.CpuWeight = &l.CPUWeight
	}
	if l.CPUs != 0 {
		p.Cpus = &l.CPUs
	}
	if l.MemoryMax != 0 {
		p.MemoryMaxBytes = &l.MemoryMax
	}
	if l.MemoryHigh != 0 {
		p.MemoryHighBytes = &l.MemoryHigh
	}
	if l.IOWeight != 0 {
		p.IoWeight = &l.IOWeight
	}
	for _, m := range l.IOMax {
		p.IoMax = append(p.IoMax, &jobworkerv1.IOMax{Device: m.Device, ReadBps: m.ReadBPS, WriteBps: m.WriteBPS, ReadIops: m.ReadIOPS, WriteIops: m.WriteIOPS})
	}
	if l.PidsMax != 0 {
		p.PidsMax = &l.PidsMax
	}
	return p
}

func usageToProto(u cgroupfs.Usage) *jobworkerv1.Usage {
	return &jobworkerv1.Usage{
		CpuUsageUsec:       u.CPUUsageUsec,
		CpuUserUsec:        u.CPUUserUsec,
		CpuSystemUsec:      u.CPUSystemUsec,
		MemoryCurrentBytes: u.MemoryCurrent,
		MemoryPeakBytes:    u.MemoryPeak,
		IoReadBytes:        u.IOReadBytes,
		IoWriteBytes:       u.IOWriteBytes,
		IoReadOps:          u.IOReadOps,
		IoWriteOps:         u.IOWriteOps,
		PidsCurrent:        u.PidsCurrent,
		OomKills:           u.OOMKills,
	}
}

// networkToProto is a job's network; a record from before networks is the
// host's.
func networkToProto(n job.Network) jobworkerv1.Network {
	if n == job.NetworkNone {
		return jobworkerv1.Network_NETWORK_NONE
	}
	return jobworkerv1.Network_NETWORK_HOST
}
