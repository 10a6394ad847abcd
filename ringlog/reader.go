package ringlog

import (
	"context"
	"errors"
	"io"
)

// Reader reads a log from an offset held in it. It keeps the segment file
// it reads open; Close releases it. Read makes it an io.Reader; a follower
// that must not hold a buffer while it waits calls Wait and then ReadChunk,
// one that may calls ReadFollow. A Reader is for one goroutine at a time.
//
// A reader that the disk cap overtook gets a *DroppedError once, and then
// reads on from the oldest byte kept; one that reaches a gap of a damaged
// log (see Open) gets one with Missing set, and reads on after the gap.
type Reader struct {
	l      *Log
	ctx    context.Context // Read's
	off    int64
	follow bool // Read's
	file   segFile
}

// NewReader returns a Reader at off (negative: counted back from the end,
// as Resolve). With follow, Read waits for new bytes until the log is
// closed or ctx is done; otherwise it ends (io.EOF) at the end the log has
// when it gets there. ReadChunk, Wait and ReadFollow take a context of
// their own and do not look at follow.
func (l *Log) NewReader(ctx context.Context, off int64, follow bool) *Reader {
	return &Reader{l: l, ctx: ctx, off: l.Resolve(off), follow: follow}
}

// Offset is the offset of the next byte the reader returns.
func (r *Reader) Offset() int64 { return r.off }

// ReadChunk copies into p the bytes from the reader's offset that the log
// holds now, as many as fit, in as many reads of the ring and the segment
// files as it takes, and moves the reader past them. off is the offset of
// p[0]. It never waits for output: at the end of an open log it returns 0,
// off and nil; at the end of a closed one io.EOF. It waits only for a read
// slot (see readAt), and gives that up with ctx.Err() when ctx ends.
//
// It returns bytes or an error, never both: an error met after some bytes
// is returned by the next call. When the disk cap has dropped the bytes at
// the reader's offset, or they are in a gap of a damaged log, the error is
// a *DroppedError and the reader moves to its Start, where the next call
// reads on.
func (r *Reader) ReadChunk(ctx context.Context, p []byte) (n int, off int64, err error) {
	off = r.off
	for n < len(p) {
		k, rerr := r.l.readAtCtx(ctx, p[n:], off+int64(n), &r.file)
		n += k
		if rerr != nil {
			if n > 0 {
				break
			}
			var de *DroppedError
			if errors.As(rerr, &de) {
				r.off = de.Start
			}
			return 0, off, rerr
		}
		if k == 0 {
			break
		}
	}
	r.off += int64(n)
	return n, off, nil
}

// Wait returns nil once ReadChunk has something to return (a byte at the
// reader's offset, a drop of it, the log's close), or ctx.Err() when ctx
// ends first. A reader past the end waits until the log reaches its
// offset.
func (r *Reader) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-r.l.Wait(r.off):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReadFollow is ReadChunk that waits at the end of an open log until bytes
// arrive (n > 0), the log is closed (io.EOF) or ctx ends (ctx.Err()). A
// drop is returned as ReadChunk returns it.
func (r *Reader) ReadFollow(ctx context.Context, p []byte) (n int, off int64, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, r.off, err
		}
		n, off, err := r.ReadChunk(ctx, p)
		if n > 0 || err != nil || len(p) == 0 {
			return n, off, err
		}
		if err := r.Wait(ctx); err != nil {
			return 0, r.off, err
		}
	}
}

// Read reads the next bytes with the context and follow given to
// NewReader: ReadFollow with follow, otherwise ReadChunk with io.EOF at the
// end.
func (r *Reader) Read(p []byte) (int, error) {
	if r.follow {
		n, _, err := r.ReadFollow(r.ctx, p)
		return n, err
	}
	n, _, err := r.ReadChunk(r.ctx, p)
	if n == 0 && err == nil && len(p) > 0 {
		err = io.EOF
	}
	return n, err
}

// Close releases the segment file the reader holds open. The reader can
// still be used; it reopens what it needs.
func (r *Reader) Close() error {
	r.file.close()
	return nil
}
