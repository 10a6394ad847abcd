//go:build !integration

package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestRunRequest: how `run`'s flags land in the StartJob request. The
// --io-* flags take DEV=RATE (sizes with K, M, G for the bps ones, plain
// counts for the iops ones), are merged into one IOMax per device, and the
// device is sent as given (the server resolves it); --cpu-weight and the
// other limits are sent only when given, 0 included, so the server can
// tell "unset" (its default) from a value it must refuse; --workdir is sent
// as given, not made absolute against the client's directory, since the
// job runs on the server.
func TestRunRequest(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	f64 := func(v float64) *float64 { return &v }
	tests := []struct {
		name string
		args []string // between "run" and "--"
		want *jobworkerv1.StartJobRequest
	}{
		{"no flags", nil, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{}}},
		{"--cpu-weight 1", []string{"--cpu-weight", "1"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{CpuWeight: u32(1)}}},
		{"--cpu-weight 10000", []string{"--cpu-weight", "10000"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{CpuWeight: u32(10000)}}},
		{"--cpu-weight 0 is sent for the server to refuse", []string{"--cpu-weight", "0"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{CpuWeight: u32(0)}}},
		{"--io-weight", []string{"--io-weight", "500"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{IoWeight: u32(500)}}},
		{"--workdir", []string{"--workdir", "/srv/data"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, WorkingDir: "/srv/data", Limits: &jobworkerv1.Limits{}}},
		{"--workdir relative is sent as given", []string{"--workdir", "data"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, WorkingDir: "data", Limits: &jobworkerv1.Limits{}}},
		{"--io-read-bps with M", []string{"--io-read-bps", "/dev/sda=10M"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{
			IoMax: []*jobworkerv1.IOMax{{Device: "/dev/sda", ReadBps: 10 << 20}}}}},
		{"--io-write-bps MAJ:MIN, 1.5G", []string{"--io-write-bps", "8:16=1.5G"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{
			IoMax: []*jobworkerv1.IOMax{{Device: "8:16", WriteBps: 3 << 29}}}}},
		{"--io-read-bps of 1 byte", []string{"--io-read-bps", "/dev/sda=1"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{
			IoMax: []*jobworkerv1.IOMax{{Device: "/dev/sda", ReadBps: 1}}}}},
		{"--io-read-iops", []string{"--io-read-iops", "/dev/sda=100"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{
			IoMax: []*jobworkerv1.IOMax{{Device: "/dev/sda", ReadIops: 100}}}}},
		{"--io-write-iops", []string{"--io-write-iops", "/dev/sda=1"}, &jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{
			IoMax: []*jobworkerv1.IOMax{{Device: "/dev/sda", WriteIops: 1}}}}},
		{"all four on one device, one IOMax", []string{"--io-read-bps", "/dev/sda=1K", "--io-write-bps", "/dev/sda=2K", "--io-read-iops", "/dev/sda=3", "--io-write-iops", "/dev/sda=4"},
			&jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{
				IoMax: []*jobworkerv1.IOMax{{Device: "/dev/sda", ReadBps: 1 << 10, WriteBps: 2 << 10, ReadIops: 3, WriteIops: 4}}}}},
		{"two devices", []string{"--io-write-iops", "8:0=5", "--io-read-bps", "/dev/sdb=1M", "--io-write-bps", "8:0=2M"},
			&jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Limits: &jobworkerv1.Limits{
				IoMax: []*jobworkerv1.IOMax{{Device: "/dev/sdb", ReadBps: 1 << 20}, {Device: "8:0", WriteBps: 2 << 20, WriteIops: 5}}}}},
		{"every other field", []string{"--cpus", "1.5", "--memory-limit", "64M", "--pids-limit", "32", "--timeout", "3s", "-e", "K=v", "--env", "L=w=x"},
			&jobworkerv1.StartJobRequest{Command: "cmd", Args: []string{"a"}, Env: map[string]string{"K": "v", "L": "w=x"}, Timeout: durationpb.New(3 * time.Second),
				Limits: &jobworkerv1.Limits{Cpus: f64(1.5), MemoryMaxBytes: u64(64 << 20), PidsMax: u64(32)}}},
	}
	for _, tt := range tests {
		args := append(append([]string{"run"}, tt.args...), "--", "cmd", "a")
		c, err := parseCLI(t, args...)
		if err != nil {
			t.Errorf("%s: parse %q: %v", tt.name, args, err)
			continue
		}
		got, err := c.Run.request()
		if err != nil {
			t.Errorf("%s: request(%q) = %v", tt.name, args, err)
			continue
		}
		// The order of the devices is not a promise.
		slices.SortFunc(got.GetLimits().GetIoMax(), func(a, b *jobworkerv1.IOMax) int { return strings.Compare(a.Device, b.Device) })
		if !proto.Equal(got, tt.want) {
			t.Errorf("%s: request(%q) =\n%v\nwant\n%v", tt.name, args, got, tt.want)
		}
	}
}

// TestRunRequestRefuses: a DEV=RATE the client cannot read is a usage
// error of jobworker's own (run exits 125 for it) that names the flag and
// the value, before any connection.
func TestRunRequestRefuses(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"--io-read-bps", "/dev/sda"}, `--io-read-bps "/dev/sda": want DEV=RATE`},
		{[]string{"--io-write-bps", "=10M"}, `--io-write-bps "=10M": want DEV=RATE`},
		{[]string{"--io-read-bps", "/dev/sda=0"}, `--io-read-bps "/dev/sda=0": the rate must be a positive number`},
		{[]string{"--io-read-bps", "/dev/sda=lots"}, `--io-read-bps "/dev/sda=lots": the rate must be a positive number`},
		{[]string{"--io-read-bps", "/dev/sda=-1"}, `--io-read-bps "/dev/sda=-1": the rate must be a positive number`},
		{[]string{"--io-read-iops", "/dev/sda=0"}, `--io-read-iops "/dev/sda=0": the rate must be a positive number`},
		{[]string{"--io-write-iops", "/dev/sda=1.5"}, `--io-write-iops "/dev/sda=1.5": the rate must be a positive number`},
		{[]string{"--io-write-iops", "/dev/sda=10K"}, `--io-write-iops "/dev/sda=10K": the rate must be a positive number`},
	}
	for _, tt := range tests {
		args := append(append([]string{"run"}, tt.args...), "--", "cmd")
		c, err := parseCLI(t, args...)
		if err != nil {
			t.Errorf("parse %q: %v", args, err)
			continue
		}
		req, err := c.Run.request()
		var ee *exitCodeError
		if !errors.As(err, &ee) || !ee.failed || !strings.HasPrefix(ee.msg, tt.msg) {
			t.Errorf("request(%q) = %v, %v; want a failure of jobworker's own with %q", args, req, err, tt.msg)
		}
		if f := runFailed(err); !errors.As(f, &ee) || ee.code != exitRunFailed {
			t.Errorf("request(%q): run would exit %v, want %d", args, f, exitRunFailed)
		}
	}
}
