package service

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/jobworker/jobworker/ringlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A GetJobOutput message carries at most about 1 MiB: large enough for
// throughput, well under the default 4 MiB message limit. When many
// streams are open each gets an equal share of outputBudget, down to
// about minOutputChunk, so that the output in flight stays near the budget
// however many follow (a stream whose send waits for flow control holds
// its chunk, and gRPC's send queue about one more).
//
// Each chunk is a power of two less chunkHeadroom, so that the encoded
// message (the data and at most 28 bytes of fields) fits a buffer of that
// power of two: gRPC encodes and decodes each message in a buffer from a
// pool of power-of-two sizes and clears the whole buffer first, so a
// message just over a power of two would cost a buffer twice its size, and
// its clearing, on both ends.
const (
	minOutputChunk = 16 << 10
	chunkHeadroom  = 64
	outputBudget   = 16 << 20
)

// outputStreams are the GetJobOutput streams of a server: how many are
// open, and their coalescing buffers, one pool per chunk size:
// (minOutputChunk << i) - chunkHeadroom, from 16 KiB to 1 MiB.
type outputStreams struct {
	open  *atomic.Int64
	pools *[7]sync.Pool
}

func newOutputStreams() outputStreams {
	o := outputStreams{open: new(atomic.Int64), pools: new([7]sync.Pool)}
	for i := range o.pools {
		size := minOutputChunk<<i - chunkHeadroom
		o.pools[i].New = func() any { b := make([]byte, size); return &b }
	}
	return o
}

// pool is the pool of the largest chunk size within the share of the
// output budget of each of the streams open now.
func (o outputStreams) pool() *sync.Pool {
	share := outputBudget / max(o.open.Load(), 1)
	i := len(o.pools) - 1
	for i > 0 && int64(minOutputChunk<<i) > share {
		i--
	}
	return &o.pools[i]
}

// GetJobOutput streams output from an offset, following if asked.
func (s *api) GetJobOutput(req *jobworkerv1.GetJobOutputRequest, ss grpc.ServerStreamingServer[jobworkerv1.GetJobOutputResponse]) error {
	ctx := ss.Context()
	if _, err := s.lookup(ctx, "GetJobOutput", req.GetId()); err != nil {
		return err
	}
	log, err := s.m.Output(req.GetId())
	if err != nil {
		return jobError(err)
	}
	off := log.Resolve(req.GetOffset())
	if off > log.Size() {
		return status.Errorf(codes.OutOfRange, "offset %d is past the end of the output (%d bytes)", off, log.Size())
	}
	var dropped int64
	if start := log.Start(); off < start {
		dropped, off = start-off, start
	}
	r := log.NewReader(ctx, off, false)
	defer func() { r.Close() }() // r is replaced when the disk cap overtakes it
	s.out.open.Add(1)
	defer s.out.open.Add(-1)
	for {
		// A follower waiting for output holds no buffer: thousands of
		// them wait at once. One whose send waits for flow control holds
		// a chunk; chunks shrink as streams grow (outputStreams.pool), which bounds
		// the memory in flight.
		pool := s.out.pool()
		bp := pool.Get().(*[]byte)
		buf := *bp
		// Coalesce what is there now into one chunk.
		at := r.Offset()
		n := 0
		var err error
		for n < len(buf) {
			var k int
			k, err = r.Read(buf[n:])
			n += k
			if err != nil || k == 0 {
				break
			}
		}
		// The disk cap overtook this reader: skip to what is kept, and say
		// how much was skipped on the chunk after the gap.
		var gap int64
		var de *ringlog.DroppedError
		if errors.As(err, &de) {
			gap = de.Start - r.Offset()
			r.Close()
			r = log.NewReader(ctx, de.Start, false)
			err = nil
		}
		if err != nil && err != io.EOF {
			pool.Put(bp)
			return jobError(err)
		}
		if n > 0 {
			err := ss.Send(&jobworkerv1.GetJobOutputResponse{Offset: at, Data: buf[:n], Dropped: dropped})
			pool.Put(bp)
			if err != nil {
				return err
			}
			dropped = gap
			continue
		}
		pool.Put(bp)
		if de != nil {
			dropped += gap
			continue
		}
		// Nothing more now: done, or wait for more.
		if !req.GetFollow() || log.Closed() && r.Offset() >= log.Size() {
			return nil
		}
		select {
		case <-log.Wait(r.Offset()):
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}
