package service

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionalphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// reflection is the gRPC server reflection service, v1 and the older
// v1alpha, by which generic clients (grpcurl) list the services and learn
// their messages.
//
// It answers with each .proto file's descriptor as protoc encoded it,
// which every generated message keeps (the deprecated Descriptor method
// returns it gzipped), instead of encoding descriptors anew as grpc-go's
// reflection package does. That package needs protobuf's protodesc, whose
// initialisation decodes descriptor.proto's own descriptors: about a
// millisecond of CPU and 70 page faults of every start of this binary,
// which is also the job shim started with every job and every CLI command
// (BENCHMARKS.md, "Start-up of the shim and the CLI"). With this service
// neither protodesc nor descriptorpb is linked (TestNoDescriptorPackages).
type reflection struct {
	services func() map[string]grpc.ServiceInfo

	mu    sync.Mutex
	files map[string][]byte // encoded FileDescriptorProto by path, once decompressed
}

// registerReflection registers both versions of the reflection service on
// srv, which it describes.
func registerReflection(srv *grpc.Server) {
	r := &reflection{services: srv.GetServiceInfo, files: map[string][]byte{}}
	reflectionpb.RegisterServerReflectionServer(srv, reflectionV1{r})
	reflectionalphapb.RegisterServerReflectionServer(srv, reflectionV1Alpha{r})
}

type reflectionV1 struct{ r *reflection }

func (v reflectionV1) ServerReflectionInfo(stream reflectionpb.ServerReflection_ServerReflectionInfoServer) error {
	sent := map[string]bool{}
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := v.r.answer(req, sent)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// reflectionV1Alpha serves v1alpha, whose messages are v1's under another
// package name, field for field: a request is re-read as v1 and the
// answer re-read as v1alpha from the same bytes.
type reflectionV1Alpha struct{ r *reflection }

func (v reflectionV1Alpha) ServerReflectionInfo(stream reflectionalphapb.ServerReflection_ServerReflectionInfoServer) error {
	sent := map[string]bool{}
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var req reflectionpb.ServerReflectionRequest
		if err := convert(in, &req); err != nil {
			return err
		}
		resp, err := v.r.answer(&req, sent)
		if err != nil {
			return err
		}
		//lint:ignore SA1019 v1alpha is deprecated, and served for the clients that still ask for it
		var out reflectionalphapb.ServerReflectionResponse
		if err := convert(resp, &out); err != nil {
			return err
		}
		if err := stream.Send(&out); err != nil {
			return err
		}
	}
}

