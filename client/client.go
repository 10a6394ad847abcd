// Package client is what jobworker's client verbs share: the connection to
// the server with mutual TLS, the words for what went wrong, following a
// job's output with resume, finding where its last lines start, and
// waiting for its final status.
package client

import (
	"fmt"
	"net"
	"strings"

	"github.com/jobworker/jobworker/auth"
	"github.com/jobworker/jobworker/internal/codec"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/status"
)

// Config says where the server is and who the client is: the CA that
// signed the server's certificate, and the client's certificate and key
// (PEM files).
type Config struct {
	Server        string // host:port
	CA, Cert, Key string
}

// maxAnswerBytes bounds a message from the server (a list of many jobs).
const maxAnswerBytes = 16 << 20

// The flow-control windows this end gives the server: of a stream, and of
// the connection's streams together.
const (
	streamWindowBytes = 4 << 20
	connWindowBytes   = 16 << 20
)

// Conn is a connection to the server.
type Conn struct {
	jobworkerv1.JobWorkerServiceClient
	cc *grpc.ClientConn
}

// Close closes the connection.
func (c *Conn) Close() error { return c.cc.Close() }

// Dial connects to the server with mutual TLS 1.3; the connection is made
// at the first call.
func Dial(cfg Config) (*Conn, error) {
	host, _, err := net.SplitHostPort(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("--server %q: want host:port", cfg.Server)
	}
	tc, err := auth.ClientConfig(cfg.CA, cfg.Cert, cfg.Key, host)
	if err != nil {
		return nil, err
	}
	// No service config: gRPC's DNS resolver would otherwise ask the
	// network's DNS server for a TXT record (_grpc_config.HOST) before it
	// connects, a round trip off the host for every command, even to
	// localhost, that no jobworker server answers.
	cc, err := grpc.NewClient(cfg.Server, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithDisableServiceConfig(),
		// Output is decoded with one copy (codec), into gRPC's buffers
		// uncleared, read from TLS without a buffer of gRPC's between.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxAnswerBytes), grpc.ForceCodecV2(codec.New())),
		experimental.WithBufferPool(codec.NewPool()),
		grpc.WithReadBufferSize(0),
		// Windows that let the server send a whole chunk of output (up
		// to 1 MiB) and the next without waiting for this end to take
		// the first, where gRPC's start at 64 KiB and grow only as its
		// estimate of the bandwidth-delay product does.
		grpc.WithInitialWindowSize(streamWindowBytes),
		grpc.WithInitialConnWindowSize(connWindowBytes))
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", cfg.Server, err)
	}
	return &Conn{JobWorkerServiceClient: jobworkerv1.NewJobWorkerServiceClient(cc), cc: cc}, nil
}

// Explain turns the error of an RPC about what into one line that says
// what failed and what to do.
func (cfg Config) Explain(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %v", what, err)
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		hint := fmt.Sprintf("%s; is the server running, and is --server right?", lastCause(msg))
		switch {
		case RefusedCertificate(err):
			hint = fmt.Sprintf("the server refused the client certificate %s (%s): is it signed by the server's client CA, valid now, and made with a role by `jobworker certs client`?", cfg.Cert, tlsReason(msg))
		case strings.Contains(msg, "x509:"), strings.Contains(msg, "certificate"):
			hint = fmt.Sprintf("the server's certificate does not verify with --ca %s for %s (%s)", cfg.CA, cfg.Server, tlsReason(msg))
		}
		return fmt.Errorf("%s: cannot reach the server at %s: %s", what, cfg.Server, hint)
	case codes.PermissionDenied:
		return fmt.Errorf("%s: permission denied: %s", what, msg)
	case codes.Unauthenticated:
		return fmt.Errorf("%s: not authenticated: %s", what, msg)
	}
	return fmt.Errorf("%s: %s", what, msg)
}

// RefusedCertificate reports whether err says the server refused the
// client's certificate at the handshake: trying again cannot help.
func RefusedCertificate(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	msg := st.Message()
	return strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate") ||
		strings.Contains(msg, "unknown certificate authority") || strings.Contains(msg, "expired certificate")
}

// lastCause is the innermost part of a gRPC transport error message.
func lastCause(msg string) string {
	msg = strings.TrimSuffix(msg, "\"")
	if i := strings.LastIndex(msg, "desc = \""); i >= 0 {
		msg = msg[i+len("desc = \""):]
	}
	return msg
}

// tlsReason is the last, most specific part of a TLS error message.
func tlsReason(msg string) string {
	if i := strings.LastIndex(msg, "tls: "); i >= 0 {
		return strings.TrimSuffix(msg[i:], "\"")
	}
	if i := strings.LastIndex(msg, "x509: "); i >= 0 {
		return strings.TrimSuffix(msg[i:], "\"")
	}
	return msg
}
