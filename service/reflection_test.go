//go:build !integration

package service

import (
	"context"
	"net"
	"slices"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionalphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// reflectionServe serves the API's services (unimplemented: reflection
// only describes them) with the reflection service on loopback.
func reflectionServe(t *testing.T) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	registerReflection(srv)
	jobworkerv1.RegisterJobWorkerServiceServer(srv, jobworkerv1.UnimplementedJobWorkerServiceServer{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// served decodes the files of a FileDescriptorResponse, in order.
func served(t *testing.T, resp *reflectionpb.ServerReflectionResponse) []*descriptorpb.FileDescriptorProto {
	t.Helper()
	if e := resp.GetErrorResponse(); e != nil {
		t.Fatalf("error response %d: %s", e.GetErrorCode(), e.GetErrorMessage())
	}
	var out []*descriptorpb.FileDescriptorProto
	for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fdp := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(b, fdp); err != nil {
			t.Fatalf("a served file does not decode: %v", err)
		}
		out = append(out, fdp)
	}
	return out
}

func paths(files []*descriptorpb.FileDescriptorProto) []string {
	var p []string
	for _, f := range files {
		p = append(p, f.GetName())
	}
	return p
}

// TestReflection: what a reflection client asks, over a real stream: the
// services, the file of a symbol with its imports (each file the same as
// protodesc makes of the registered one, and together enough to build the
// service's descriptors), imports not sent twice, files by name, and a
// NotFound answer that leaves the stream usable.
func TestReflection(t *testing.T) {
	conn := reflectionServe(t)
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(resp.GetOriginalRequest(), req) {
			t.Errorf("original request %v, want %v", resp.GetOriginalRequest(), req)
		}
		return resp
	}

	resp := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	want := []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "jobworker.v1.JobWorkerService"}
	if !slices.Equal(names, want) {
		t.Errorf("services %q, want %q", names, want)
	}

	resp = ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "jobworker.v1.JobWorkerService"}})
	files := served(t, resp)
	wantPaths := []string{"jobworker/v1/jobworker.proto", "google/protobuf/duration.proto", "google/protobuf/timestamp.proto"}
	if got := paths(files); !slices.Equal(got, wantPaths) {
		t.Fatalf("files of jobworker.v1.JobWorkerService %q, want %q", got, wantPaths)
	}
	for _, f := range files {
		fd, err := protoregistry.GlobalFiles.FindFileByPath(f.GetName())
		if err != nil {
			t.Fatal(err)
		}
		if want := protodesc.ToFileDescriptorProto(fd); !proto.Equal(f, want) {
			t.Errorf("served %s differs from the registered file:\n%v\nwant\n%v", f.GetName(), f, want)
		}
	}
	built, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: files})
	if err != nil {
		t.Fatalf("the served files do not build: %v", err)
	}
	if _, err := built.FindDescriptorByName("jobworker.v1.JobWorkerService.StartJob"); err != nil {
		t.Errorf("the served files lack StartJob: %v", err)
	}

	// A method, and a message of the same file: the file again, and none
	// of the imports already sent on this stream.
	for _, sym := range []string{"jobworker.v1.JobWorkerService.StartJob", "jobworker.v1.StartJobRequest"} {
		resp = ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: sym}})
		if got := paths(served(t, resp)); !slices.Equal(got, wantPaths[:1]) {
			t.Errorf("files of %s after the first answer %q, want %q", sym, got, wantPaths[:1])
		}
	}

	resp = ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: "grpc/health/v1/health.proto"}})
	if got := paths(served(t, resp)); !slices.Equal(got, []string{"grpc/health/v1/health.proto"}) {
		t.Errorf("files of health.proto %q", got)
	}

	resp = ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_AllExtensionNumbersOfType{AllExtensionNumbersOfType: "jobworker.v1.StartJobRequest"}})
	if x := resp.GetAllExtensionNumbersResponse(); x == nil || x.GetBaseTypeName() != "jobworker.v1.StartJobRequest" || len(x.GetExtensionNumber()) != 0 {
		t.Errorf("extension numbers of StartJobRequest: %v, want none", resp)
	}

	for _, req := range []*reflectionpb.ServerReflectionRequest{
		{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "jobworker.v1.NoSuch"}},
		{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: "no/such.proto"}},
		{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingExtension{FileContainingExtension: &reflectionpb.ExtensionRequest{ContainingType: "jobworker.v1.StartJobRequest", ExtensionNumber: 100}}},
		{MessageRequest: &reflectionpb.ServerReflectionRequest_AllExtensionNumbersOfType{AllExtensionNumbersOfType: "jobworker.v1.NoSuch"}},
	} {
		resp = ask(req)
		if e := resp.GetErrorResponse(); e.GetErrorCode() != int32(codes.NotFound) {
			t.Errorf("%v: %v, want an error response NotFound", req, resp)
		}
	}

	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

// TestReflectionV1Alpha: the older version, which clients fall back to,
// answers as v1 does.
func TestReflectionV1Alpha(t *testing.T) {
	conn := reflectionServe(t)
	stream, err := reflectionalphapb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 v1alpha is deprecated, and tested for the clients that still ask for it
	req := &reflectionalphapb.ServerReflectionRequest{Host: "h", MessageRequest: &reflectionalphapb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "grpc.health.v1.Health"}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	alpha, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	// Read as v1 (the same fields), not through v1alpha's deprecated
	// getters.
	b, err := proto.Marshal(alpha)
	if err != nil {
		t.Fatal(err)
	}
	var resp reflectionpb.ServerReflectionResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.GetValidHost() != "h" || resp.GetOriginalRequest().GetFileContainingSymbol() != "grpc.health.v1.Health" {
		t.Errorf("host %q, original request %v", resp.GetValidHost(), resp.GetOriginalRequest())
	}
	if got := paths(served(t, &resp)); !slices.Equal(got, []string{"grpc/health/v1/health.proto"}) {
		t.Errorf("files of grpc.health.v1.Health %q, want [grpc/health/v1/health.proto]", got)
	}
}
