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
	found, err := s.lookup(ctx, "GetJobOutput", req.GetId())
	if err != nil {
		return err
	}
	log, err := s.m.Output(found.ID)
	if err != nil {
		return jobError(err)
	}
	off := log.Resolve(req.GetOffset())
	if off > log.Size() {
		return status.Errorf(codes.OutOfRange, "offset %d is past the end of the output (%d bytes)", off, log.Size())
	}
	// An offset the disk cap has dropped comes back from the first read as
	// a drop: the next chunk says how much was skipped.
	r := log.NewReader(ctx, off, false)
	defer r.Close()
	s.out.open.Add(1)
	defer s.out.open.Add(-1)
	var dropped int64
	for {
		// Every turn checks the client: a stream ends when its client goes
		// away, whatever the log returns.
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		// A follower waiting for output holds no buffer: thousands of
		// them wait at once. One whose send waits for flow control holds
		// a chunk; chunks shrink as streams grow (outputStreams.pool),
		// which bounds the memory in flight.
		if req.GetFollow() {
			if err := r.Wait(ctx); err != nil {
				return status.FromContextError(err).Err()
			}
		}
		pool := s.out.pool()
		bp := pool.Get().(*[]byte)
		// What is there now, coalesced into one chunk.
		n, at, err := r.ReadChunk(ctx, *bp)
		var de *ringlog.DroppedError
		switch {
		case errors.As(err, &de):
			pool.Put(bp)
			dropped += de.Dropped()
			continue
		case errors.Is(err, ringlog.ErrRemoved):
			pool.Put(bp)
			return status.Errorf(codes.NotFound, "job %s was removed by retention while its output was read", found.ID)
		case err == io.EOF:
			pool.Put(bp)
			return nil
		case ctx.Err() != nil:
			pool.Put(bp)
			return status.FromContextError(ctx.Err()).Err()
		case err != nil:
			pool.Put(bp)
			return jobError(err)
		case n == 0:
			pool.Put(bp)
			if !req.GetFollow() {
				return nil
			}
			continue
		}
		err = ss.Send(&jobworkerv1.GetJobOutputResponse{Offset: at, Data: (*bp)[:n], Dropped: dropped})
		pool.Put(bp)
		if err != nil {
			return err
		}
		dropped = 0
	}
}
