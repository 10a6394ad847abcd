package service

import (
	"context"
	"fmt"
	"strconv"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// utf8Unary and utf8Stream check every string of every request and answer
// INVALID_ARGUMENT naming the field, before any handler sees it. The API's
// strings are UTF-8, but its decoder does not check them (see the .proto:
// grpc-go would answer INTERNAL for a request it cannot decode). They run
// after authorization, so the unauthenticated learn nothing from them.
func utf8Unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := checkUTF8(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// utf8Stream is utf8Unary for streams: it checks each message received.
func utf8Stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, utf8CheckedStream{ss})
}

// utf8CheckedStream checks each message a stream receives.
type utf8CheckedStream struct{ grpc.ServerStream }

func (s utf8CheckedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkUTF8(m)
}

// checkUTF8 returns an InvalidArgument error naming the first string of
// the message m, at any depth, that is not valid UTF-8.
func checkUTF8(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	if field := invalidUTF8(pm.ProtoReflect(), ""); field != "" {
		return status.Errorf(codes.InvalidArgument, "%s is not valid UTF-8", field)
	}
	return nil
}

// invalidUTF8 returns the path of the first string in m that is not valid
// UTF-8 (like "args[2]" or "limits.io_max[0].device"), or "".
func invalidUTF8(m protoreflect.Message, prefix string) (bad string) {
	value := func(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) string {
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.ValidString(v.String()) {
				return path
			}
		case protoreflect.MessageKind, protoreflect.GroupKind:
			return invalidUTF8(v.Message(), path+".")
		}
		return ""
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				key := k.String()
				if fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(key) {
					bad = "a key of " + name
				} else {
					bad = value(fd.MapValue(), mv, name+"["+strconv.Quote(key)+"]")
				}
				return bad == ""
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && bad == ""; i++ {
				bad = value(fd, l.Get(i), fmt.Sprintf("%s[%d]", name, i))
			}
		default:
			bad = value(fd, v, name)
		}
		return bad == ""
	})
	return bad
}
