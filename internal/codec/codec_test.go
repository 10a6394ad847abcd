package codec

import (
	"bytes"
	"testing"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// split cuts b into a BufferSlice of pieces of at most n bytes, as gRPC
// hands a message over in the frames it arrived in.
func split(b []byte, n int) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		s = append(s, mem.SliceBuffer(bytes.Clone(b[:k])))
		b = b[k:]
	}
	return s
}

// TestUnmarshalOutputAsProto: every encoding decodes to what
// proto.Unmarshal makes of it, and the data is a slice of the one copy.
func TestUnmarshalOutputAsProto(t *testing.T) {
	full := &jobworkerv1.GetJobOutputResponse{Offset: 1 << 40, Data: bytes.Repeat([]byte("x\n"), 40000), Dropped: 7, Time: timestamppb.New(time.Unix(1700000000, 5))}
	fullBytes, err := proto.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	dataField := func(b []byte, v string) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, 2, protowire.BytesType), []byte(v))
	}
	varintField := func(b []byte, num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty message", nil},
		{"all fields", fullBytes},
		{"data only", dataField(nil, "hello")},
		{"empty data", dataField(nil, "")},
		{"data first, offset after", varintField(dataField(nil, "abc"), 1, 42)},
		{"data twice: the last wins", dataField(dataField(nil, "first"), "second")},
		{"data twice, the last empty", dataField(dataField(nil, "first"), "")},
		{"unknown field kept", varintField(dataField(nil, "abc"), 99, 5)},
		{"data field as a varint (unknown to protobuf)", varintField(nil, 2, 5)},
		{"offset only", varintField(nil, 1, 3)},
	}
	for _, tt := range tests {
		for _, piece := range []int{1, 3, 16 << 10} {
			want := new(jobworkerv1.GetJobOutputResponse)
			if err := proto.Unmarshal(tt.b, want); err != nil {
				t.Fatalf("%s: proto.Unmarshal: %v", tt.name, err)
			}
			got := new(jobworkerv1.GetJobOutputResponse)
			if err := New().Unmarshal(split(tt.b, piece), got); err != nil {
				t.Fatalf("%s, pieces of %d: Unmarshal: %v", tt.name, piece, err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("%s, pieces of %d: Unmarshal = %v, want %v", tt.name, piece, got, want)
			}
			if (got.Data == nil) != (want.Data == nil) {
				t.Errorf("%s, pieces of %d: Data nil = %v, want %v", tt.name, piece, got.Data == nil, want.Data == nil)
			}
			if !bytes.Equal(got.ProtoReflect().GetUnknown(), want.ProtoReflect().GetUnknown()) {
				t.Errorf("%s, pieces of %d: unknown fields %x, want %x", tt.name, piece, got.ProtoReflect().GetUnknown(), want.ProtoReflect().GetUnknown())
			}
		}
	}
}

// TestUnmarshalOutputTruncated: a cut message is an error, as protobuf's.
func TestUnmarshalOutputTruncated(t *testing.T) {
	b, err := proto.Marshal(&jobworkerv1.GetJobOutputResponse{Offset: 300, Data: []byte("some output")})
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(b); n++ {
		if proto.Unmarshal(b[:n], new(jobworkerv1.GetJobOutputResponse)) == nil {
			continue // a cut between fields is a valid, shorter message
		}
		if err := New().Unmarshal(split(b[:n], 4), new(jobworkerv1.GetJobOutputResponse)); err == nil {
			t.Errorf("Unmarshal of the first %d of %d bytes = nil, want an error", n, len(b))
		}
	}
}

// freeCounter is a mem.BufferPool that counts what is put back.
type freeCounter struct{ puts int }

func (f *freeCounter) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (f *freeCounter) Put(*[]byte)       { f.puts++ }

