package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen is a fake systemd notification socket at a path, or abstract.
func listen(t *testing.T, abstract bool) (string, *net.UnixConn) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	addr := name
	if abstract {
		name = "@jobworker-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		addr = "\x00" + name[1:]
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return name, c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotify(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		name, c := listen(t, abstract)
		n := New(name)
		if !n.Enabled() {
			t.Fatal("a Notifier with a socket is not enabled")
		}
		var before unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
		for _, step := range []struct {
			send func() error
			want string
		}{
			{n.Ready, "READY=1\n"},
			{n.Stopping, "STOPPING=1\n"},
			{func() error { return n.Status("serving 3 jobs") }, "STATUS=serving 3 jobs\n"},
		} {
			if err := step.send(); err != nil {
				t.Fatal(err)
			}
			if got := read(t, c); got != step.want {
				t.Errorf("abstract %v: got %q, want %q", abstract, got, step.want)
			}
		}
		if err := n.Reloading(); err != nil {
			t.Fatal(err)
		}
		got := read(t, c)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		usec, err := strconv.ParseInt(strings.TrimPrefix(lines[len(lines)-1], "MONOTONIC_USEC="), 10, 64)
		if len(lines) != 2 || lines[0] != "RELOADING=1" || err != nil || usec < before.Nano()/1000 {
			t.Errorf("Reloading sent %q, want RELOADING=1 and MONOTONIC_USEC of now (at least %d)", got, before.Nano()/1000)
		}
	}
}

// TestNotifyDisabled: without a socket nothing is sent and nothing fails.
func TestNotifyDisabled(t *testing.T) {
	n := New("")
	if n.Enabled() || n.Ready() != nil || n.Reloading() != nil || n.Stopping() != nil {
		t.Error("a Notifier without a socket did something")
	}
}
