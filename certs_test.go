//go:build !integration

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/auth"
	"github.com/jobworker/jobworker/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != exitOK {
		t.Fatalf("jobworker %s = %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	return errOut.String()
}

// serveHealth serves the health service over our mutual TLS and authorizer.
func serveHealth(t *testing.T, certFile, keyFile, caFile string) string {
	t.Helper()
	addr, _ := serveHealthRefusals(t, certFile, keyFile, caFile)
	return addr
}

// serveHealthRefusals is serveHealth that also reports, on the channel,
// why the server's own check of a client's certificate (the
// VerifyConnection of auth's configuration) refused a handshake.
func serveHealthRefusals(t *testing.T, certFile, keyFile, caFile string) (string, <-chan error) {
	t.Helper()
	st, err := auth.NewServerTLS(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	refusals := make(chan error, 16)
	cfg := st.Config()
	configFor := cfg.GetConfigForClient
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c, err := configFor(hello)
		if err != nil || c.VerifyConnection == nil {
			return c, err
		}
		verify := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			err := verify(cs)
			if err != nil {
				select {
				case refusals <- err:
				default:
				}
			}
			return err
		}
		return c, nil
	}
	authz := auth.NewAuthorizer(slog.New(slog.NewTextHandler(io.Discard, nil)), service.MethodRoles())
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)),
		grpc.UnaryInterceptor(authz.UnaryInterceptor), grpc.StreamInterceptor(authz.StreamInterceptor))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String(), refusals
}

func healthCheck(t *testing.T, addr, ca, cert, key string) error {
	t.Helper()
	cfg, err := auth.ClientConfig(ca, cert, key, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	return err
}

// TestCertsRoundTrip: certificates made by `jobworker certs` pass the
// server's checks; one made by openssl from the same CA without our role
// extension is refused at the handshake: the server's check names the
// missing role (auth.ErrNoRole) and the client is told by the TLS alert
// "bad certificate", not by any other failure to connect.
func TestCertsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "certs", "ca", "--out", dir)
	mustRun(t, "certs", "server", "--ca-dir", dir, "--out", dir, "--name", "localhost", "--ip", "127.0.0.1")
	msg := mustRun(t, "certs", "client", "--ca-dir", dir, "--out", dir, "--user", "carol", "--role", "user")
	if !strings.Contains(msg, "carol.crt") || !strings.Contains(msg, "valid until") {
		t.Errorf("certs client said %q, want the files and the validity", msg)
	}
	for _, name := range []string{"ca", "server", "carol"} {
		fi, err := os.Stat(filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key mode = %v, want 0600", name, fi.Mode().Perm())
		}
	}
	addr, refusals := serveHealthRefusals(t, filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt"))
	if err := healthCheck(t, addr, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "carol.crt"), filepath.Join(dir, "carol.key")); err != nil {
		t.Fatalf("client made by certs: %v, want OK", err)
	}

	// openssl, same CA, client-auth usage, but no role extension.
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is needed for this test: %v", err)
	}
	ext := filepath.Join(dir, "ext.cnf")
	if err := os.WriteFile(ext, []byte("extendedKeyUsage=clientAuth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", filepath.Join(dir, "eve.key"), "-out", filepath.Join(dir, "eve.csr"), "-subj", "/CN=eve"},
		{"x509", "-req", "-in", filepath.Join(dir, "eve.csr"), "-CA", filepath.Join(dir, "ca.crt"), "-CAkey", filepath.Join(dir, "ca.key"), "-CAcreateserial", "-out", filepath.Join(dir, "eve.crt"), "-days", "1", "-sha256", "-extfile", ext},
	} {
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v: %s", args[0], err, out)
		}
	}
	// Over raw TLS the server's verdict is read back exactly: in TLS 1.3
	// it judges the client's certificate after the client's side of the
	// handshake is done, and its alert is what the first read returns.
	// (Through gRPC, which writes its preface at once, the client may see
	// the closed connection, "broken pipe", before the alert.)
	const alert = "remote error: tls: bad certificate"
	err = rawTLSRead(t, addr, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "carol.crt"), filepath.Join(dir, "carol.key"))
	if err != nil {
		t.Fatalf("raw TLS with the client made by certs: %v, want the server's first bytes", err)
	}
	err = rawTLSRead(t, addr, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "eve.crt"), filepath.Join(dir, "eve.key"))
	if err == nil || !strings.Contains(err.Error(), alert) {
		t.Fatalf("raw TLS with the openssl client without a role: %v, want %q", err, alert)
	}
	// The client read the alert, which the server sends once its check has
	// failed: the reason is in the channel by now.
	select {
	case rerr := <-refusals:
		if !errors.Is(rerr, auth.ErrNoRole) {
			t.Errorf("the server refused the openssl client for %v, want %v", rerr, auth.ErrNoRole)
		}
	default:
		t.Errorf("the server's certificate check refused nothing, yet the client read %v", err)
	}
	err = healthCheck(t, addr, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "eve.crt"), filepath.Join(dir, "eve.key"))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("gRPC with the openssl client without a role: %v, want Unavailable", err)
	}
	select {
	case rerr := <-refusals:
		if !errors.Is(rerr, auth.ErrNoRole) {
			t.Errorf("the server refused the openssl client's gRPC call for %v, want %v", rerr, auth.ErrNoRole)
		}
	default:
		t.Errorf("the server's certificate check refused nothing, yet the gRPC call failed with %v", err)
	}
}

