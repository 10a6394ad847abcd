//go:build !integration

package client

import (
	"bytes"
	"testing"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestTimestamped: each line gets the time of the chunk it starts in, a
// line that goes on into the next chunk gets no second prefix, and a chunk
// without a time gets "-".
func TestTimestamped(t *testing.T) {
	t1 := time.Date(2026, 12, 2, 13, 0, 0, 5, time.UTC)
	t2 := t1.Add(1500 * time.Millisecond)
	var out bytes.Buffer
	emit := Timestamped(&out)
	for _, r := range []*jobworkerv1.GetJobOutputResponse{
		{Data: []byte("one\ntw"), Time: timestamppb.New(t1)},
		{Data: []byte("o\nthree\n"), Time: timestamppb.New(t2)},
		{Data: []byte("old\n")},
	} {
		if err := emit(r); err != nil {
			t.Fatal(err)
		}
	}
	want := "2026-12-02T13:00:00.000000005Z one\n" +
		"2026-12-02T13:00:00.000000005Z two\n" +
		"2026-12-02T13:00:01.500000005Z three\n" +
		"- old\n"
	if out.String() != want {
		t.Errorf("timestamped output:\n%s\nwant:\n%s", out.String(), want)
	}
}
