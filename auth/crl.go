package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// CRLFile is the name of a CA's revocation list in its directory.
const CRLFile = "ca.crl"

// crlValidity is how long a revocation list made by Revoke is valid: the
// server does not refuse a stale list (the CA's owner makes a new one when
// it revokes more), so this is only what the list says.
const crlValidity = CAValidity

// Revoke adds certs, issued by ca, to the revocation list at path (made if
// missing, its other entries kept) and writes the list anew, signed by
// ca. It returns how many of certs were not revoked yet.
func Revoke(ca *KeyPair, path string, certs []*x509.Certificate) (int, error) {
	var entries []x509.RevocationListEntry
	number := big.NewInt(1)
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		rl, err := parseCRL(old, []*x509.Certificate{ca.Cert})
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		entries = rl.RevokedCertificateEntries
		number.Add(rl.Number, big.NewInt(1))
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("read the revocation list: %w", err)
	}
	now := time.Now()
	added := 0
	for _, c := range certs {
		if err := c.CheckSignatureFrom(ca.Cert); err != nil {
			return 0, fmt.Errorf("certificate %q (serial %x) is not issued by this CA: %w", c.Subject.CommonName, c.SerialNumber, err)
		}
		if revokedIn(entries, c.SerialNumber) {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now})
		added++
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: number, ThisUpdate: now.Add(-clockSkew), NextUpdate: now.Add(crlValidity),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return 0, fmt.Errorf("sign the revocation list: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	tmp := path + ".new"
	os.Remove(tmp)
	if err := writeNew(tmp, data, 0o644); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return added, nil
}

func revokedIn(entries []x509.RevocationListEntry, serial *big.Int) bool {
	for _, e := range entries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// parseCRL parses a revocation list (PEM or DER) and checks that one of
// cas signed it.
func parseCRL(data []byte, cas []*x509.Certificate) (*x509.RevocationList, error) {
	der := data
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "X509 CRL" {
			return nil, fmt.Errorf("a PEM %q block, not an X509 CRL", b.Type)
		}
		der = b.Bytes
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("not a revocation list: %w", err)
	}
	for _, ca := range cas {
		if bytes.Equal(rl.RawIssuer, ca.RawSubject) && rl.CheckSignatureFrom(ca) == nil {
			return rl, nil
		}
	}
	return nil, errors.New("not signed by the client CA")
}

// revocations are the certificates a revocation list revokes, by issuer
// and serial number.
type revocations map[string]bool

func revocationKey(issuer []byte, serial *big.Int) string {
	return string(issuer) + "\x00" + serial.String()
}

// loadRevocations reads the revocation list at path, which one of cas must
// have signed.
func loadRevocations(path string, cas []*x509.Certificate) (revocations, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the revocation list: %w", err)
	}
	rl, err := parseCRL(b, cas)
	if err != nil {
		return nil, fmt.Errorf("revocation list %s: %w", path, err)
	}
	r := revocations{}
	for _, e := range rl.RevokedCertificateEntries {
		r[revocationKey(rl.RawIssuer, e.SerialNumber)] = true
	}
	return r, nil
}

// revoked reports whether the list revokes c.
func (r revocations) revoked(c *x509.Certificate) bool {
	return r[revocationKey(c.RawIssuer, c.SerialNumber)]
}

// LoadCertificates reads the PEM certificates of a file.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return certs, nil
}