// TestMarshalChunk: a Chunk encodes to its response with its data, which
// protobuf reads back, and the data buffer is handed on, not copied; it
// is freed once, when the encoding is.
func TestMarshalChunk(t *testing.T) {
	for _, n := range []int{0, 1, 2 << 10, 1<<20 - 64} {
		data := bytes.Repeat([]byte{'a'}, n)
		resp := &jobworkerv1.GetJobOutputResponse{Offset: 12345, Dropped: 3, Time: timestamppb.New(time.Unix(5, 6))}
		pool := new(freeCounter)
		buf := make([]byte, n, max(n, 2<<10)) // at least gRPC's pooling threshold
		copy(buf, data)
		enc, err := New().Marshal(&Chunk{Response: resp, Data: mem.NewBuffer(&buf, pool)})
		if err != nil {
			t.Fatalf("%d bytes: Marshal: %v", n, err)
		}
		if len(enc) != 2 || len(enc[1].ReadOnlyData()) != n || (n > 0 && &enc[1].ReadOnlyData()[0] != &buf[0]) {
			t.Errorf("%d bytes: the data was not sent from its buffer", n)
		}
		got := new(jobworkerv1.GetJobOutputResponse)
		if err := proto.Unmarshal(enc.Materialize(), got); err != nil {
			t.Fatalf("%d bytes: proto.Unmarshal: %v", n, err)
		}
		want := proto.Clone(resp).(*jobworkerv1.GetJobOutputResponse)
		want.Data = data
		if !proto.Equal(got, want) {
			t.Errorf("%d bytes: decoded %v, want %v", n, got, want)
		}
		enc.Free()
		if pool.puts != 1 {
			t.Errorf("%d bytes: the data buffer was freed %d times, want 1", n, pool.puts)
		}
	}
}

// TestMarshalChunkWithData: a Chunk whose response has data of its own
// is refused, and its buffer freed.
func TestMarshalChunkWithData(t *testing.T) {
	pool := new(freeCounter)
	buf := make([]byte, 4<<10)
	_, err := New().Marshal(&Chunk{Response: &jobworkerv1.GetJobOutputResponse{Data: []byte("x")}, Data: mem.NewBuffer(&buf, pool)})
	if err == nil {
		t.Fatal("Marshal of a chunk with two data = nil, want an error")
	}
	if pool.puts != 1 {
		t.Errorf("the data buffer was freed %d times, want 1", pool.puts)
	}
}

// TestOtherMessages: every other message goes through protobuf as gRPC's
// codec does.
func TestOtherMessages(t *testing.T) {
	in := &jobworkerv1.StartJobRequest{Command: "echo", Args: []string{"a", "b"}}
	enc, err := New().Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := new(jobworkerv1.StartJobRequest)
	if err := New().Unmarshal(enc, out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Errorf("round trip = %v, want %v", out, in)
	}
	if _, err := New().Marshal(struct{}{}); err == nil {
		t.Error("Marshal(struct{}{}) = nil error, want one")
	}
	if err := New().Unmarshal(enc, new(int)); err == nil {
		t.Error("Unmarshal into *int = nil error, want one")
	}
}

func TestPool(t *testing.T) {
	p := NewPool()
	tests := []struct{ n, wantCap int }{
		{0, 256}, {1, 256}, {256, 256}, {257, 512}, {16<<10 - 64, 16 << 10}, {16 << 10, 16 << 10},
		{1<<20 - 1, 1 << 20}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1},
	}
	for _, tt := range tests {
		b := p.Get(tt.n)
		if len(*b) != tt.n || cap(*b) != tt.wantCap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", tt.n, len(*b), cap(*b), tt.n, tt.wantCap)
		}
		p.Put(b)
	}
	// A buffer comes back in its tier, whatever length it was put with.
	b := p.Get(3000)
	*b = (*b)[:10]
	p.Put(b)
	for range 100 { // sync.Pool may drop it; usually it does not
		if c := p.Get(2049); cap(*c) != 4096 {
			t.Fatalf("Get(2049) cap %d, want 4096", cap(*c))
		}
	}
	// Foreign buffers are dropped, not handed out as a tier's.
	odd := make([]byte, 3000)
	p.Put(&odd)
	if c := p.Get(2049); cap(*c) == 3000 {
		t.Error("Get(2049) returned a buffer of cap 3000 that Put was given")
	}
}
