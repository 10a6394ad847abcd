//go:build integration

package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"github.com/jobworker/jobworker/service"
)

// TestConnections5000Idle: 5000 TCP connections opened and left idle
// before their handshake. The server's descriptors stay within
// --max-connections of its baseline; a client with a certificate still
// starts a job and follows its output to the end; at the handshake
// deadline the idle connections are closed and the descriptors are back
// to the baseline.
func TestConnections5000Idle(t *testing.T) {
	// The test's 5000 connections, and the server's (which inherits it).
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < 8192 {
		raised := syscall.Rlimit{Cur: 8192, Max: max(lim.Max, 8192)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			t.Fatalf("the test needs 8192 descriptors, has %d: %v", lim.Cur, err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
	}
	const bound = 100
	s := startDevServer(t, t.TempDir(), "--max-connections", fmt.Sprint(bound))
	// The baseline has the admin's connection made.
	s.job(s.runJobID())
	fd0 := openFDs(t, s.pid())
	var (
		mu     sync.Mutex
		idle   []net.Conn
		opened []time.Time // when each of idle was opened
	)
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	dial := func(n, parallel int) {
		var wg sync.WaitGroup
		errs := make(chan error, parallel)
		for range parallel {
			wg.Go(func() {
				for range n / parallel {
					c, err := net.Dial("tcp", s.addr)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					idle = append(idle, c)
					opened = append(opened, time.Now())
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("after %d connections: %v", len(idle), err)
		}
	}
	// Six times the bound: the server holds the bound, no more. The
	// count proves it only if at least twice the bound were opened within
	// a handshake deadline of it: a server without the bound would then
	// hold them all, since no deadline has closed them. (One with the
	// bound holds the newest, evicting the oldest in their handshake.)
	dial(6*bound, 8)
	fds := openFDs(t, s.pid())
	recent := 0
	for _, at := range opened {
		if time.Since(at) < service.HandshakeTimeout-time.Second {
			recent++
		}
	}
	if recent < 2*bound {
		t.Fatalf("only %d of the %d connections were opened within %v of the count: a server without the bound could hold as few, and the count proves nothing", recent, 6*bound, service.HandshakeTimeout-time.Second)
	}
	if fds < fd0+bound-10 {
		t.Errorf("with %d idle connections the server holds %d descriptors, its baseline %d: it should hold about the bound of %d more", 6*bound, fds, fd0, bound)
	}
	if fds > fd0+bound+10 {
		t.Errorf("with %d idle connections the server holds %d descriptors, over its baseline %d and the bound of %d", 6*bound, fds, fd0, bound)
	}
	// Up to 5000.
	began := time.Now()
	dial(5000-6*bound, 8)
	if fds := openFDs(t, s.pid()); fds > fd0+bound+10 {
		t.Errorf("with 5000 idle connections the server holds %d descriptors, over its baseline %d and the bound of %d", fds, fd0, bound)
	}
	// A new client (a new connection) starts a job and follows it.
	r := s.cli("user", "run", "--", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.2; done")
	if r.code != 0 || r.out != "line 1\nline 2\nline 3\n" {
		t.Fatalf("run with 5000 idle connections: exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
	}
	if time.Since(began) > 10*time.Second {
		t.Logf("note: the idle connections took %v to open", time.Since(began))
	}
	// Every idle connection is closed by the server at the deadline.
	for i, c := range idle {
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("idle connection %d still open 15 s after the handshake deadline: %v", i, err)
		}
	}
	eventually(t, 10*time.Second, "the server's descriptors back to the baseline", func() bool { return openFDs(t, s.pid()) <= fd0 })
	if r := s.cli("admin", "list"); r.code != 0 || !strings.Contains(r.out, "completed") {
		t.Errorf("list after the idle connections: exit %d, %q; want the completed jobs", r.code, r.out)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// runJobID starts a job that ends at once as admin, through the API, and
// returns its ID.
func (s *devServer) runJobID() string {
	s.t.Helper()
	r, err := s.client("admin").StartJob(context.Background(), &jobworkerv1.StartJobRequest{Command: "true"})
	if err != nil {
		s.t.Fatal(err)
	}
	s.wait(r.GetJob().GetId())
	return r.GetJob().GetId()
}
