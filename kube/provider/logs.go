package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/jobworker/jobworker/client"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// errLimit ends a log stream that reached its limitBytes.
var errLimit = errors.New("limitBytes reached")

// GetContainerLogs streams the job's output, byte for byte: from the start,
// or from where its last Tail lines start (none for tailLines=0, with
// KeepTailLines in front of the kubelet API), and not before SinceSeconds or
// SinceTime (the host's time index); to the current end, or on until the
// job ends with Follow; with Timestamps each line prefixed by the time its
// first byte arrived; at most LimitBytes bytes, prefixes included, as a
// kubelet counts them. A stream that drops (the host restarting) resumes
// from the next byte (client.FollowRequest). Previous is refused: a job's
// container never restarts.
func (p *Provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	if opts.Previous {
		return nil, errdefs.InvalidInput("a jobworker pod's container never restarts: there is no previous container")
	}
	id, err := p.jobOf(namespace, podName)
	if err != nil {
		return nil, err
	}
	req := &jobworkerv1.GetJobOutputRequest{Id: id, Follow: opts.Follow, Since: since(opts, time.Now())}
	if opts.Tail > 0 || tailLinesGiven(ctx) {
		if req.Offset, err = client.TailOffset(ctx, p.cfg.API, id, opts.Tail); err != nil {
			return nil, err
		}
	}
	pr, pw := io.Pipe()
	var w io.Writer = pw
	if opts.LimitBytes > 0 {
		w = &limitWriter{w: pw, left: int64(opts.LimitBytes)}
	}
	emit := func(r *jobworkerv1.GetJobOutputResponse) error {
		_, err := w.Write(r.GetData())
		return err
	}
	if opts.Timestamps {
		emit = client.Timestamped(w)
	}
	p.wg.Go(func() {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(p.ctx, cancel)
		defer stop()
		_, err := client.FollowRequest(ctx, p.cfg.API, req, emit, io.Discard)
		if errors.Is(err, errLimit) {
			err = nil
		}
		pw.CloseWithError(err)
	})
	return pr, nil
}

// tailLinesKey marks a log request's context that named tailLines.
type tailLinesKey struct{}

// KeepTailLines is h with whether each request named tailLines kept in its
// context. Virtual Kubelet's ContainerLogOpts gives both tailLines=0
// (`kubectl logs --tail=0`: no line) and no tailLines (every line) as Tail
// 0; GetContainerLogs tells them apart by this.
func KeepTailLines(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("tailLines") != "" {
			r = r.WithContext(context.WithValue(r.Context(), tailLinesKey{}, true))
		}
		h.ServeHTTP(w, r)
	})
}

// tailLinesGiven reports whether ctx is a log request's that named
// tailLines (KeepTailLines).
func tailLinesGiven(ctx context.Context) bool {
	given, _ := ctx.Value(tailLinesKey{}).(bool)
	return given
}

// since is the earliest arrival time a log request asks for, or nil.
func since(opts api.ContainerLogOpts, now time.Time) *timestamppb.Timestamp {
	switch {
	case opts.SinceSeconds > 0:
		return timestamppb.New(now.Add(-time.Duration(opts.SinceSeconds) * time.Second))
	case !opts.SinceTime.IsZero():
		return timestamppb.New(opts.SinceTime)
	}
	return nil
}

// limitWriter passes on at most left bytes, then says errLimit.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if int64(len(b)) < l.left {
		l.left -= int64(len(b))
		return l.w.Write(b)
	}
	n, err := l.w.Write(b[:l.left])
	l.left = 0
	if err == nil {
		err = errLimit
	}
	return n, err
}
