//go:build !integration

package service

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

func TestLimitsFromProto(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	f64 := func(v float64) *float64 { return &v }
	tests := []struct {
		name string
		in   *jobworkerv1.Limits
		want string // substring of the error; "" for valid
	}{
		{"nil", nil, ""},
		{"empty", &jobworkerv1.Limits{}, ""},
		{"cpu weight 1", &jobworkerv1.Limits{CpuWeight: u32(1)}, ""},
		{"cpu weight 0", &jobworkerv1.Limits{CpuWeight: u32(0)}, "cpu_weight 0 is out of range"},
		{"cpu weight 10001", &jobworkerv1.Limits{CpuWeight: u32(10001)}, "out of range 1-10000"},
		{"cpus 0 means no cap", &jobworkerv1.Limits{Cpus: f64(0)}, ""},
		{"cpus negative", &jobworkerv1.Limits{Cpus: f64(-1)}, "cpus -1"},
		{"cpus NaN", &jobworkerv1.Limits{Cpus: f64(math.NaN())}, "cpus NaN"},
		{"cpus huge", &jobworkerv1.Limits{Cpus: f64(1e9)}, "out of range"},
		{"memory below 1 MiB", &jobworkerv1.Limits{MemoryMaxBytes: u64(1000)}, "below the minimum"},
		{"memory high over max", &jobworkerv1.Limits{MemoryMaxBytes: u64(2 << 20), MemoryHighBytes: u64(3 << 20)}, "exceeds"},
		{"io weight 0", &jobworkerv1.Limits{IoWeight: u32(0)}, "io_weight 0"},
		{"io max without a rate", &jobworkerv1.Limits{IoMax: []*jobworkerv1.IOMax{{Device: "8:0"}}}, "sets no rate"},
		{"io max bad device", &jobworkerv1.Limits{IoMax: []*jobworkerv1.IOMax{{Device: "../x", WriteBps: 1}}}, "block device path or MAJ:MIN"},
		{"io max ok", &jobworkerv1.Limits{IoMax: []*jobworkerv1.IOMax{{Device: "8:0", WriteBps: 1}}}, ""},
		{"pids 0", &jobworkerv1.Limits{PidsMax: u64(0)}, "at least one process"},
		{"pids 1", &jobworkerv1.Limits{PidsMax: u64(1)}, ""},
	}
	for _, tt := range tests {
		_, err := limitsFromProto(tt.in)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: limitsFromProto = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// FuzzLimitsFromProto: hostile limits never panic, and accepted ones are in
// range.
func FuzzLimitsFromProto(f *testing.F) {
	f.Add(uint32(100), 1.5, uint64(1<<30), uint64(1<<29), uint32(100), "8:0", uint64(1), uint64(10))
	f.Add(uint32(0), math.NaN(), uint64(0), uint64(0), uint32(0), "", uint64(0), uint64(0))
	f.Add(uint32(1<<31), math.Inf(1), uint64(1<<63), uint64(1<<64-1), uint32(99999), "../../dev/sda", uint64(1<<63), uint64(1<<63))
	f.Fuzz(func(t *testing.T, weight uint32, cpus float64, memMax, memHigh uint64, ioWeight uint32, dev string, bps, pids uint64) {
		l := &jobworkerv1.Limits{CpuWeight: &weight, Cpus: &cpus, MemoryMaxBytes: &memMax, MemoryHighBytes: &memHigh,
			IoWeight: &ioWeight, PidsMax: &pids, IoMax: []*jobworkerv1.IOMax{{Device: dev, WriteBps: bps}}}
		got, err := limitsFromProto(l)
		if err != nil {
			return
		}
		if got.CPUWeight < 1 || got.CPUWeight > 10000 || got.IOWeight < 1 || got.IOWeight > 10000 || got.PidsMax < 1 ||
			got.MemoryMax < 1<<20 || got.MemoryHigh > got.MemoryMax || math.IsNaN(got.CPUs) || got.CPUs < 0 || got.CPUs > 4096 {
			t.Fatalf("accepted %+v", got)
		}
	})
}

// TestChunkPool: chunks are 1 MiB (less the headroom) while the streams'
// shares of the output budget allow, and shrink by halves to 16 KiB as
// streams grow; a message with a full chunk and the largest offsets still
// encodes within the chunk's power of two.
func TestChunkPool(t *testing.T) {
	tests := []struct {
		streams int64
		want    int // the power of two; the chunk is chunkHeadroom less
	}{
		{0, 1 << 20},
		{1, 1 << 20},
		{4, 1 << 20},
		{5, 512 << 10},
		{8, 512 << 10},
		{9, 256 << 10},
		{16, 256 << 10},
		{17, 128 << 10},
		{32, 128 << 10},
		{33, 64 << 10},
		{64, 64 << 10},
		{65, 32 << 10},
		{128, 32 << 10},
		{129, 16 << 10},
		{1000, 16 << 10},
		{1 << 40, 16 << 10},
	}
	for _, tt := range tests {
		o := newOutputStreams()
		o.open.Store(tt.streams)
		bp := o.pool().Get().(*[]byte)
		if len(*bp) != tt.want-chunkHeadroom {
			t.Errorf("with %d streams the pool gives %d-byte buffers, want %d", tt.streams, len(*bp), tt.want-chunkHeadroom)
		}
		m := &jobworkerv1.GetJobOutputResponse{Offset: math.MaxInt64, Data: *bp, Dropped: math.MaxInt64}
		if n := proto.Size(m); n > tt.want {
			t.Errorf("with %d streams a full chunk encodes in %d bytes, over %d", tt.streams, n, tt.want)
		}
	}
}

// TestInFlight: a stream sends at most chunksInFlight chunks that gRPC has
// not written; each chunk written lets it send one more, and its buffer
// goes back to the pool of its size.
func TestInFlight(t *testing.T) {
	o := newOutputStreams()
	f := newInFlight(o)
	ctx := context.Background()
	var bufs []mem.Buffer
	for i := range chunksInFlight {
		if err := f.wait(ctx); err != nil {
			t.Fatalf("wait with %d in flight: %v", i, err)
		}
		bp := o.pools[i].Get().(*[]byte)
		*bp = (*bp)[:100]
		bufs = append(bufs, f.buffer(bp))
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.wait(short); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait with %d in flight = %v, want context.Canceled", chunksInFlight, err)
	}
	done := make(chan error)
	go func() { done <- f.wait(ctx) }()
	bufs[1].Free()
	if err := <-done; err != nil {
		t.Fatalf("wait after a chunk was written = %v", err)
	}
	bufs[0].Free()
	if n := f.n.Load(); n != 0 {
		t.Errorf("%d chunks in flight after all were written, want 0", n)
	}
	for i := range o.pools {
		if c := minOutputChunk<<i - chunkHeadroom; o.poolOf(c) != &o.pools[i] {
			t.Errorf("poolOf(%d) is not pool %d", c, i)
		}
	}
}
