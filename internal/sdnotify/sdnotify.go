// Package sdnotify tells systemd how a Type=notify service is doing: the
// sd_notify(3) protocol, one datagram of newline-separated KEY=VALUE
// assignments to the unix socket named by $NOTIFY_SOCKET (a path, or an
// abstract socket when it starts with @). systemd documents the protocol
// as stable and meant to be spoken without libsystemd.
package sdnotify

import (
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends states to one socket; the zero Notifier, for a process
// that systemd did not start with a notification socket, sends nothing.
type Notifier struct {
	addr string
}

// New is the Notifier for the socket named by notifySocket (the value of
// $NOTIFY_SOCKET, which may be empty).
func New(notifySocket string) Notifier { return Notifier{addr: notifySocket} }

// Enabled reports whether there is a socket to notify.
func (n Notifier) Enabled() bool { return n.addr != "" }

// Send sends the assignments, joined by newlines, in one datagram.
func (n Notifier) Send(assignments ...string) error {
	if n.addr == "" {
		return nil
	}
	addr := n.addr
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(assignments, "\n") + "\n")); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}

// Ready says the service serves.
func (n Notifier) Ready() error { return n.Send("READY=1") }

// Reloading says a reload began, with the CLOCK_MONOTONIC time systemd
// needs to match it with the reload it asked for (Type=notify-reload).
func (n Notifier) Reloading() error {
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+fmt.Sprint(monotonicUsec()))
}

// Stopping says the service is shutting down.
func (n Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Status is a free-form status line that systemctl status shows.
func (n Notifier) Status(s string) error { return n.Send("STATUS=" + s) }

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / int64(time.Microsecond)
}
