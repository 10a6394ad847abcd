package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/jobworker/jobworker/auth"
)

// devClients are the client certificates of the development PKI: file
// name, user name, role.
var devClients = []struct {
	file, user string
	role       auth.Role
}{
	{"admin", "admin", auth.RoleAdmin},
	{"user", "dev-user", auth.RoleUser},
	{"reader", "reader", auth.RoleReader},
}

// devTrusted are the files of the development PKI the server trusts: the
// client CA, and its own certificate and key.
var devTrusted = []string{"ca.crt", "server.crt", "server.key"}

// ensureDevPKI makes the development PKI in dir on first use: a CA, a server
// certificate for localhost, 127.0.0.1 and ::1, and one client per role. A
// dir that already holds ca.crt is left as it is, and used only if it and
// the files the server takes from it (devTrusted) pass checkTrusted: real
// ones, root's, not writable by group or others. It reports whether it
// made anything.
func ensureDevPKI(dir string) (bool, error) {
	switch _, err := os.Lstat(dir); {
	case err == nil:
		fix := "the server would trust whoever could write it; delete " + dir +
			" to have a new development PKI made at the next start (its client certificates change with it)"
		if err := checkTrusted("development PKI directory", dir, true, fix); err != nil {
			return false, err
		}
		if _, err := os.Lstat(filepath.Join(dir, "ca.crt")); err == nil {
			for _, f := range devTrusted {
				if err := checkTrusted("development PKI file", filepath.Join(dir, f), false, fix); err != nil {
					return false, err
				}
			}
			return false, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return false, err
	}
	if err := makeDevPKI(dir); err != nil {
		return false, fmt.Errorf("make the development PKI in %s: %w", dir, err)
	}
	return true, nil
}

// makeDevPKI makes the development PKI in dir, which holds no ca.crt.
func makeDevPKI(dir string) error {
	// Build everything in a temporary directory and rename it into place,
	// so that an interrupted first start leaves no half PKI behind.
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".dev-pki-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ca, err := auth.NewCA("jobworker dev CA", auth.CAValidity)
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(tmp, "ca"); err != nil {
		return err
	}
	srv, err := auth.IssueServer(ca, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, auth.ServerValidity)
	if err != nil {
		return err
	}
	if err := srv.WriteFiles(tmp, "server"); err != nil {
		return err
	}
	for _, c := range devClients {
		kp, err := auth.IssueClient(ca, c.user, c.role, auth.ClientValidity)
		if err != nil {
			return err
		}
		if err := kp.WriteFiles(tmp, c.file); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move it into place: %w", err)
	}
	return nil
}

// printDevExports prints the shell lines that point the CLI at the dev
// server as admin (or as the dev user, or reader: the other files are next
// to them).
func printDevExports(w io.Writer, dir, listen string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" || host == "127.0.0.1" {
		host = "localhost"
	}
	cert, key := auth.Paths(abs, "admin")
	_, err = fmt.Fprintf(w, "export JOBWORKER_SERVER=%s\nexport JOBWORKER_CA=%s\nexport JOBWORKER_CERT=%s\nexport JOBWORKER_KEY=%s\n",
		net.JoinHostPort(host, port), filepath.Join(abs, "ca.crt"), cert, key)
	return err
}
