// Package testcerts makes, at test time, every certificate jobworker's tests
// need, so that no private key is ever committed. Certificates are written
// as NAME.crt and NAME.key into a temporary directory.
package testcerts

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
	"time"

	"github.com/jobworker/jobworker/auth"
)

// Cert is a certificate with its key and the files holding them.
type Cert struct {
	*auth.KeyPair
	CertFile string
	KeyFile  string
}

// Set is a full set of test certificates.
type Set struct {
	Dir string
	CA  Cert // the CA that signs the server and every client below but Untrusted

	Server Cert // for localhost and 127.0.0.1, server-auth usage

	Admin  Cert // user "admin", role admin
	User   Cert // user "alice", role user
	User2  Cert // user "bob", role user
	Reader Cert // user "reader", role reader

	UntrustedCA Cert // a CA the server does not trust
	Untrusted   Cert // user "mallory", role admin, signed by UntrustedCA

	NoRole         Cert // user "norole": no role extension
	UnknownRole    Cert // user "root": role "root"
	Expired        Cert // user "expired", role admin, expired an hour ago
	NotYetValid    Cert // user "early", role admin, valid from tomorrow
	ServerAsClient Cert // user "srv", role admin, but server-auth usage only
	BadName        Cert // user "../etc", role admin: an unsafe Common Name
}

// New makes a Set in a temporary directory of t.
func New(t testing.TB) *Set {
	t.Helper()
	s := &Set{Dir: t.TempDir()}
	must := func(kp *auth.KeyPair, err error) *auth.KeyPair {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	write := func(name string, kp *auth.KeyPair) Cert {
		t.Helper()
		if err := kp.WriteFiles(s.Dir, name); err != nil {
			t.Fatal(err)
		}
		c, k := auth.Paths(s.Dir, name)
		return Cert{KeyPair: kp, CertFile: c, KeyFile: k}
	}
	day := 24 * time.Hour

	s.CA = write("ca", must(auth.NewCA("jobworker test CA", day)))
	s.Server = write("server", must(auth.IssueServer(s.CA.KeyPair, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, day)))
	client := func(name, user string, role auth.Role) Cert {
		return write(name, must(auth.IssueClient(s.CA.KeyPair, user, role, day)))
	}
	s.Admin = client("admin", "admin", auth.RoleAdmin)
	s.User = client("alice", "alice", auth.RoleUser)
	s.User2 = client("bob", "bob", auth.RoleUser)
	s.Reader = client("reader", "reader", auth.RoleReader)

	s.UntrustedCA = write("untrusted-ca", must(auth.NewCA("some other CA", day)))
	s.Untrusted = write("untrusted", must(auth.IssueClient(s.UntrustedCA.KeyPair, "mallory", auth.RoleAdmin, day)))

	now := time.Now()
	custom := func(name, user string, ext []pkix.Extension, from, to time.Time, usage x509.ExtKeyUsage) Cert {
		return write(name, must(auth.Issue(s.CA.KeyPair, &x509.Certificate{
			Subject:         pkix.Name{CommonName: user},
			NotBefore:       from,
			NotAfter:        to,
			KeyUsage:        x509.KeyUsageDigitalSignature,
			ExtKeyUsage:     []x509.ExtKeyUsage{usage},
			ExtraExtensions: ext,
		})))
	}
	adminExt, err := auth.RoleExtension(auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	unknown := adminExt
	unknown.Value = []byte{0x0c, 0x04, 'r', 'o', 'o', 't'} // UTF8String "root"
	admin := []pkix.Extension{adminExt}
	s.NoRole = custom("norole", "norole", nil, now.Add(-time.Hour), now.Add(day), x509.ExtKeyUsageClientAuth)
	s.UnknownRole = custom("unknownrole", "root", []pkix.Extension{unknown}, now.Add(-time.Hour), now.Add(day), x509.ExtKeyUsageClientAuth)
	s.Expired = custom("expired", "expired", admin, now.Add(-2*day), now.Add(-time.Hour), x509.ExtKeyUsageClientAuth)
	s.NotYetValid = custom("early", "early", admin, now.Add(day), now.Add(2*day), x509.ExtKeyUsageClientAuth)
	s.ServerAsClient = custom("srv", "srv", admin, now.Add(-time.Hour), now.Add(day), x509.ExtKeyUsageServerAuth)
	s.BadName = custom("badname", "../etc", admin, now.Add(-time.Hour), now.Add(day), x509.ExtKeyUsageClientAuth)
	return s
}
