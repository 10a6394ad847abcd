package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// startServer starts `jobworker serve --dev` on a free port with room for
// many jobs under the cgroup parent given, and returns it once it serves.
// A debugSocket path is passed to the server as --debug-socket.
func startServer(bin, state, cgroupParent, debugSocket string) (*exec.Cmd, string, error) {
	args := []string{"serve", "--dev", "--state-dir", state, "--listen", "127.0.0.1:0", "--cgroup-parent", cgroupParent,
		"--default-memory-limit", "64M", "--memory-capacity", "1T", "--max-running", "2000",
		"--output-cap", "0", "--retain", "0", "--retain-count", "0",
		// The bench's jobs are all admin's: no per-user quota (64 running
		// by default) may bound a measure of the server's scale.
		"--quota-exempt", "admin"}
	if debugSocket != "" {
		args = append(args, "--debug-socket", debugSocket)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	sc := bufio.NewScanner(out)
	addr := ""
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "export JOBWORKER_SERVER="); ok {
			addr = v
		}
		if strings.HasPrefix(sc.Text(), "export JOBWORKER_KEY=") {
			break
		}
	}
	if addr == "" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, "", errors.New("the server printed no address")
	}
	go io.Copy(io.Discard, out)
	return cmd, addr, nil
}

// rss reads a field (VmRSS, VmHWM) of the server's /proc status, in bytes.
func rss(pid int, field string) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			var kb uint64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	return 0
}

// peakSeen is the largest VmHWM of the server before a resetPeak.
var peakSeen uint64

// resetPeak resets the server's VmHWM (proc(5), clear_refs 5), keeping the
// peak so far in peakSeen.
func resetPeak(pid int) {
	peakSeen = max(peakSeen, rss(pid, "VmHWM"))
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// cpuTime is the user and system CPU time process pid has used, from
// /proc/PID/stat (proc(5): utime and stime, in clock ticks of 1/100 s).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses: count from the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	var u, st int64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &st)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// ownCPUTime is the CPU time this process (the bench's clients) has used.
func ownCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
