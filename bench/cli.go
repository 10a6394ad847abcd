package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// cliStarts times n starts of a job the way a script or a person starts
// one: a fresh `jobworker run -d -- /bin/true` process, from its fork to
// its exit (it prints the ID once the server has exec'd the command),
// against two baselines taken in turn with it: a fork and exec of
// /bin/true, and of an empty static Go program (the least any Go CLI
// costs: the runtime's start-up).
func cliStarts(bin, emptyBin string, env []string, n int) ([]row, error) {
	timeRun := func(cmd *exec.Cmd) (time.Duration, error) {
		t := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(t)
		if err != nil {
			return 0, fmt.Errorf("%s: %v: %s", cmd.Path, err, out)
		}
		return d, nil
	}
	var cli, empty, raw []time.Duration
	for range n {
		for _, m := range []struct {
			cmd *exec.Cmd
			to  *[]time.Duration
		}{
			{exec.Command("/bin/true"), &raw},
			{exec.Command(emptyBin), &empty},
			{withEnv(exec.Command(bin, "run", "-d", "--", "/bin/true"), env), &cli},
		} {
			d, err := timeRun(m.cmd)
			if err != nil {
				return nil, err
			}
			*m.to = append(*m.to, d)
		}
	}
	c, e, r := median(cli), median(empty), median(raw)
	return []row{
		{fmt.Sprintf("fresh CLI start (run -d), p50 of %d", n), c.Round(time.Microsecond).String(), e.Round(time.Microsecond).String() + " (empty Go program)", fmt.Sprintf("%.1f", float64(c)/float64(e)), verdict(float64(c) <= 3*float64(e), "≤ 3× an empty Go program")},
		{"fresh CLI start against fork+exec", c.Round(time.Microsecond).String(), r.Round(time.Microsecond).String() + " (fork+exec /bin/true)", fmt.Sprintf("%.1f", float64(c)/float64(r)), verdict(float64(c) <= 10*float64(r), "≤ 10× (in the VM)")},
	}, nil
}

// cliEnv is the environment that points a CLI at the bench's server as
// admin.
func cliEnv(dev, addr string) []string {
	return []string{
		"JOBWORKER_SERVER=" + addr,
		"JOBWORKER_CA=" + filepath.Join(dev, "ca.crt"),
		"JOBWORKER_CERT=" + filepath.Join(dev, "admin.crt"),
		"JOBWORKER_KEY=" + filepath.Join(dev, "admin.key"),
	}
}

func withEnv(cmd *exec.Cmd, env []string) *exec.Cmd {
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	return cmd
}
