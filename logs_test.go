package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
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
