//go:build !integration

package service

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/auth"
	"github.com/jobworker/jobworker/testcerts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// serveConns serves a Server bounded to max connections on a loopback
// port, and returns its address and its Conns.
func serveConns(t *testing.T, certs *testcerts.Set, max int) (string, *Conns) {
	t.Helper()
	st, err := auth.NewServerTLS(certs.Server.CertFile, certs.Server.KeyFile, certs.CA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	return serveConnsTLS(t, st, max)
}

// serveConnsTLS is serveConns with the server's TLS given.
func serveConnsTLS(t *testing.T, st *auth.ServerTLS, max int) (string, *Conns) {
	t.Helper()
	conns := NewConns(max)
	srv := NewServer(Config{TLS: st.Config(), Log: slog.New(slog.DiscardHandler), Conns: conns, MaxStreams: 16})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(lis); close(done) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String(), conns
}

// healthClient is a gRPC client of addr as cert, that has made its
// connection (one Check answered).
func healthClient(t *testing.T, certs *testcerts.Set, cert testcerts.Cert, addr string) healthpb.HealthClient {
	t.Helper()
	tc, err := auth.ClientConfig(certs.CA.CertFile, cert.CertFile, cert.KeyFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	h := healthpb.NewHealthClient(cc)
	check(t, h)
	return h
}

func check(t *testing.T, h healthpb.HealthClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a client with a certificate: %v", err)
	}
}

// rawConns opens n TCP connections to addr that never start a handshake.
func rawConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs
}

// closedByServer reports whether the server closed c within d (a read
// returns EOF or a reset, not the deadline).
func closedByServer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestConnsIdleCannotKeepClientsOut: with the bound taken by connections
// that never handshake, a client with a certificate still gets in (the
// oldest idle one is closed for it), the open connections never pass the
// bound, and the idle ones are closed at the handshake deadline.
func TestConnsIdleCannotKeepClientsOut(t *testing.T) {
	certs := testcerts.New(t)
	addr, conns := serveConns(t, certs, 4)
	idle := rawConns(t, addr, 10)
	h := healthClient(t, certs, certs.User, addr)
	if n := conns.Open(); n > 4 {
		t.Errorf("%d connections open, over the bound of 4", n)
	}
	// The first seven idle connections were closed to make room (10 idle
	// and 1 client in 4 places: 3 idle may remain).
	for i, c := range idle[:7] {
		if !closedByServer(c, 5*time.Second) {
			t.Errorf("idle connection %d of 10 is still open past the bound", i)
		}
	}
	// The rest are closed at the handshake deadline, not before.
	began := time.Now()
	for i, c := range idle[7:] {
		if !closedByServer(c, HandshakeTimeout+5*time.Second) {
			t.Errorf("idle connection %d is still open %v after the handshake deadline", 7+i, time.Since(began)-HandshakeTimeout)
		}
	}
	if waited := time.Since(began); waited < HandshakeTimeout-2*time.Second {
		t.Errorf("idle connections closed after %v, before the %v handshake deadline", waited, HandshakeTimeout)
	}
	check(t, h)
	if n := conns.Open(); n != 1 {
		t.Errorf("%d connections open after the idle ones closed, want the client's 1", n)
	}
}

// TestConnsFullOfClientsRefusesNew: when every connection is an
// authenticated client's, a new connection is closed at once and the
// clients go on.
func TestConnsFullOfClientsRefusesNew(t *testing.T) {
	certs := testcerts.New(t)
	addr, conns := serveConns(t, certs, 2)
	a := healthClient(t, certs, certs.User, addr)
	b := healthClient(t, certs, certs.User2, addr)
	extra := rawConns(t, addr, 1)[0]
	if !closedByServer(extra, 5*time.Second) {
		t.Error("a connection past a bound full of clients was not closed")
	}
	check(t, a)
	check(t, b)
	if n := conns.Open(); n != 2 {
		t.Errorf("%d connections open, want the 2 clients'", n)
	}
}

// TestConnsCloseIf: CloseIf ends the connections, and so the streams, of
// the certificates it matches; others go on.
func TestConnsCloseIf(t *testing.T) {
	certs := testcerts.New(t)
	addr, conns := serveConns(t, certs, 16)
	alice := healthClient(t, certs, certs.User, addr)
	bob := healthClient(t, certs, certs.User2, addr)
	watch := func(h healthpb.HealthClient) healthpb.Health_WatchClient {
		w, err := h.Watch(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Recv(); err != nil {
			t.Fatal(err)
		}
		return w
	}
	aw, bw := watch(alice), watch(bob)
	if n := conns.CloseIf(func(c *x509.Certificate) bool { return c.Subject.CommonName == "alice" }); n != 1 {
		t.Errorf("CloseIf(alice) closed %d connections, want 1", n)
	}
	if _, err := aw.Recv(); err == nil {
		t.Error("alice's stream goes on after her connection was closed")
	}
	check(t, bob)
	bw.CloseSend()
	if n := conns.Open(); n < 1 {
		t.Errorf("%d connections open, want bob's at least", n)
	}
}

// TestConnsRefusedClientReadsWhy: a client refused at the handshake (its
// certificate revoked) is told why, every time: the server reads the
// request the client sent before it closes, so the alert is not lost to
// a reset.
func TestConnsRefusedClientReadsWhy(t *testing.T) {
	certs := testcerts.New(t)
	crl := filepath.Join(certs.Dir, auth.CRLFile)
	if _, err := auth.Revoke(certs.CA.KeyPair, crl, []*x509.Certificate{certs.User.Cert}); err != nil {
		t.Fatal(err)
	}
	st, err := auth.NewServerTLSWithCRL(certs.Server.CertFile, certs.Server.KeyFile, certs.CA.CertFile, crl)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serveConnsTLS(t, st, 16)
	tc, err := auth.ClientConfig(certs.CA.CertFile, certs.User.CertFile, certs.User.KeyFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
		cc.Close()
		if err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Fatalf("attempt %d of a revoked client: %v, want the bad certificate alert", i, err)
		}
	}
}
