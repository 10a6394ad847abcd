// Package auth is jobworker's identity and access control: mutual TLS 1.3
// configurations, the role carried in client certificates, the gRPC
// interceptors that enforce one method-to-role table, and a small PKI that
// issues certificates with the role in them.
//
// # Identity and role
//
// A client is the Common Name of its verified certificate. Its role is a
// non-critical X.509 extension with the OID 1.3.9999.2026.1 (RoleOID) whose
// value is a DER UTF8String: "admin", "user" or "reader". The arc 1.3.9999
// is not assigned by any registry; the extension is only ever read from
// certificates that chain to the server's own client CA, so it cannot clash
// with anyone else's meaning. A certificate without a valid role, with an
// empty or unsafe Common Name, or without the client-auth extended key usage
// is refused during the TLS handshake.
//
// # TLS
//
// Both sides set MinVersion to TLS 1.3 and nothing else of the cipher
// configuration. Go does not let TLS 1.3 cipher suites be configured: it
// offers TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and
// TLS_CHACHA20_POLY1305_SHA256, all AEAD with forward secrecy, and orders
// them by whether the CPU has AES hardware. The key exchange groups are Go's
// defaults (the hybrid post-quantum X25519MLKEM768, then X25519, P-256,
// P-384), which are better than any list we would pin. Every key we issue is
// ECDSA P-256 with SHA-256 signatures.
package auth

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
)

// RoleOID is the OID of the role extension: 1.3.9999.2026.1. It is a
// fresh value each time, which a caller may change.
func RoleOID() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 9999, 2026, 1} }

// Role is what a client may do.
type Role string

// The roles.
const (
	// RoleAdmin may call every RPC on every job.
	RoleAdmin Role = "admin"
	// RoleUser may start jobs and see and stop its own.
	RoleUser Role = "user"
	// RoleReader may see every job but never start or stop one.
	RoleReader Role = "reader"
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleUser, RoleReader:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q: want admin, user or reader", s)
}

// Identity is an authenticated client.
type Identity struct {
	User string
	Role Role
}

// ValidUserName reports whether s is a safe user name: 1 to 64 letters,
// digits, dots, underscores and hyphens, starting with a letter or digit.
// A user name becomes part of cgroup and log paths, so it is short and
// plain.
func ValidUserName(s string) bool {
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	if len(s) == 0 || len(s) > 64 || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// ErrNoRole is returned for a certificate without the role extension.
var ErrNoRole = errors.New("certificate has no jobworker role extension")

// IdentityFromCertificate reads the identity of a verified client
// certificate: its Common Name and role. It checks the name, the role and the
// client-auth extended key usage.
func IdentityFromCertificate(c *x509.Certificate) (Identity, error) {
	if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return Identity{}, errors.New("certificate lacks the client-auth extended key usage")
	}
	cn := c.Subject.CommonName
	if !ValidUserName(cn) {
		return Identity{}, fmt.Errorf("certificate common name %q is not a valid user name (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)", cn)
	}
	role, err := roleOf(c)
	if err != nil {
		return Identity{}, err
	}
	return Identity{User: cn, Role: role}, nil
}

func roleOf(c *x509.Certificate) (Role, error) {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(RoleOID()) {
			continue
		}
		var s string
		rest, err := asn1.UnmarshalWithParams(ext.Value, &s, "utf8")
		if err != nil || len(rest) > 0 {
			return "", errors.New("certificate role extension is not a UTF8String")
		}
		return ParseRole(s)
	}
	return "", ErrNoRole
}

// roleExtension builds the role extension for a certificate.
func roleExtension(r Role) (extension, error) {
	if _, err := ParseRole(string(r)); err != nil {
		return extension{}, err
	}
	v, err := asn1.MarshalWithParams(string(r), "utf8")
	if err != nil {
		return extension{}, err
	}
	return extension{Id: RoleOID(), Value: v}, nil
}

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity the interceptors put in ctx.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
