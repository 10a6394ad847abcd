package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Follow hands a job's output from offset to emit, chunk by chunk as the
// server sends it, until the job ends when follow is set, or up to the
// current end. When the connection drops it resumes by itself from the
// byte after the last one emitted, so no byte is lost or repeated, and
// says so once per outage on notes. It returns the offset after the last
// byte emitted.
func Follow(ctx context.Context, api jobworkerv1.JobWorkerServiceClient, id string, offset int64, follow bool, emit func(*jobworkerv1.GetJobOutputResponse) error, notes io.Writer) (next int64, err error) {
	return FollowRequest(ctx, api, &jobworkerv1.GetJobOutputRequest{Id: id, Offset: offset, Follow: follow}, emit, notes)
}

// FollowRequest is Follow of a whole request (with since and until, which
// each resumed stream keeps); the request's offset moves on as it goes.
func FollowRequest(ctx context.Context, api jobworkerv1.JobWorkerServiceClient, req *jobworkerv1.GetJobOutputRequest, emit func(*jobworkerv1.GetJobOutputResponse) error, notes io.Writer) (next int64, err error) {
	offset := req.GetOffset()
	backoff := 100 * time.Millisecond
	reconnecting := false
	for {
		var stream grpc.ServerStreamingClient[jobworkerv1.GetJobOutputResponse]
		req.Offset = offset
		stream, err = api.GetJobOutput(ctx, req)
		if err == nil {
			for {
				var r *jobworkerv1.GetJobOutputResponse
				r, err = stream.Recv()
				if err != nil {
					break
				}
				if reconnecting {
					fmt.Fprintf(notes, "jobworker: reconnected; resuming at byte %d\n", r.GetOffset())
					reconnecting = false
				}
				if err = emit(r); err != nil {
					return offset, err
				}
				backoff = 100 * time.Millisecond
				offset = r.GetOffset() + int64(len(r.GetData()))
			}
			if err == io.EOF {
				if reconnecting {
					fmt.Fprintf(notes, "jobworker: reconnected; the output ends at byte %d\n", offset)
				}
				return offset, nil
			}
		}
		if ctx.Err() != nil {
			return offset, ctx.Err()
		}
		if status.Code(err) != codes.Unavailable || RefusedCertificate(err) {
			return offset, err
		}
		// The connection dropped: resume from the next byte.
		if !reconnecting {
			fmt.Fprintf(notes, "jobworker: connection lost (%s); reconnecting to resume at byte %d\n", lastCause(status.Convert(err).Message()), offset)
			reconnecting = true
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return offset, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
		if offset < 0 {
			offset = 0
		}
	}
}

// JobStatus is one snapshot of the status of the job id names (a whole ID
// or a prefix of one).
func JobStatus(ctx context.Context, api jobworkerv1.JobWorkerServiceClient, id string) (*jobworkerv1.Job, error) {
	st, err := api.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: id})
	if err != nil {
		return nil, err
	}
	r, err := st.Recv()
	if err != nil {
		return nil, err
	}
	return r.GetJob(), nil
}

// TailOffset finds the offset where the last n lines of a job's output
// start, reading back from the end in growing steps.
func TailOffset(ctx context.Context, api jobworkerv1.JobWorkerServiceClient, id string, n int) (int64, error) {
	j, err := JobStatus(ctx, api, id)
	if err != nil {
		return 0, err
	}
	size, start := j.GetOutputSize(), j.GetOutputStart()
	if n == 0 {
		return size, nil
	}
	for back := int64(64 << 10); ; back *= 4 {
		from := max(size-back, start)
		var buf bytes.Buffer
		stream, err := api.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: id, Offset: from})
		if err != nil {
			return 0, err
		}
		for {
			c, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, err
			}
			if end := c.GetOffset() + int64(len(c.GetData())); end > size {
				buf.Write(c.GetData()[:len(c.GetData())-int(end-size)])
				break
			}
			buf.Write(c.GetData())
		}
		data := buf.Bytes()
		// A final line without a newline counts as a line.
		end := len(data)
		if end > 0 && data[end-1] == '\n' {
			end--
		}
		count := 0
		for i := end - 1; i >= 0; i-- {
			if data[i] == '\n' {
				count++
				if count == n {
					return from + int64(i) + 1, nil
				}
			}
		}
		if from == start {
			return start, nil
		}
	}
}

// FinalStatus watches job id until it ends and returns its last status.
func FinalStatus(ctx context.Context, api jobworkerv1.JobWorkerServiceClient, id string) (*jobworkerv1.Job, error) {
	st, err := api.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: id, Watch: true})
	if err != nil {
		return nil, err
	}
	var last *jobworkerv1.Job
	for {
		r, err := st.Recv()
		if err == io.EOF {
			return last, nil
		}
		if err != nil {
			return nil, err
		}
		last = r.GetJob()
	}
}

// TimestampLayout is how Timestamped writes a line's time: RFC 3339 in UTC
// with nine fractional digits, so that the prefixes line up (a kubelet
// writes its log times so too).
const TimestampLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Timestamped is an emit for Follow that writes the output to w with each
// line prefixed by the time its first byte arrived (TimestampLayout) and a
// space: the time of the chunk the line starts in, since every byte of a
// chunk arrived at or after the chunk's time and before the next chunk's.
// A line the server has no time for (output written before it kept a time
// index) gets "-" in place of a time.
func Timestamped(w io.Writer) func(*jobworkerv1.GetJobOutputResponse) error {
	lineStart := true
	var out []byte
	return func(r *jobworkerv1.GetJobOutputResponse) error {
		prefix := "- "
		if r.GetTime() != nil {
			prefix = r.GetTime().AsTime().UTC().Format(TimestampLayout) + " "
		}
		out = out[:0]
		for _, b := range r.GetData() {
			if lineStart {
				out = append(out, prefix...)
			}
			out = append(out, b)
			lineStart = b == '\n'
		}
		_, err := w.Write(out)
		return err
	}
}
