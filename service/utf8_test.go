//go:build !integration

package service

import (
	"context"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestInvalidUTF8: every string of a request, at any depth, in lists and
// in maps' keys and values, is checked, and the error names the first bad
// one. The decoder lets such strings through (the .proto turns its check
// off), so this check is the only one.
func TestInvalidUTF8(t *testing.T) {
	const bad = "a\xffb"
	tests := []struct {
		name string
		req  proto.Message
		want string // the field named; "" for valid
	}{
		{"valid", &jobworkerv1.StartJobRequest{Command: "echo", Args: []string{"héllo", "✓"}, Env: map[string]string{"K": "v"}, WorkingDir: "/tmp"}, ""},
		{"empty", &jobworkerv1.StartJobRequest{}, ""},
		{"command", &jobworkerv1.StartJobRequest{Command: bad}, "command"},
		{"second argument", &jobworkerv1.StartJobRequest{Command: "echo", Args: []string{"ok", bad}}, "args[1]"},
		{"env key", &jobworkerv1.StartJobRequest{Command: "echo", Env: map[string]string{bad: "v"}}, "a key of env"},
		{"env value", &jobworkerv1.StartJobRequest{Command: "echo", Env: map[string]string{"K": bad}}, `env["K"]`},
		{"working dir", &jobworkerv1.StartJobRequest{Command: "echo", WorkingDir: bad}, "working_dir"},
		{"io device, nested", &jobworkerv1.StartJobRequest{Command: "echo", Limits: &jobworkerv1.Limits{IoMax: []*jobworkerv1.IOMax{{Device: "8:0"}, {Device: bad}}}}, "limits.io_max[1].device"},
		{"job ID", &jobworkerv1.GetJobOutputRequest{Id: bad}, "id"},
		{"owner filter", &jobworkerv1.ListJobsRequest{Owners: []string{"alice", bad}}, "owners[1]"},
		{"a lone surrogate half", &jobworkerv1.StopJobRequest{Id: "\xed\xa0\x80"}, "id"},
	}
	for _, tt := range tests {
		err := checkUTF8(tt.req)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: checkUTF8 = %v, want nil", tt.name, err)
			}
			continue
		}
		if want := tt.want + " is not valid UTF-8"; status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
			t.Errorf("%s: checkUTF8 = %v, want InvalidArgument %q", tt.name, err, want)
		}
	}
}

// TestUTF8UnaryInterceptor: a request with invalid UTF-8 never reaches the
// handler.
func TestUTF8UnaryInterceptor(t *testing.T) {
	called := false
	handler := func(ctx context.Context, req any) (any, error) { called = true; return nil, nil }
	_, err := utf8Unary(context.Background(), &jobworkerv1.StartJobRequest{Command: "\xff"}, &grpc.UnaryServerInfo{}, handler)
	if status.Code(err) != codes.InvalidArgument || called {
		t.Errorf("utf8Unary with a bad command = %v, handler called %v; want InvalidArgument, not called", err, called)
	}
	if _, err := utf8Unary(context.Background(), &jobworkerv1.StartJobRequest{Command: "echo"}, &grpc.UnaryServerInfo{}, handler); err != nil || !called {
		t.Errorf("utf8Unary with a good request = %v, handler called %v; want nil, called", err, called)
	}
}
