// Package codec is the gRPC codec of jobworker's API: protobuf, as gRPC's
// own codec encodes it, with two changes for the output stream, whose
// bytes are nearly all that the API carries.
//
// A chunk of output (Chunk) is sent from the buffer the server read it
// into: the message's other fields are encoded apart, and gRPC writes that
// buffer to the connection and frees it, where gRPC's codec would copy the
// data into a message buffer first. A received GetJobOutputResponse's data
// is a slice of the one contiguous copy of the message that decoding
// makes, where gRPC's codec would copy the message into a buffer and
// protobuf would copy the data out of it again.
//
// Both are still the protobuf encoding: a peer with any other codec reads
// and writes the same messages (a chunk's data field comes last, which
// protobuf allows).
package codec

import (
	"errors"
	"fmt"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// dataField is GetJobOutputResponse's data.
const dataField = 2

// Chunk is a GetJobOutputResponse to send whose data is Data, a buffer
// that gRPC frees once it has written the message to the connection (or
// has given up on it); Response.Data must be empty. Marshal takes the
// reference to Data that the Chunk holds.
type Chunk struct {
	Response *jobworkerv1.GetJobOutputResponse
	Data     mem.Buffer
}

// Codec is the codec; its name is protobuf's ("proto"), so the content
// type on the wire is unchanged.
type Codec struct {
	proto encoding.CodecV2 // gRPC's protobuf codec, for every other message
}

// New returns the codec.
func New() Codec {
	return Codec{proto: encoding.GetCodecV2(protoenc.Name)}
}

// Name is protobuf's codec name.
func (Codec) Name() string { return protoenc.Name }

// Marshal encodes v; a *Chunk as its GetJobOutputResponse.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	ch, ok := v.(*Chunk)
	if !ok {
		return c.proto.Marshal(v)
	}
	if len(ch.Response.GetData()) > 0 {
		ch.Data.Free()
		return nil, errors.New("marshal output chunk: its response has data of its own")
	}
	head, err := proto.Marshal(ch.Response)
	if err != nil {
		ch.Data.Free()
		return nil, fmt.Errorf("marshal output chunk: %w", err)
	}
	head = protowire.AppendTag(head, dataField, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(ch.Data.Len()))
	return mem.BufferSlice{mem.SliceBuffer(head), ch.Data}, nil
}

// Unmarshal decodes data into v; a GetJobOutputResponse keeps a slice of
// one copy of data as its Data.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*jobworkerv1.GetJobOutputResponse)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	return unmarshalOutput(data.Materialize(), r)
}

// unmarshalOutput decodes b into r as proto.Unmarshal does, except that
// r.Data is a slice of b: every field but data goes to proto.Unmarshal,
// and the last data field (protobuf: the last one of a scalar wins) is
// kept as it is in b.
func unmarshalOutput(b []byte, r *jobworkerv1.GetJobOutputResponse) error {
	var rest, payload []byte
	found := false
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return fmt.Errorf("unmarshal output chunk: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[i+n:])
		if m < 0 {
			return fmt.Errorf("unmarshal output chunk: %w", protowire.ParseError(m))
		}
		if num == dataField && typ == protowire.BytesType {
			payload, _ = protowire.ConsumeBytes(b[i+n:])
			found = true
		} else {
			rest = append(rest, b[i:i+n+m]...)
		}
		i += n + m
	}
	if err := proto.Unmarshal(rest, r); err != nil {
		return err
	}
	if found && len(payload) > 0 { // empty: nil, as protobuf leaves a proto3 bytes field
		r.Data = payload
	}
	return nil
}
