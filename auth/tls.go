package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
)

// ServerTLS is the server side of mutual TLS. Reload re-reads its files;
// handshakes after it use the new certificate and client CA, connections
// already open are untouched.
type ServerTLS struct {
	certFile, keyFile, caFile, crlFile string
	state                              atomic.Pointer[serverState]
}

type serverState struct {
	cert    tls.Certificate
	pool    *x509.CertPool
	revoked revocations // nil without a revocation list
}

// NewServerTLS loads the server certificate, key and client CA.
func NewServerTLS(certFile, keyFile, clientCAFile string) (*ServerTLS, error) {
	return NewServerTLSWithCRL(certFile, keyFile, clientCAFile, "")
}

// NewServerTLSWithCRL is NewServerTLS that also loads a revocation list of
// the client CA (crl.go): a client certificate it revokes is refused at the
// handshake. An empty crlFile loads none.
func NewServerTLSWithCRL(certFile, keyFile, clientCAFile, crlFile string) (*ServerTLS, error) {
	s := &ServerTLS{certFile: certFile, keyFile: keyFile, caFile: clientCAFile, crlFile: crlFile}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Revoked reports whether the revocation list loaded last revokes c.
func (s *ServerTLS) Revoked(c *x509.Certificate) bool {
	return s.state.Load().revoked.revoked(c)
}

// Reload re-reads the certificate, key and client CA. On any error the
// files in use stay in use and the error says which file is wrong.
func (s *ServerTLS) Reload() error {
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("load server certificate %s and key %s: %w", s.certFile, s.keyFile, err)
	}
	if !slices.Contains(cert.Leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return fmt.Errorf("server certificate %s lacks the server-auth extended key usage", s.certFile)
	}
	pool, err := loadPool(s.caFile)
	if err != nil {
		return err
	}
	var revoked revocations
	if s.crlFile != "" {
		cas, err := LoadCertificates(s.caFile)
		if err != nil {
			return err
		}
		if revoked, err = loadRevocations(s.crlFile, cas); err != nil {
			return err
		}
	}
	s.state.Store(&serverState{cert: cert, pool: pool, revoked: revoked})
	return nil
}

// Config returns the server's TLS configuration: TLS 1.3 only, a client
// certificate required, verified against the client CA, with the client-auth
// usage, a safe Common Name and a valid role.
func (s *ServerTLS) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// GetConfigForClient picks up the newest files for each handshake.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			st := s.state.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{st.cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    st.pool,
				NextProtos:   []string{"h2"},
				VerifyConnection: func(cs tls.ConnectionState) error {
					if err := verifyClient(cs); err != nil {
						return err
					}
					if st.revoked.revoked(cs.VerifiedChains[0][0]) {
						return errors.New("the client certificate is revoked")
					}
					return nil
				},
			}, nil
		},
	}
}

// verifyClient refuses a verified client certificate that carries no usable
// identity, so that such a client never reaches an RPC.
func verifyClient(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return errors.New("no verified client certificate")
	}
	_, err := IdentityFromCertificate(cs.VerifiedChains[0][0])
	return err
}

// ClientConfig is the client side of mutual TLS: TLS 1.3 only, the server
// verified against caFile for serverName, our certificate from certFile and
// keyFile. Errors name the file and what is wrong with it.
func ClientConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load client certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      pool,
		Certificates: []tls.Certificate{cert},
		ServerName:   serverName,
	}, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA certificate %s holds no PEM certificate", file)
	}
	return pool, nil
}
