package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestPrintTimestamped: each line gets the time of the chunk its first byte
// is in, also a line split across chunks; a chunk without a time gets "-".
func TestPrintTimestamped(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 3, 0, 0, 5, time.UTC)
	var out, notes bytes.Buffer
	emit := printTimestamped(&out, &notes)
	for _, r := range []*jobworkerv1.GetJobOutputResponse{
		{Offset: 0, Data: []byte("one\ntw"), Time: timestamppb.New(t0)},
		{Offset: 6, Data: []byte("o\nthree\n"), Time: timestamppb.New(t0.Add(time.Second))},
		{Offset: 14, Data: []byte("four\n"), Dropped: 3},
	} {
		if err := emit(r); err != nil {
			t.Fatal(err)
		}
	}
	want := "2026-12-02T03:00:00.000000005Z one\n" +
		"2026-12-02T03:00:00.000000005Z two\n" +
		"2026-12-02T03:00:01.000000005Z three\n" +
		"- four\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if !strings.Contains(notes.String(), "3 bytes") {
		t.Errorf("notes %q, want the drop", notes.String())
	}
}

// TestParseWhen: a duration counts back from now, an RFC 3339 time is
// itself, anything else is refused naming the flag.
func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"10m", now.Add(-10 * time.Minute)},
		{"1h30m", now.Add(-90 * time.Minute)},
		{"2026-12-01T10:00:00Z", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{"2026-12-01T10:00:00.5+01:00", time.Date(2026, 12, 1, 9, 0, 0, 5e8, time.UTC)},
	} {
		ts, err := parseWhen("since", c.in, now)
		if err != nil || !ts.AsTime().Equal(c.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", c.in, ts.AsTime(), err, c.want)
		}
	}
	for _, in := range []string{"yesterday", "-5m", "2026-12-01 10:00"} {
		if _, err := parseWhen("until", in, now); err == nil || !strings.Contains(err.Error(), "--until") {
			t.Errorf("parseWhen(%q) = %v, want an error naming --until", in, err)
		}
	}
	if ts, err := parseWhen("since", "", now); ts != nil || err != nil {
		t.Errorf("parseWhen of nothing = %v, %v; want nil, nil", ts, err)
	}
}

// prefixServer is a server with one job, whose ID's prefix resolves only
// to its first request: after it a second job shares the prefix, and a
// request by the prefix is ambiguous. It records the IDs it is asked for.
type prefixServer struct {
	jobworkerv1.JobWorkerServiceClient
	id       string
	output   []byte
	resolved bool
	asked    []string
}

func (s *prefixServer) job(id string) (*jobworkerv1.Job, error) {
	s.asked = append(s.asked, id)
	switch {
	case id == s.id:
	case strings.HasPrefix(s.id, id) && !s.resolved:
		s.resolved = true
	case strings.HasPrefix(s.id, id):
		return nil, status.Errorf(codes.InvalidArgument, "job ID prefix %s matches 2 jobs", id)
	default:
		return nil, status.Errorf(codes.NotFound, "job %s not found", id)
	}
	return &jobworkerv1.Job{Id: s.id, OutputSize: int64(len(s.output))}, nil
}

func (s *prefixServer) GetJobStatus(_ context.Context, r *jobworkerv1.GetJobStatusRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[jobworkerv1.GetJobStatusResponse], error) {
	j, err := s.job(r.GetId())
	if err != nil {
		return nil, err
	}
	return &listStream[jobworkerv1.GetJobStatusResponse]{items: []*jobworkerv1.GetJobStatusResponse{{Job: j}}}, nil
}

func (s *prefixServer) GetJobOutput(_ context.Context, r *jobworkerv1.GetJobOutputRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[jobworkerv1.GetJobOutputResponse], error) {
	if _, err := s.job(r.GetId()); err != nil {
		return nil, err
	}
	off := min(r.GetOffset(), int64(len(s.output)))
	return &listStream[jobworkerv1.GetJobOutputResponse]{items: []*jobworkerv1.GetJobOutputResponse{{Offset: off, Data: s.output[off:]}}}, nil
}

// listStream sends its items, then io.EOF.
type listStream[T any] struct {
	grpc.ServerStreamingClient[T]
	items []*T
}

func (s *listStream[T]) Recv() (*T, error) {
	if len(s.items) == 0 {
		return nil, io.EOF
	}
	r := s.items[0]
	s.items = s.items[1:]
	return r, nil
}

// TestLogsResolvesPrefixOnce: logs by a prefix of a job's ID asks for the
// job by the prefix once and for the rest by its whole ID, so that a job
// that comes to share the prefix meanwhile changes nothing (with --tail,
// which asks for the job's status and output before it prints).
func TestLogsResolvesPrefixOnce(t *testing.T) {
	const id = "6f9619ff-8b86-4011-b42d-00c04fc964ff"
	for _, tail := range []*int{nil, new(int)} {
		if tail != nil {
			*tail = 1
		}
		s := &prefixServer{id: id, output: []byte("one\ntwo\n")}
		var out, errOut bytes.Buffer
		c := &logsCmd{ID: id[:8], Tail: tail}
		err := c.print(&env{ctx: context.Background(), stdout: &out, stderr: &errOut}, s, nil, nil)
		want := "one\ntwo\n"
		if tail != nil {
			want = "two\n"
		}
		if err != nil || out.String() != want {
			t.Errorf("logs (tail %v) by prefix = %v, output %q; want %q", tail != nil, err, out.String(), want)
		}
		if len(s.asked) < 2 || s.asked[0] != id[:8] || slices.Contains(s.asked[1:], id[:8]) {
			t.Errorf("logs (tail %v) by prefix asked for %q; want the prefix once, first, then the whole ID", tail != nil, s.asked)
		}
	}
}