// rawTLSRead makes a TLS connection to addr with the client certificate and
// returns the error of the handshake or of the first read: nil once the
// server has accepted the certificate and sent its first bytes.
func rawTLSRead(t *testing.T, addr, ca, cert, key string) error {
	t.Helper()
	cfg, err := auth.ClientConfig(ca, cert, key, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	_, err = conn.Read(make([]byte, 1))
	return err
}

func TestCertsRefusesOverwriteAndBadInput(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "certs", "ca", "--out", dir)
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"certs", "ca", "--out", dir}, exitError, "already exists"},
		{[]string{"certs", "client", "--ca-dir", dir, "--out", dir, "--user", "../x", "--role", "user"}, exitUsage, "not a valid user name"},
		{[]string{"certs", "server", "--ca-dir", dir, "--out", dir, "--name", "h", "--ip", "300.1.1.1"}, exitUsage, "not an IP address"},
		{[]string{"certs", "client", "--ca-dir", t.TempDir(), "--out", dir, "--user", "u", "--role", "user"}, exitError, "certs ca --out"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(tt.args, &out, &errOut)
		if code != tt.code || !strings.Contains(errOut.String(), tt.msg) || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("jobworker %s = %d, %q; want %d and one line containing %q", strings.Join(tt.args, " "), code, errOut.String(), tt.code, tt.msg)
		}
	}
}

