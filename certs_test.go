//go:build !integration

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobworker/jobworker/auth"
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
	st, err := auth.NewServerTLS(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	authz := auth.NewAuthorizer(slog.New(slog.NewTextHandler(io.Discard, nil)), auth.MethodRoles)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(st.Config())),
		grpc.UnaryInterceptor(authz.UnaryInterceptor), grpc.StreamInterceptor(authz.StreamInterceptor))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
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
// extension is refused.
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
	addr := serveHealth(t, filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt"))
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
	err = healthCheck(t, addr, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "eve.crt"), filepath.Join(dir, "eve.key"))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("openssl client without a role: %v, want Unavailable", err)
	}
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