// convert reads the encoding of from as to.
func convert(from, to proto.Message) error {
	b, err := proto.Marshal(from)
	if err == nil {
		err = proto.Unmarshal(b, to)
	}
	if err != nil {
		return status.Errorf(codes.Internal, "reflection: convert %s: %v", from.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

// answer is the response to one request of a stream; sent holds the files
// already sent on it, which are not sent again as dependencies.
func (r *reflection) answer(req *reflectionpb.ServerReflectionRequest, sent map[string]bool) (*reflectionpb.ServerReflectionResponse, error) {
	resp := &reflectionpb.ServerReflectionResponse{ValidHost: req.GetHost(), OriginalRequest: req}
	var files [][]byte
	var err error
	switch q := req.GetMessageRequest().(type) {
	case *reflectionpb.ServerReflectionRequest_ListServices:
		var list []*reflectionpb.ServiceResponse
		for name := range r.services() {
			list = append(list, &reflectionpb.ServiceResponse{Name: name})
		}
		slices.SortFunc(list, func(a, b *reflectionpb.ServiceResponse) int {
			return cmp.Compare(a.GetName(), b.GetName())
		})
		resp.MessageResponse = &reflectionpb.ServerReflectionResponse_ListServicesResponse{
			ListServicesResponse: &reflectionpb.ListServiceResponse{Service: list},
		}
		return resp, nil
	case *reflectionpb.ServerReflectionRequest_FileByFilename:
		var fd protoreflect.FileDescriptor
		if fd, err = protoregistry.GlobalFiles.FindFileByPath(q.FileByFilename); err == nil {
			files, err = r.withImports(fd, sent)
		}
	case *reflectionpb.ServerReflectionRequest_FileContainingSymbol:
		var d protoreflect.Descriptor
		if d, err = protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(q.FileContainingSymbol)); err == nil {
			files, err = r.withImports(d.ParentFile(), sent)
		}
	case *reflectionpb.ServerReflectionRequest_FileContainingExtension:
		var xt protoreflect.ExtensionType
		x := q.FileContainingExtension
		if xt, err = protoregistry.GlobalTypes.FindExtensionByNumber(protoreflect.FullName(x.GetContainingType()), protoreflect.FieldNumber(x.GetExtensionNumber())); err == nil {
			files, err = r.withImports(xt.TypeDescriptor().ParentFile(), sent)
		}
	case *reflectionpb.ServerReflectionRequest_AllExtensionNumbersOfType:
		name := protoreflect.FullName(q.AllExtensionNumbersOfType)
		if _, err = protoregistry.GlobalFiles.FindDescriptorByName(name); err == nil {
			var numbers []int32
			protoregistry.GlobalTypes.RangeExtensionsByMessage(name, func(xt protoreflect.ExtensionType) bool {
				numbers = append(numbers, int32(xt.TypeDescriptor().Number()))
				return true
			})
			slices.Sort(numbers)
			resp.MessageResponse = &reflectionpb.ServerReflectionResponse_AllExtensionNumbersResponse{
				AllExtensionNumbersResponse: &reflectionpb.ExtensionNumberResponse{BaseTypeName: string(name), ExtensionNumber: numbers},
			}
			return resp, nil
		}
	default:
		return nil, status.Errorf(codes.InvalidArgument, "reflection: a request with no known question (%T)", q)
	}
	if err != nil {
		resp.MessageResponse = &reflectionpb.ServerReflectionResponse_ErrorResponse{
			ErrorResponse: &reflectionpb.ErrorResponse{ErrorCode: int32(codes.NotFound), ErrorMessage: err.Error()},
		}
		return resp, nil
	}
	resp.MessageResponse = &reflectionpb.ServerReflectionResponse_FileDescriptorResponse{
		FileDescriptorResponse: &reflectionpb.FileDescriptorResponse{FileDescriptorProto: files},
	}
	return resp, nil
}

// withImports is the encoded descriptor of fd, which is sent even if it
// was sent before, followed by those of its imports, transitively, that
// were not: what a client needs to resolve every type fd names.
func (r *reflection) withImports(fd protoreflect.FileDescriptor, sent map[string]bool) ([][]byte, error) {
	if fd.IsPlaceholder() {
		return nil, fmt.Errorf("file %s: %w", fd.Path(), protoregistry.NotFound)
	}
	var out [][]byte
	queue := []protoreflect.FileDescriptor{fd}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if f.IsPlaceholder() || (len(out) > 0 && sent[f.Path()]) {
			continue
		}
		b, err := r.encoded(f)
		if err != nil {
			return nil, err
		}
		sent[f.Path()] = true
		out = append(out, b)
		for i := range f.Imports().Len() {
			queue = append(queue, f.Imports().Get(i).FileDescriptor)
		}
	}
	return out, nil
}

// legacyMessage and legacyEnum are the deprecated methods of generated
// messages and enums that return their file's FileDescriptorProto as
// protoc encoded it, gzipped, and the type's path in it.
type (
	legacyMessage interface{ Descriptor() ([]byte, []int) }
	legacyEnum    interface{ EnumDescriptor() ([]byte, []int) }
)

// encoded is fd's encoded FileDescriptorProto, taken from a generated type
// of the file: a message's Descriptor method or, in a file without
// messages, an enum's EnumDescriptor.
func (r *reflection) encoded(fd protoreflect.FileDescriptor) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.files[fd.Path()]; ok {
		return b, nil
	}
	var gz []byte
	for i := range fd.Messages().Len() {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(fd.Messages().Get(i).FullName())
		if err != nil {
			continue
		}
		if m, ok := mt.Zero().Interface().(legacyMessage); ok {
			gz, _ = m.Descriptor()
			break
		}
	}
	for i := 0; gz == nil && i < fd.Enums().Len(); i++ {
		et, err := protoregistry.GlobalTypes.FindEnumByName(fd.Enums().Get(i).FullName())
		if err != nil {
			continue
		}
		if e, ok := et.New(0).(legacyEnum); ok {
			gz, _ = e.EnumDescriptor()
		}
	}
	if gz == nil {
		return nil, fmt.Errorf("file %s: no generated type of it carries its encoded descriptor: %w", fd.Path(), protoregistry.NotFound)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("file %s: decompress its descriptor: %w", fd.Path(), err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("file %s: decompress its descriptor: %w", fd.Path(), err)
	}
	r.files[fd.Path()] = b
	return b, nil
}
