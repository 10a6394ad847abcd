package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
)

// recordVersion is the format of the job records (job.json) this package
// writes and the newest it reads. Records from before the format had a
// version have none and the same keys: they are read as version 1.
const recordVersion = 1

// errNewerRecord is a record of a format newer than recordVersion. Such a
// job is left on disk, not loaded: it is not damaged, and the jobworker
// that wrote it can still read it.
var errNewerRecord = errors.New("the job record's format is newer than this jobworker reads")

// record is a job's record on disk. It is a type of its own, with its keys
// spelled out, so that no Go field name of Status or of another package
// (cgroupfs) decides the file's format; the keys are those that the first
// records had (the limits and usage with Go's field names), so that every
// record ever written loads.
type record struct {
	Version int               `json:"version"`
	ID      string            `json:"id"`
	Owner   string            `json:"owner"`
	Command string            `json:"command"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Dir     string            `json:"dir"`
	Limits  recordLimits      `json:"limits"`
	Timeout int64             `json:"timeout,omitempty"` // nanoseconds
	// RequestID is the StartJob request ID, if any (new in version 1
	// records written since; older ones have none).
	RequestID string `json:"request_id,omitempty"`
	// Network is "host" or "none"; records from before it have none and
	// ran on the host's network.
	Network string `json:"network,omitempty"`
	// SecretEnvNames are the names of the job's secret variables (their
	// values are never recorded).
	SecretEnvNames []string    `json:"secret_env_names,omitempty"`
	State          string      `json:"state"`
	Reason         string      `json:"reason,omitempty"`
	ExitCode       *int        `json:"exit_code,omitempty"`
	Signal         *int        `json:"signal,omitempty"`
	Message        string      `json:"message,omitempty"`
	Created        time.Time   `json:"created"`
	Started        time.Time   `json:"started,omitzero"`
	Ended          time.Time   `json:"ended,omitzero"`
	Usage          recordUsage `json:"usage"`
}

// recordLimits are a job's limits on disk (cgroupfs.Limits).
type recordLimits struct {
	CPUWeight  uint32        `json:"CPUWeight"`
	CPUs       float64       `json:"CPUs"`
	MemoryMax  uint64        `json:"MemoryMax"`
	MemoryHigh uint64        `json:"MemoryHigh"`
	IOWeight   uint32        `json:"IOWeight"`
	IOMax      []recordIOMax `json:"IOMax"`
	PidsMax    uint64        `json:"PidsMax"`
}

// recordIOMax is one device's I/O cap on disk (cgroupfs.IOMax).
type recordIOMax struct {
	Device    string `json:"Device"`
	ReadBPS   uint64 `json:"ReadBPS"`
	WriteBPS  uint64 `json:"WriteBPS"`
	ReadIOPS  uint64 `json:"ReadIOPS"`
	WriteIOPS uint64 `json:"WriteIOPS"`
}

// recordUsage is a job's final usage on disk (cgroupfs.Usage).
type recordUsage struct {
	CPUUsageUsec  uint64 `json:"CPUUsageUsec"`
	CPUUserUsec   uint64 `json:"CPUUserUsec"`
	CPUSystemUsec uint64 `json:"CPUSystemUsec"`
	MemoryCurrent uint64 `json:"MemoryCurrent"`
	MemoryPeak    uint64 `json:"MemoryPeak"`
	IOReadBytes   uint64 `json:"IOReadBytes"`
	IOWriteBytes  uint64 `json:"IOWriteBytes"`
	IOReadOps     uint64 `json:"IOReadOps"`
	IOWriteOps    uint64 `json:"IOWriteOps"`
	PidsCurrent   uint64 `json:"PidsCurrent"`
	OOMKills      uint64 `json:"OOMKills"`
}

// encodeRecord is st as a record file. OutputSize and OutputStart are not
// in it: they come from the output log.
func encodeRecord(st Status) ([]byte, error) {
	l := st.Limits
	r := record{
		Version: recordVersion,
		ID:      st.ID, Owner: st.Owner, Command: st.Command, Args: st.Args, Env: st.Env, Dir: st.Dir,
		Limits: recordLimits{
			CPUWeight: l.CPUWeight, CPUs: l.CPUs, MemoryMax: l.MemoryMax, MemoryHigh: l.MemoryHigh,
			IOWeight: l.IOWeight, PidsMax: l.PidsMax,
		},
		Timeout: int64(st.Timeout), RequestID: st.RequestID,
		Network: string(st.Network), SecretEnvNames: st.SecretEnvNames,
		State: string(st.State), Reason: string(st.Reason),
		ExitCode: st.ExitCode, Signal: st.Signal, Message: st.Message,
		Created: st.Created, Started: st.Started, Ended: st.Ended,
		Usage: recordUsage{
			CPUUsageUsec: st.Usage.CPUUsageUsec, CPUUserUsec: st.Usage.CPUUserUsec, CPUSystemUsec: st.Usage.CPUSystemUsec,
			MemoryCurrent: st.Usage.MemoryCurrent, MemoryPeak: st.Usage.MemoryPeak,
			IOReadBytes: st.Usage.IOReadBytes, IOWriteBytes: st.Usage.IOWriteBytes,
			IOReadOps: st.Usage.IOReadOps, IOWriteOps: st.Usage.IOWriteOps,
			PidsCurrent: st.Usage.PidsCurrent, OOMKills: st.Usage.OOMKills,
		},
	}
	for _, m := range l.IOMax {
		r.Limits.IOMax = append(r.Limits.IOMax, recordIOMax{Device: m.Device, ReadBPS: m.ReadBPS, WriteBPS: m.WriteBPS, ReadIOPS: m.ReadIOPS, WriteIOPS: m.WriteIOPS})
	}
	return json.MarshalIndent(r, "", "  ")
}

// decodeRecord is the Status of a record file. A record of a newer format
// than recordVersion is refused: its fields may not mean what this version
// reads them as.
func decodeRecord(b []byte) (Status, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return Status{}, err
	}
	if err := r.check(); err != nil {
		return Status{}, err
	}
	return r.status(), nil
}

// check refuses a record that this package cannot take as it is: one of a
// newer format (errNewerRecord), or with a version or a state that no
// jobworker writes.
func (r *record) check() error {
	if r.Version > recordVersion {
		return fmt.Errorf("%w: version %d, this jobworker reads up to %d; a newer jobworker wrote it, run that one", errNewerRecord, r.Version, recordVersion)
	}
	if r.Version < 0 {
		return fmt.Errorf("record format version %d is not valid", r.Version)
	}
	switch State(r.State) {
	case StatePending, StateRunning, StateCompleted, StateFailed, StateStopped:
	default:
		return fmt.Errorf("record state %q is not a job state", r.State)
	}
	return nil
}

// status is the Status a record holds.
func (r *record) status() Status {
	l := r.Limits
	st := Status{
		ID: r.ID, Owner: r.Owner, Command: r.Command, Args: r.Args, Env: r.Env, Dir: r.Dir,
		Limits: cgroupfs.Limits{
			CPUWeight: l.CPUWeight, CPUs: l.CPUs, MemoryMax: l.MemoryMax, MemoryHigh: l.MemoryHigh,
			IOWeight: l.IOWeight, PidsMax: l.PidsMax,
		},
		Timeout: time.Duration(r.Timeout), RequestID: r.RequestID,
		Network: Network(r.Network), SecretEnvNames: r.SecretEnvNames,
		State: State(r.State), Reason: Reason(r.Reason),
		ExitCode: r.ExitCode, Signal: r.Signal, Message: r.Message,
		Created: r.Created, Started: r.Started, Ended: r.Ended,
		Usage: cgroupfs.Usage{
			CPUUsageUsec: r.Usage.CPUUsageUsec, CPUUserUsec: r.Usage.CPUUserUsec, CPUSystemUsec: r.Usage.CPUSystemUsec,
			MemoryCurrent: r.Usage.MemoryCurrent, MemoryPeak: r.Usage.MemoryPeak,
			IOReadBytes: r.Usage.IOReadBytes, IOWriteBytes: r.Usage.IOWriteBytes,
			IOReadOps: r.Usage.IOReadOps, IOWriteOps: r.Usage.IOWriteOps,
			PidsCurrent: r.Usage.PidsCurrent, OOMKills: r.Usage.OOMKills,
		},
	}
	for _, m := range l.IOMax {
		st.Limits.IOMax = append(st.Limits.IOMax, cgroupfs.IOMax{Device: m.Device, ReadBPS: m.ReadBPS, WriteBPS: m.WriteBPS, ReadIOPS: m.ReadIOPS, WriteIOPS: m.WriteIOPS})
	}
	return st
}
