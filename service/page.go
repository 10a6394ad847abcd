package service

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jobworker/jobworker/job"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/protobuf/proto"
)

// ListJobs pages: page_size jobs at most (default 100, at most 1000), and
// about pageBytes, so that a page of jobs with large arguments still fits
// the client's message limit (16 MiB for the CLI, 4 MiB by gRPC's
// default): a page holds at least one job, and stops before the job that
// would take it past pageBytes.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
	pageBytes       = 3 << 20
)

// pageToken is the token of the page after c: "v1", the creation time in
// nanoseconds and the ID of the last job of the page before, in unpadded
// URL-safe base64.
func pageToken(c job.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1:" + strconv.FormatInt(c.Created.UnixNano(), 10) + ":" + c.ID))
}

var errPageToken = errors.New("malformed page_token: give the next_page_token of the previous answer")

// parsePageToken is the cursor of a page token; nil for the first page.
func parsePageToken(tok string) (*job.Cursor, error) {
	if tok == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, errPageToken
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[0] != "v1" || !job.ValidID(parts[2]) {
		return nil, errPageToken
	}
	ns, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, errPageToken
	}
	return &job.Cursor{Created: time.Unix(0, ns), ID: parts[2]}, nil
}

// pageSize is the page size a request asks for, within the bounds.
func pageSize(n uint32) int {
	switch {
	case n == 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return int(n)
}

// listPage is one page of ListJobs' answer.
func (s *api) listPage(f job.Filter, req *jobworkerv1.ListJobsRequest) (*jobworkerv1.ListJobsResponse, error) {
	after, err := parsePageToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	page, more := s.m.ListPage(f, after, pageSize(req.GetPageSize()))
	resp := &jobworkerv1.ListJobsResponse{}
	size := 0
	for i, st := range page {
		pj := jobToProto(st)
		size += proto.Size(pj) + 8
		if i > 0 && size > pageBytes {
			more = true
			break
		}
		resp.Jobs = append(resp.Jobs, pj)
	}
	if more && len(resp.Jobs) > 0 {
		resp.NextPageToken = pageToken(job.CursorOf(page[len(resp.Jobs)-1]))
	}
	return resp, nil
}
