//go:build integration

package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestE2ESIGHUPDuringStartup: a SIGHUP that reaches the server while it is
// starting does not kill it (SIGHUP's default action), and is not lost:
// it is applied, as a reload, once the certificates are loaded.
//
// The server is held at a known point of its start-up: its --client-ca is
// a FIFO, which it blocks reading until the test writes the CA into it.
// Opening the FIFO for writing returns once the server has opened it for
// reading, so the SIGHUPs that follow arrive, every time, while the
// server is loading its certificates: after its flags are parsed, before
// its cgroups are set up, its old cgroups swept and its listener opened.
// (A server that had not caught SIGHUP yet dies of it there, exit status
// "signal: hangup".) The reload the SIGHUPs asked for then reads the FIFO
// again, which the test sees as a second open, before the server serves
// with the CA it was given.
func TestE2ESIGHUPDuringStartup(t *testing.T) {
	bin := binary(t)
	pki := t.TempDir()
	for _, args := range [][]string{
		{"certs", "ca", "--out", pki},
		{"certs", "server", "--ca-dir", pki, "--out", pki, "--name", "localhost", "--ip", "127.0.0.1"},
		{"certs", "client", "--ca-dir", pki, "--out", pki, "--user", "admin", "--role", "admin"},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("jobworker %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "client-ca.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "serve", "--state-dir", t.TempDir(), "--listen", "127.0.0.1:0",
		"--cert", filepath.Join(pki, "server.crt"), "--key", filepath.Join(pki, "server.key"), "--client-ca", fifo,
		"--stop-grace", "2s", "--default-memory-limit", "32M")
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The server's log, line by line, and its exit.
	var logMu sync.Mutex
	var log bytes.Buffer
	logged := make(chan string, 100)
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			select {
			case logged <- sc.Text():
			default:
			}
		}
		cmd.Wait()
		close(exited)
	}()
	serverLog := func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return log.String()
	}
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	died := func(when string) {
		t.Helper()
		select {
		case <-exited:
			t.Fatalf("%s: the server exited (%v); log:\n%s", when, cmd.ProcessState, serverLog())
		case <-time.After(time.Minute):
			t.Fatalf("%s: the server stopped reading its client CA but did not exit; log:\n%s", when, serverLog())
		}
	}

	// feed waits for the server to open the FIFO, then writes the CA into
	// it. Before it writes, hold runs; after, done, before the FIFO is
	// closed (which ends the server's read).
	feed := func(what string, hold, done func()) {
		t.Helper()
		opened := make(chan *os.File, 1)
		go func() {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				f = nil
			}
			opened <- f
		}()
		var f *os.File
		select {
		case f = <-opened:
		case <-exited:
			// Release the opener blocked on the FIFO.
			if r, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
				defer r.Close()
			}
			died("waiting for it to read its client CA (" + what + ")")
		case <-time.After(2 * time.Minute):
			t.Fatalf("the server did not read its client CA (%s) within two minutes; log:\n%s", what, serverLog())
		}
		if f == nil {
			t.FailNow()
		}
		defer f.Close()
		hold()
		if _, err := f.Write(caPEM); err != nil {
			died("writing its client CA (" + what + "): " + err.Error())
		}
		done()
	}
	// A FIFO of its own for the reload, so that the second writer never
	// meets the first reader: put in the client CA's place before the
	// first read ends, it is what the reload opens.
	next := filepath.Join(filepath.Dir(fifo), "next.fifo")
	if err := unix.Mkfifo(next, 0o600); err != nil {
		t.Fatal(err)
	}

	feed("at start-up", func() {
		// The server is loading its certificates.
		for range 3 {
			if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
	}, func() {
		if err := os.Rename(next, fifo); err != nil {
			t.Fatal(err)
		}
	})
	// The SIGHUPs sent during start-up make one reload, which reads the
	// files again.
	feed("for the reload SIGHUP asked for", func() {}, func() {})

	addrRE := regexp.MustCompile(`msg=serving listen=(\S+)`)
	var addr string
	reloaded := false
	for addr == "" || !reloaded {
		select {
		case line := <-logged:
			if m := addrRE.FindStringSubmatch(line); m != nil {
				addr = m[1]
			}
			if strings.Contains(line, "reloaded the server certificate, key and client CA") {
				reloaded = true
			}
			if strings.Contains(line, "reload on SIGHUP refused") {
				t.Errorf("the reload was refused: %s", line)
			}
		case <-exited:
			died("starting")
		case <-time.After(2 * time.Minute):
			t.Fatalf("no serving and reloaded lines within two minutes; log:\n%s", serverLog())
		}
	}

	// It serves clients of the CA it read.
	list := exec.Command(bin, "list")
	list.Env = []string{"PATH=/bin", "JOBWORKER_SERVER=" + addr, "JOBWORKER_CA=" + filepath.Join(pki, "ca.crt"),
		"JOBWORKER_CERT=" + filepath.Join(pki, "admin.crt"), "JOBWORKER_KEY=" + filepath.Join(pki, "admin.key")}
	if out, err := list.CombinedOutput(); err != nil {
		t.Errorf("jobworker list as admin: %v: %s", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatalf("the server did not stop within a minute of SIGTERM; log:\n%s", serverLog())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the server exited %v after SIGTERM, want 0; log:\n%s", cmd.ProcessState, serverLog())
	}
}