// TestDevPKI: made once, with a client per role that the server accepts,
// and exports that point at it.
func TestDevPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "dev")
	made, err := ensureDevPKI(dir)
	if err != nil || !made {
		t.Fatalf("ensureDevPKI = %v, %v; want true, nil", made, err)
	}
	before, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if made, err := ensureDevPKI(dir); err != nil || made {
		t.Fatalf("second ensureDevPKI = %v, %v; want false, nil", made, err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if !bytes.Equal(before, after) {
		t.Fatal("second ensureDevPKI replaced the CA")
	}
	addr := serveHealth(t, filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt"))
	for _, c := range devClients {
		kp, err := auth.LoadKeyPair(dir, c.file)
		if err != nil {
			t.Fatal(err)
		}
		id, err := auth.IdentityFromCertificate(kp.Cert)
		if err != nil || id.User != c.user || id.Role != c.role {
			t.Errorf("%s: identity %+v, %v; want %s/%s", c.file, id, err, c.user, c.role)
		}
		cert, key := auth.Paths(dir, c.file)
		if err := healthCheck(t, addr, filepath.Join(dir, "ca.crt"), cert, key); err != nil {
			t.Errorf("dev client %s: %v", c.file, err)
		}
	}
	var exports bytes.Buffer
	if err := printDevExports(&exports, dir, "127.0.0.1:50051"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"export JOBWORKER_SERVER=localhost:50051\n", "export JOBWORKER_CA=" + filepath.Join(dir, "ca.crt") + "\n", "export JOBWORKER_CERT=" + filepath.Join(dir, "admin.crt") + "\n", "export JOBWORKER_KEY=" + filepath.Join(dir, "admin.key") + "\n"} {
		if !strings.Contains(exports.String(), want) {
			t.Errorf("exports %q lack %q", exports.String(), want)
		}
	}
}

// readPEM decodes the one PEM block of file.
func readPEM(t *testing.T, file string) *pem.Block {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(b)
	if block == nil || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s: want exactly one PEM block", file)
	}
	return block
}

// TestCertsWhatTheyMake: README's "jobworker certs is the whole PKI (ECDSA
// P-256 keys, SHA-256 signatures, ...)", with ca.crt, ca.key (10 years),
// server.crt, server.key (1 year) for the --name and --ip given, USER.crt,
// USER.key (90 days) with the role in "a non-critical X.509 extension with
// OID 1.3.9999.2026.1 whose value is the UTF8String" of the role, and the
// client-auth usage. Each certificate is valid from now (NotBefore at most
// a few minutes back, for clock skew) for its validity, default or --valid;
// each key file holds the P-256 key of its certificate; the server and the
// client chain to the CA for their usages. Read with crypto/x509 alone.
func TestCertsWhatTheyMake(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name     string
		valid    []string // --valid, if any
		validity time.Duration
	}{
		{"defaults", nil, 0},
		{"--valid 1h", []string{"--valid", "1h"}, time.Hour},
		{"--valid 20000h", []string{"--valid", "20000h"}, 20000 * time.Hour},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		start := time.Now().Round(0) // wall clock, as in certificates
		mustRun(t, append([]string{"certs", "ca", "--out", dir}, tt.valid...)...)
		mustRun(t, append([]string{"certs", "server", "--ca-dir", dir, "--out", dir, "--name", "worker1.example.com", "--name", "worker1", "--ip", "10.0.0.5"}, tt.valid...)...)
		mustRun(t, append([]string{"certs", "client", "--ca-dir", dir, "--out", dir, "--user", "alice", "--role", "user"}, tt.valid...)...)
		end := time.Now().Round(0)

		certs := map[string]*x509.Certificate{}
		for _, c := range []struct {
			file     string
			validity time.Duration // by default
		}{{"ca", 3650 * day}, {"server", 365 * day}, {"alice", 90 * day}} {
			block := readPEM(t, filepath.Join(dir, c.file+".crt"))
			if block.Type != "CERTIFICATE" {
				t.Fatalf("%s: %s.crt holds a %q PEM block, want CERTIFICATE", tt.name, c.file, block.Type)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatalf("%s: %s.crt: %v", tt.name, c.file, err)
			}
			certs[c.file] = cert
			if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); cert.PublicKeyAlgorithm != x509.ECDSA || !ok || pub.Curve != elliptic.P256() {
				t.Errorf("%s: %s.crt key is %v %s, want ECDSA P-256", tt.name, c.file, cert.PublicKeyAlgorithm, curveName(cert.PublicKey))
			}
			if cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("%s: %s.crt signature algorithm = %v, want ECDSA-SHA256", tt.name, c.file, cert.SignatureAlgorithm)
			}
			validity := c.validity
			if tt.validity != 0 {
				validity = tt.validity
			}
			// x509 times have whole seconds.
			if lo, hi := start.Truncate(time.Second).Add(validity), end.Add(validity); cert.NotAfter.Before(lo) || cert.NotAfter.After(hi) {
				t.Errorf("%s: %s.crt NotAfter = %v, want %v after issue, within [%v, %v]", tt.name, c.file, cert.NotAfter, validity, lo, hi)
			}
			if lo := start.Add(-10 * time.Minute); cert.NotBefore.After(start) || cert.NotBefore.Before(lo) {
				t.Errorf("%s: %s.crt NotBefore = %v, want within [%v, %v]", tt.name, c.file, cert.NotBefore, lo, start)
			}

			kb := readPEM(t, filepath.Join(dir, c.file+".key"))
			var key any
			key, err = x509.ParseECPrivateKey(kb.Bytes)
			if err != nil {
				key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
			}
			ek, ok := key.(*ecdsa.PrivateKey)
			if err != nil || !ok || ek.Curve != elliptic.P256() || !ek.PublicKey.Equal(cert.PublicKey) {
				t.Errorf("%s: %s.key = %T %s, %v; want the P-256 private key of %s.crt", tt.name, c.file, key, curveName(key), err, c.file)
			}
		}

		ca, server, client := certs["ca"], certs["server"], certs["alice"]
		if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.CheckSignatureFrom(ca) != nil {
			t.Errorf("%s: ca.crt: IsCA %v, basic constraints %v, key usage %b; want a self-signed CA that may sign certificates", tt.name, ca.IsCA, ca.BasicConstraintsValid, ca.KeyUsage)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		if server.IsCA || !slices.Contains(server.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
			t.Errorf("%s: server.crt: IsCA %v, extended key usage %v; want a leaf for server auth", tt.name, server.IsCA, server.ExtKeyUsage)
		}
		if !slices.Equal(server.DNSNames, []string{"worker1.example.com", "worker1"}) || len(server.IPAddresses) != 1 || !server.IPAddresses[0].Equal(net.ParseIP("10.0.0.5")) {
			t.Errorf("%s: server.crt names %q, IPs %v; want the --name and --ip given", tt.name, server.DNSNames, server.IPAddresses)
		}
		for _, name := range []string{"worker1.example.com", "worker1", "10.0.0.5"} {
			if _, err := server.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, CurrentTime: start}); err != nil {
				t.Errorf("%s: server.crt does not verify for %s: %v", tt.name, name, err)
			}
		}
		if client.IsCA || client.Subject.CommonName != "alice" || !slices.Contains(client.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
			t.Errorf("%s: alice.crt: IsCA %v, CN %q, extended key usage %v; want a leaf for client auth named alice", tt.name, client.IsCA, client.Subject.CommonName, client.ExtKeyUsage)
		}
		if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: start}); err != nil {
			t.Errorf("%s: alice.crt does not verify for client auth: %v", tt.name, err)
		}
		var roles []pkix.Extension
		for _, ext := range client.Extensions {
			if ext.Id.Equal(asn1.ObjectIdentifier{1, 3, 9999, 2026, 1}) {
				roles = append(roles, ext)
			}
		}
		// DER UTF8String: tag 12, length 4, "user".
		if len(roles) != 1 || roles[0].Critical || !bytes.Equal(roles[0].Value, []byte{12, 4, 'u', 's', 'e', 'r'}) {
			t.Errorf("%s: alice.crt role extensions %+v, want one, non-critical, the UTF8String \"user\"", tt.name, roles)
		}
	}
}

