package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type extension = pkix.Extension

// Default validity of what the PKI issues.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 365 * 24 * time.Hour
	ClientValidity = 90 * 24 * time.Hour
)

// clockSkew backdates NotBefore so a peer whose clock is a little behind
// accepts a certificate issued just now.
const clockSkew = 5 * time.Minute

// KeyPair is a certificate with its private key.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA makes a self-signed CA.
func NewCA(commonName string, validity time.Duration) (*KeyPair, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return Issue(nil, tmpl)
}

// IssueServer issues a server certificate for the DNS names and IPs.
func IssueServer(ca *KeyPair, names []string, ips []net.IP, validity time.Duration) (*KeyPair, error) {
	if len(names) == 0 && len(ips) == 0 {
		return nil, errors.New("a server certificate needs at least one name or IP")
	}
	cn := "jobworker server"
	if len(names) > 0 {
		cn = names[0]
	}
	now := time.Now()
	return Issue(ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    names,
		IPAddresses: ips,
	})
}

// IssueClient issues a client certificate for user with role.
func IssueClient(ca *KeyPair, user string, role Role, validity time.Duration) (*KeyPair, error) {
	if !ValidUserName(user) {
		return nil, fmt.Errorf("invalid user name %q: use 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", user)
	}
	ext, err := roleExtension(role)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return Issue(ca, &x509.Certificate{
		Subject:         pkix.Name{CommonName: user},
		NotBefore:       now.Add(-clockSkew),
		NotAfter:        now.Add(validity),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{ext},
	})
}

// RoleExtension returns the role extension for r, for a certificate
// template of one's own.
func RoleExtension(r Role) (pkix.Extension, error) { return roleExtension(r) }

// Issue signs tmpl with a new P-256 key, by ca, or by itself when ca is nil.
// It fills in the serial number and the signature algorithm.
func Issue(ca *KeyPair, tmpl *x509.Certificate) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Paths returns the certificate and key file paths of name in dir.
func Paths(dir, name string) (certFile, keyFile string) {
	return filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
}

// WriteFiles writes NAME.crt (0644) and NAME.key (0600) into dir, creating
// dir (0700) if needed. It refuses to overwrite either file.
func (kp *KeyPair) WriteFiles(dir, name string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	certFile, keyFile := Paths(dir, name)
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("%s already exists; remove it or choose another --out", f)
		}
	}
	if err := writeNew(keyFile, kp.KeyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(certFile, kp.CertPEM, 0o644); err != nil {
		os.Remove(keyFile)
		return err
	}
	return nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// LoadKeyPair reads NAME.crt and NAME.key from dir.
func LoadKeyPair(dir, name string) (*KeyPair, error) {
	certFile, keyFile := Paths(dir, name)
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("%s: no PEM key", keyFile)
	}
	key, err := parseECKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not match %s", keyFile, certFile)
	}
	return &KeyPair{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

func parseECKey(der []byte) (*ecdsa.PrivateKey, error) {
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("not an EC private key (SEC 1 or PKCS #8)")
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA private key")
	}
	return ek, nil
}
