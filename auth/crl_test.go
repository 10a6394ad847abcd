//go:build !integration

package auth_test

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobworker/jobworker/auth"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/jobworker/jobworker/testcerts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRevocation: a certificate added to the CA's revocation list is
// refused at the handshake by a server with the list; others are not; a
// certificate revoked again is counted once; a list of another CA is
// refused, and a reload with it keeps the list in use.
func TestRevocation(t *testing.T) {
	s := testcerts.New(t)
	crl := filepath.Join(s.Dir, auth.CRLFile)
	// An empty list first: every client gets in.
	if n, err := auth.Revoke(s.CA.KeyPair, crl, nil); err != nil || n != 0 {
		t.Fatalf("Revoke of none = %d, %v", n, err)
	}
	st, err := auth.NewServerTLSWithCRL(s.Server.CertFile, s.Server.KeyFile, s.CA.CertFile, crl)
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, st)
	list := func(c testcerts.Cert) error {
		_, err := dial(t, addr, clientConfig(t, s.CA.CertFile, c)).ListJobs(context.Background(), &jobworkerv1.ListJobsRequest{})
		return err
	}
	if err := list(s.User); err != nil {
		t.Fatalf("alice before the revocation: %v", err)
	}
	if n, err := auth.Revoke(s.CA.KeyPair, crl, []*x509.Certificate{s.User.Cert}); err != nil || n != 1 {
		t.Fatalf("Revoke(alice) = %d, %v; want 1", n, err)
	}
	if n, err := auth.Revoke(s.CA.KeyPair, crl, []*x509.Certificate{s.User.Cert}); err != nil || n != 0 {
		t.Fatalf("Revoke(alice) again = %d, %v; want 0", n, err)
	}
	if err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	if !st.Revoked(s.User.Cert) || st.Revoked(s.User2.Cert) {
		t.Errorf("Revoked: alice %v, bob %v; want true, false", st.Revoked(s.User.Cert), st.Revoked(s.User2.Cert))
	}
	if err := list(s.User); status.Code(err) != codes.Unavailable {
		t.Errorf("alice after the revocation: %v, want Unavailable (refused at the handshake)", err)
	}
	if err := list(s.User2); err != nil {
		t.Errorf("bob after alice's revocation: %v", err)
	}
	// A certificate of another CA cannot be revoked by this one.
	if _, err := auth.Revoke(s.CA.KeyPair, crl, []*x509.Certificate{s.Untrusted.Cert}); err == nil {
		t.Error("Revoke of another CA's certificate succeeded")
	}
	// A list signed by another CA is refused, and the old one stays.
	other := filepath.Join(t.TempDir(), auth.CRLFile)
	if _, err := auth.Revoke(s.UntrustedCA.KeyPair, other, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.NewServerTLSWithCRL(s.Server.CertFile, s.Server.KeyFile, s.CA.CertFile, other); err == nil || !strings.Contains(err.Error(), "not signed by the client CA") {
		t.Errorf("a server with another CA's list: %v, want it refused", err)
	}
}
