package service

import (
	"context"
	"errors"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobworker/jobworker/internal/codec"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/jobworker/jobworker/ringlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// timeWindow is a GetJobOutput's since and until (nil: unset).
type timeWindow struct {
	since, until *time.Time
}

func newTimeWindow(req *jobworkerv1.GetJobOutputRequest) (timeWindow, error) {
	var w timeWindow
	for _, f := range []struct {
		name string
		ts   *timestamppb.Timestamp
		dst  **time.Time
	}{{"since", req.GetSince(), &w.since}, {"until", req.GetUntil(), &w.until}} {
		if f.ts == nil {
			continue
		}
		if err := f.ts.CheckValid(); err != nil {
			return w, status.Errorf(codes.InvalidArgument, "%s: %v", f.name, err)
		}
		t := f.ts.AsTime()
		*f.dst = &t
	}
	if w.since != nil && w.until != nil && w.until.Before(*w.since) {
		return w, status.Errorf(codes.InvalidArgument, "until (%s) is before since (%s)", w.until.Format(time.RFC3339), w.since.Format(time.RFC3339))
	}
	return w, nil
}

// errUntilPassed: a follower's until has passed while it waited.
var errUntilPassed = errors.New("until passed")

// wait is r.Wait that gives up with errUntilPassed once until passes.
func (w timeWindow) wait(ctx context.Context, r *ringlog.Reader) error {
	if w.until == nil {
		return r.Wait(ctx)
	}
	wctx, cancel := context.WithDeadline(ctx, *w.until)
	defer cancel()
	err := r.Wait(wctx)
	if err != nil && ctx.Err() == nil {
		return errUntilPassed
	}
	return err
}

// A GetJobOutput message carries at most about 1 MiB: large enough for
// throughput, well under the default 4 MiB message limit. When many
// streams are open each chunk is an equal share of outputBudget, down to
// about minOutputChunk, and a stream has at most chunksInFlight chunks
// that gRPC has not yet written to its connection (codec.Chunk: gRPC
// sends a chunk from its buffer and frees it once written), none while it
// waits for output: so the output in flight stays within chunksInFlight
// budgets however many follow. A budget of 4 MiB still gives one follower
// (up to four) whole 1 MiB chunks; with 20 followers of a fast job the
// server's peak RSS was a half to two thirds of what a 16 MiB budget
// gave, for more messages: in the test VM the last follower took a third
// longer (BENCHMARKS.md).
//
// Each chunk is a power of two less chunkHeadroom, so that the encoded
// message (the data and at most 28 bytes of fields) fits a buffer of that
// power of two where a peer decodes it into one (gRPC's pools have
// power-of-two sizes).
const (
	minOutputChunk = 16 << 10
	chunkHeadroom  = 64
	outputBudget   = 4 << 20
	chunksInFlight = 2
)

// outputStreams are the GetJobOutput streams of a server: how many are
// open, and their chunk buffers, one pool per chunk size:
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

// poolOf is the pool of a chunk buffer of capacity c.
func (o outputStreams) poolOf(c int) *sync.Pool {
	return &o.pools[bits.TrailingZeros(uint(c+chunkHeadroom))-bits.TrailingZeros(minOutputChunk)]
}

// inFlight counts a stream's chunks that gRPC has not yet written. It is
// the mem.BufferPool of their buffers: gRPC's Put of a written chunk
// returns the buffer to its pool and lets the stream send another.
type inFlight struct {
	out   outputStreams
	n     atomic.Int32
	freed chan struct{} // a token each time a chunk is written
}

func newInFlight(out outputStreams) *inFlight {
	return &inFlight{out: out, freed: make(chan struct{}, 1)}
}

// wait returns when fewer than chunksInFlight chunks are in flight.
func (f *inFlight) wait(ctx context.Context) error {
	for f.n.Load() >= chunksInFlight {
		select {
		case <-f.freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// buffer wraps b, a chunk to send, as a buffer in flight until gRPC frees
// it. (mem.NewBuffer would never free a buffer under 1 KiB; chunks are at
// least minOutputChunk.)
func (f *inFlight) buffer(b *[]byte) mem.Buffer {
	f.n.Add(1)
	return mem.NewBuffer(b, f)
}

// Get is never called: gRPC only frees the buffers of inFlight.
func (f *inFlight) Get(n int) *[]byte { b := make([]byte, n); return &b }

// Put takes back a chunk's buffer that gRPC has written (or dropped).
func (f *inFlight) Put(b *[]byte) {
	*b = (*b)[:cap(*b)]
	f.out.poolOf(cap(*b)).Put(b)
	f.n.Add(-1)
	select {
	case f.freed <- struct{}{}:
	default:
	}
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
	w, err := newTimeWindow(req)
	if err != nil {
		return err
	}
	if w.since != nil {
		off = max(off, log.OffsetAt(*w.since))
	}
	follow := req.GetFollow()
	if w.until != nil && !time.Now().Before(*w.until) {
		follow = false // nothing that arrives from now on is selected
	}
	// An offset the disk cap has dropped comes back from the first read as
	// a drop: the next chunk says how much was skipped.
	r := log.NewReader(ctx, off, false)
	defer r.Close()
	s.out.open.Add(1)
	defer s.out.open.Add(-1)
	flight := newInFlight(s.out)
	var dropped int64
	for {
		// Every turn checks the client: a stream ends when its client goes
		// away, whatever the log returns.
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		// A follower waiting for output holds no buffer: thousands of
		// them wait at once. One whose client is slow holds
		// chunksInFlight chunks; chunks shrink as streams grow
		// (outputStreams.pool), which bounds the memory in flight.
		if err := flight.wait(ctx); err != nil {
			return status.FromContextError(err).Err()
		}
		if follow {
			if err := w.wait(ctx, r); err == errUntilPassed {
				follow = false // read what is there, then end
			} else if err != nil {
				return status.FromContextError(err).Err()
			}
		}
		// The chunk ends before what arrived after until, and
		// (ReadTimedChunk) where the time index has a later time.
		at0 := r.Offset()
		limit := int64(-1)
		if w.until != nil {
			end := log.OffsetAt(w.until.Add(time.Nanosecond))
			if end <= at0 && end < log.Size() {
				return nil
			}
			if end > at0 && end < log.Size() {
				limit = end - at0
			}
		}
		pool := s.out.pool()
		bp := pool.Get().(*[]byte)
		buf := *bp
		if limit >= 0 && limit < int64(len(buf)) {
			buf = buf[:limit]
		}
		// What is there now, coalesced into one chunk of one time.
		n, at, t, err := r.ReadTimedChunk(ctx, buf)
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
		case w.until != nil && t.After(*w.until):
			// Bytes that arrived after until (since the look-up above):
			// the chunk's bytes are all of its time or later.
			pool.Put(bp)
			return nil
		case n == 0:
			pool.Put(bp)
			if !follow {
				return nil
			}
			continue
		}
		resp := &jobworkerv1.GetJobOutputResponse{Offset: at, Dropped: dropped}
		if !t.IsZero() {
			resp.Time = timestamppb.New(t)
		}
		*bp = (*bp)[:n]
		// The chunk is gRPC's to free from here: a stream ends without
		// waiting for it.
		err = ss.SendMsg(&codec.Chunk{Response: resp, Data: flight.buffer(bp)})
		if err != nil {
			return err
		}
		s.metrics.streamed.Add(float64(n))
		dropped = 0
	}
}
