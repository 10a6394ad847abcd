package codec

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// Pool is a mem.BufferPool of buffers of a power of two from 256 bytes to
// 1 MiB that, unlike gRPC's default pool, does not clear a buffer it hands
// out: gRPC fills every buffer it takes (it reads each frame into one with
// io.ReadFull, and marshals into one the size of the message), so the
// clearing costs a write of every byte received or sent for nothing.
type Pool struct {
	tiers [maxShift - minShift + 1]sync.Pool
}

const (
	minShift = 8
	maxShift = 20
)

// NewPool returns an empty pool.
func NewPool() *Pool { return new(Pool) }

// Get returns a buffer of length n, of unspecified content.
func (p *Pool) Get(n int) *[]byte {
	if n > 1<<maxShift {
		b := make([]byte, n)
		return &b
	}
	shift := minShift
	if n > 1<<minShift {
		shift = bits.Len(uint(n - 1))
	}
	if b, ok := p.tiers[shift-minShift].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<shift)
	return &b
}

// Put returns a buffer that Get gave; any other is dropped.
func (p *Pool) Put(b *[]byte) {
	c := cap(*b)
	if c < 1<<minShift || c > 1<<maxShift || c&(c-1) != 0 {
		return
	}
	p.tiers[bits.Len(uint(c))-1-minShift].Put(b)
}

var _ mem.BufferPool = (*Pool)(nil)
