package service

import (
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// Connections are bounded before authentication: at most a number are
// open at once, a TLS handshake must finish within HandshakeTimeout, and a
// connection without a call for IdleTimeout is closed.
const (
	HandshakeTimeout = 10 * time.Second
	IdleTimeout      = 5 * time.Minute
)

// DefaultMaxConnections is --max-connections' default: far more clients
// than a host serves, far fewer descriptors than the server has.
const DefaultMaxConnections = 4096

// Conns bounds and tracks a server's connections. When a new connection
// would pass the bound, the oldest connection that has not finished its
// handshake is closed for it, so that connections opened and left idle
// cannot keep a client with a certificate out; when every connection is
// authenticated, the new one is closed at once. Authenticated connections
// are kept with their client's certificate, so that the ones of revoked
// certificates can be ended (CloseIf).
type Conns struct {
	max int

	mu      sync.Mutex
	pending []*trackedConn // in their handshake, oldest first
	authed  map[*trackedConn]*x509.Certificate
	refused int64 // new connections closed at once, for the log and tests
}

// NewConns bounds connections to max (DefaultMaxConnections if max <= 0).
func NewConns(max int) *Conns {
	if max <= 0 {
		max = DefaultMaxConnections
	}
	return &Conns{max: max, authed: map[*trackedConn]*x509.Certificate{}}
}

// Open is how many connections are open.
func (c *Conns) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) + len(c.authed)
}

// Listener wraps lis: every connection it accepts is counted, and closed
// when it would pass the bound.
func (c *Conns) Listener(lis net.Listener) net.Listener {
	return &boundedListener{Listener: lis, c: c}
}

// Credentials wraps a server's transport credentials: a connection whose
// handshake succeeds is marked authenticated, with its client's
// certificate.
func (c *Conns) Credentials(tc credentials.TransportCredentials) credentials.TransportCredentials {
	return &trackedCreds{TransportCredentials: tc, c: c}
}

// CloseIf closes every authenticated connection whose client certificate
// matches, and returns how many it closed.
func (c *Conns) CloseIf(match func(*x509.Certificate) bool) int {
	c.mu.Lock()
	var doomed []*trackedConn
	for tc, cert := range c.authed {
		if cert != nil && match(cert) {
			doomed = append(doomed, tc)
		}
	}
	c.mu.Unlock()
	for _, tc := range doomed {
		tc.Close()
	}
	return len(doomed)
}

// admit counts a new connection. It returns false when the connection must
// be closed: every open one is authenticated and the bound is reached.
func (c *Conns) admit(tc *trackedConn) bool {
	c.mu.Lock()
	var evict *trackedConn
	if len(c.pending)+len(c.authed) >= c.max {
		if len(c.pending) == 0 {
			c.refused++
			c.mu.Unlock()
			return false
		}
		evict = c.pending[0]
		c.pending = c.pending[1:]
	}
	c.pending = append(c.pending, tc)
	c.mu.Unlock()
	if evict != nil {
		evict.evict()
	}
	return true
}

// authenticated moves tc from the handshaking connections to the
// authenticated ones. It returns false if tc was closed meanwhile.
func (c *Conns) authenticated(tc *trackedConn, cert *x509.Certificate) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.pending {
		if p == tc {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			c.authed[tc] = cert
			return true
		}
	}
	return false
}

// forget drops tc, which was closed.
func (c *Conns) forget(tc *trackedConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.authed, tc)
	for i, p := range c.pending {
		if p == tc {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			return
		}
	}
}

type boundedListener struct {
	net.Listener
	c *Conns
}

// Accept returns the next connection within the bound; one past it is
// closed and the next one accepted.
func (l *boundedListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: conn, c: l.c}
		if l.c.admit(tc) {
			return tc, nil
		}
		conn.Close()
	}
}

// trackedConn is a counted connection; closing it uncounts it.
type trackedConn struct {
	net.Conn
	c           *Conns
	once        sync.Once
	handshaking atomic.Bool // in ServerHandshake, whose failure closes it
}

// Close uncounts the connection, then closes it: once its peer sees it
// closed, it is no longer counted. Closed by a failed handshake, it
// lingers first (lingerRefused).
func (tc *trackedConn) Close() error {
	tc.once.Do(func() { tc.c.forget(tc) })
	if tc.handshaking.Load() {
		lingerRefused(tc.Conn)
	}
	return tc.Conn.Close()
}

// evict closes the connection at once, to make room for another.
func (tc *trackedConn) evict() {
	tc.once.Do(func() { tc.c.forget(tc) })
	tc.Conn.Close()
}

type trackedCreds struct {
	credentials.TransportCredentials
	c *Conns
}

// ServerHandshake is the wrapped handshake, within HandshakeTimeout (gRPC's
// ConnectionTimeout sets the same deadline; this one holds whatever the
// server's options are).
func (t *trackedCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	raw.SetDeadline(time.Now().Add(HandshakeTimeout))
	tc, _ := raw.(*trackedConn)
	if tc != nil {
		tc.handshaking.Store(true)
	}
	conn, info, err := t.TransportCredentials.ServerHandshake(raw)
	if tc != nil {
		tc.handshaking.Store(false)
	}
	if err != nil {
		return nil, nil, err
	}
	raw.SetDeadline(time.Time{})
	if tc == nil {
		return conn, info, nil
	}
	var cert *x509.Certificate
	if ti, ok := info.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		cert = ti.State.PeerCertificates[0]
	}
	if !tc.c.authenticated(tc, cert) {
		conn.Close()
		return nil, nil, errClosedInHandshake
	}
	return conn, info, nil
}

func (t *trackedCreds) Clone() credentials.TransportCredentials {
	return &trackedCreds{TransportCredentials: t.TransportCredentials.Clone(), c: t.c}
}

var errClosedInHandshake = errors.New("the connection was closed during its handshake to make room for another")

// lingerRefused lets a client whose handshake was refused read the alert
// that says why: in TLS 1.3 a client sends its first request before the
// server has judged its certificate, and closing a socket with that
// request unread would reset the connection, which can discard the alert
// before the client reads it. The server ends its side, then reads what
// the client sent, for at most a second.
func lingerRefused(raw net.Conn) {
	tcp, ok := raw.(*net.TCPConn)
	if !ok {
		return
	}
	tcp.CloseWrite()
	tcp.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(tcp, 64<<10))
}
