package provider

import (
	"context"
	"errors"
	"io"

	"github.com/jobworker/jobworker/client"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
)

// errLimit ends a log stream that reached its limitBytes.
var errLimit = errors.New("limitBytes reached")

// GetContainerLogs streams the job's output, byte for byte: from the start,
// or from where its last Tail lines start; to the current end, or on until
// the job ends with Follow; at most LimitBytes bytes. A stream that drops
// (the host restarting) resumes from the next byte (client.Follow). The
// output carries no times, so Timestamps, SinceSeconds and SinceTime are
// refused, as is Previous: a job's container never restarts.
func (p *Provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	switch {
	case opts.Timestamps:
		return nil, errdefs.InvalidInput("jobworker does not record when output was written: timestamps are not supported")
	case opts.SinceSeconds > 0 || !opts.SinceTime.IsZero():
		return nil, errdefs.InvalidInput("jobworker does not record when output was written: since is not supported")
	case opts.Previous:
		return nil, errdefs.InvalidInput("a jobworker pod's container never restarts: there is no previous container")
	}
	id, err := p.jobOf(namespace, podName)
	if err != nil {
		return nil, err
	}
	var offset int64
	if opts.Tail > 0 {
		if offset, err = client.TailOffset(ctx, p.cfg.API, id, opts.Tail); err != nil {
			return nil, err
		}
	}
	pr, pw := io.Pipe()
	w := &limitWriter{w: pw, left: int64(opts.LimitBytes), unlimited: opts.LimitBytes == 0}
	p.wg.Go(func() {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(p.ctx, cancel)
		defer stop()
		_, err := client.Follow(ctx, p.cfg.API, id, offset, opts.Follow, func(r *jobworkerv1.GetJobOutputResponse) error {
			_, err := w.Write(r.GetData())
			return err
		}, io.Discard)
		if errors.Is(err, errLimit) {
			err = nil
		}
		pw.CloseWithError(err)
	})
	return pr, nil
}

// limitWriter passes on at most left bytes, then says errLimit; with
// unlimited set it passes everything.
type limitWriter struct {
	w         io.Writer
	left      int64
	unlimited bool
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if l.unlimited {
		return l.w.Write(b)
	}
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