// curveName is the curve of an ECDSA key, or "(not ECDSA)".
func curveName(key any) string {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return k.Curve.Params().Name
	case *ecdsa.PrivateKey:
		return k.Curve.Params().Name
	}
	return "(not ECDSA)"
}

// dirContents maps each name in dir to its bytes, or to "-> target" for a
// symbolic link.
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = "-> " + target
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// TestCertsNeverOverwrite: README's "nothing overwritten". certs ca,
// server and client refuse, with one line naming the file, when either
// file they would write exists, whatever it holds, a dangling symbolic
// link included; and the directory is left exactly as it was: no byte of
// an existing file changed, no file added, nothing written through a link.
func TestCertsNeverOverwrite(t *testing.T) {
	caDir := t.TempDir()
	mustRun(t, "certs", "ca", "--out", caDir)
	tests := []struct {
		name  string
		args  []string       // without --out
		made  bool           // the files exist, made by the same command
		files map[string]any // else these exist: string contents, or symlink{target}
		names string         // the file the refusal names
	}{
		{"ca over ca", []string{"certs", "ca"}, true, nil, "ca.crt"},
		{"ca over a ca.key alone", []string{"certs", "ca"}, false, map[string]any{"ca.key": "not a key\n"}, "ca.key"},
		{"ca over a ca.crt alone", []string{"certs", "ca"}, false, map[string]any{"ca.crt": "not a certificate\n"}, "ca.crt"},
		{"server over server", []string{"certs", "server", "--ca-dir", caDir, "--name", "localhost"}, true, nil, "server.crt"},
		{"server over a server.crt alone", []string{"certs", "server", "--ca-dir", caDir, "--name", "localhost"}, false, map[string]any{"server.crt": "old\n"}, "server.crt"},
		{"server over an empty server.key alone", []string{"certs", "server", "--ca-dir", caDir, "--name", "localhost"}, false, map[string]any{"server.key": ""}, "server.key"},
		{"server over a dangling link server.key", []string{"certs", "server", "--ca-dir", caDir, "--name", "localhost"}, false, map[string]any{"server.key": symlink{"../elsewhere.key"}}, "server.key"},
		{"client over client", []string{"certs", "client", "--ca-dir", caDir, "--user", "alice", "--role", "user"}, true, nil, "alice.crt"},
		{"client over an alice.key alone", []string{"certs", "client", "--ca-dir", caDir, "--user", "alice", "--role", "admin"}, false, map[string]any{"alice.key": "old key\n"}, "alice.key"},
		{"client over a dangling link alice.crt", []string{"certs", "client", "--ca-dir", caDir, "--user", "alice", "--role", "user"}, false, map[string]any{"alice.crt": symlink{"../target.crt"}}, "alice.crt"},
	}
	for _, tt := range tests {
		out := filepath.Join(t.TempDir(), "out")
		if err := os.Mkdir(out, 0o700); err != nil {
			t.Fatal(err)
		}
		args := append(append([]string{}, tt.args...), "--out", out)
		if tt.made {
			mustRun(t, args...)
		}
		for name, v := range tt.files {
			var err error
			switch v := v.(type) {
			case string:
				err = os.WriteFile(filepath.Join(out, name), []byte(v), 0o644)
			case symlink:
				err = os.Symlink(v.target, filepath.Join(out, name))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		before := dirContents(t, out)
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		msg := stderr.String()
		if want := filepath.Join(out, tt.names) + " already exists"; code != exitError || !strings.Contains(msg, want) || strings.Count(msg, "\n") != 1 {
			t.Errorf("%s: jobworker %s = %d, %q; want %d and one line saying %q", tt.name, strings.Join(args, " "), code, msg, exitError, want)
		}
		after := dirContents(t, out)
		names := maps.Clone(before)
		maps.Copy(names, after)
		for _, name := range slices.Sorted(maps.Keys(names)) {
			old, was := before[name]
			now, is := after[name]
			switch {
			case !was:
				t.Errorf("%s: jobworker %s added %s", tt.name, strings.Join(args, " "), name)
			case !is:
				t.Errorf("%s: jobworker %s removed %s", tt.name, strings.Join(args, " "), name)
			case old != now:
				t.Errorf("%s: jobworker %s changed %s (%d bytes before, %d after)", tt.name, strings.Join(args, " "), name, len(old), len(now))
			}
		}
		// Nothing written where a link points.
		for _, f := range []string{"elsewhere.key", "target.crt"} {
			if _, err := os.Lstat(filepath.Join(filepath.Dir(out), f)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: jobworker %s made %s through a link: %v", tt.name, strings.Join(args, " "), f, err)
			}
		}
	}
}

type symlink struct{ target string }
