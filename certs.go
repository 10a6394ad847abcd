package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/jobworker/jobworker/auth"
)

// certsCmd is `jobworker certs`: a small PKI so no other tool is needed.
type certsCmd struct {
	CA     certsCACmd     `cmd:"" name:"ca" help:"Make a CA (ca.crt, ca.key)."`
	Server certsServerCmd `cmd:"" help:"Make a server certificate (server.crt, server.key)."`
	Client certsClientCmd `cmd:"" help:"Make a client certificate with a role (USER.crt, USER.key)."`
	Revoke certsRevokeCmd `cmd:"" help:"Add certificates to the CA's revocation list (ca.crl), which serve --crl reads."`
}

type certsRevokeCmd struct {
	CADir string   `name:"ca-dir" required:"" placeholder:"DIR" type:"path" help:"Directory holding ca.crt and ca.key; the list is written to DIR/ca.crl."`
	Certs []string `arg:"" name:"cert" placeholder:"CERT" type:"path" help:"Certificate files (PEM) to revoke."`
}

func (c *certsRevokeCmd) Run(e *env) error {
	ca, err := loadCA(c.CADir)
	if err != nil {
		return err
	}
	var certs []*x509.Certificate
	for _, f := range c.Certs {
		cs, err := auth.LoadCertificates(f)
		if err != nil {
			return fmt.Errorf("certs revoke: %w", err)
		}
		certs = append(certs, cs[0])
	}
	path := filepath.Join(c.CADir, auth.CRLFile)
	added, err := auth.Revoke(ca, path, certs)
	if err != nil {
		return fmt.Errorf("certs revoke: %w", err)
	}
	_, err = fmt.Fprintf(e.stderr, "revoked %d certificate(s) (%d already were) in %s; a server started with --crl %s refuses them once it has it (SIGHUP reloads it and ends their connections)\n",
		added, len(certs)-added, path, path)
	return err
}

type certsCACmd struct {
	Out   string        `required:"" placeholder:"DIR" type:"path" help:"Directory to write ca.crt and ca.key into."`
	Name  string        `default:"jobworker CA" help:"Common Name of the CA."`
	Valid time.Duration `default:"87600h" placeholder:"DUR" help:"Validity (default 10 years)."`
}

func (c *certsCACmd) Run(e *env) error {
	kp, err := auth.NewCA(c.Name, c.Valid)
	if err != nil {
		return err
	}
	return writeCert(e, kp, c.Out, "ca")
}

type certsServerCmd struct {
	CADir string        `name:"ca-dir" required:"" placeholder:"DIR" type:"path" help:"Directory holding ca.crt and ca.key."`
	Out   string        `required:"" placeholder:"DIR" type:"path" help:"Directory to write server.crt and server.key into."`
	Name  []string      `required:"" placeholder:"NAME" help:"DNS name of the server (repeatable)."`
	IP    []string      `name:"ip" placeholder:"IP" help:"IP address of the server (repeatable)."`
	Valid time.Duration `default:"8760h" placeholder:"DUR" help:"Validity (default 1 year)."`
}

func (c *certsServerCmd) Run(e *env) error {
	ca, err := loadCA(c.CADir)
	if err != nil {
		return err
	}
	var ips []net.IP
	for _, s := range c.IP {
		ip := net.ParseIP(s)
		if ip == nil {
			return &exitCodeError{code: exitUsage, msg: fmt.Sprintf("certs server: --ip %q is not an IP address", s)}
		}
		ips = append(ips, ip)
	}
	kp, err := auth.IssueServer(ca, c.Name, ips, c.Valid)
	if err != nil {
		return err
	}
	return writeCert(e, kp, c.Out, "server")
}

type certsClientCmd struct {
	CADir string        `name:"ca-dir" required:"" placeholder:"DIR" type:"path" help:"Directory holding ca.crt and ca.key."`
	Out   string        `required:"" placeholder:"DIR" type:"path" help:"Directory to write USER.crt and USER.key into."`
	User  string        `required:"" placeholder:"NAME" help:"User name (the certificate's Common Name)."`
	Role  string        `required:"" enum:"admin,user,reader" placeholder:"ROLE" help:"Role: admin, user or reader."`
	Valid time.Duration `default:"2160h" placeholder:"DUR" help:"Validity (default 90 days)."`
}

func (c *certsClientCmd) Run(e *env) error {
	if !auth.ValidUserName(c.User) {
		return &exitCodeError{code: exitUsage, msg: fmt.Sprintf("certs client: --user %q is not a valid user name: use 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", c.User)}
	}
	ca, err := loadCA(c.CADir)
	if err != nil {
		return err
	}
	kp, err := auth.IssueClient(ca, c.User, auth.Role(c.Role), c.Valid)
	if err != nil {
		return err
	}
	return writeCert(e, kp, c.Out, c.User)
}

func loadCA(dir string) (*auth.KeyPair, error) {
	ca, err := auth.LoadKeyPair(dir, "ca")
	if err != nil {
		return nil, fmt.Errorf("load the CA from %s (made by `jobworker certs ca --out %s`): %w", dir, dir, err)
	}
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("%s/ca.crt is not a CA certificate", dir)
	}
	return ca, nil
}

func writeCert(e *env, kp *auth.KeyPair, dir, name string) error {
	if err := kp.WriteFiles(dir, name); err != nil {
		return err
	}
	certFile, keyFile := auth.Paths(dir, name)
	_, err := fmt.Fprintf(e.stderr, "wrote %s and %s (key mode 0600): %q, valid until %s\n",
		certFile, keyFile, kp.Cert.Subject.CommonName, kp.Cert.NotAfter.UTC().Format(time.RFC3339))
	return err
}
