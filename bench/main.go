// Command bench measures jobworker end to end: the real binary as a dev
// server, a real mutual-TLS gRPC connection on loopback, and for each figure
// its physical baseline in the same run. It prints a table and exits 0
// whether or not the targets are met. hack/bench runs it as root where
// cgroup v2 is.
//
// Measured: start latency (sequential and 16-way concurrent) against
// os/exec starting /bin/true; the start of a job in a network namespace of
// its own (network none) against one on the host's network, alternating;
// the start as a script or a person does it, a
// fresh `jobworker run -d -- /bin/true` process each time, against a fork
// and exec of /bin/true and the exec of an empty static Go program (the
// floor of any Go CLI), alternating; output throughput of a job writing 1 GiB to
// one follower (the bench's client, and a `jobworker logs -f` process of
// the build measured) against the same bytes through a plain pipe; fan-out of a
// 64 MiB job to 1000 followers, against the same job without them and the
// same bytes through tee to as many pipes; a stalled follower, against the
// same job without it; 1000 jobs running at once; and the server's peak
// RSS over the run. The clients dial as the CLI does (client.Dial).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/client"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

func main() {
	bin := flag.String("bin", "jobworker", "the jobworker binary")
	starts := flag.Int("starts", 500, "job starts per start-latency run")
	size := flag.Int64("bytes", 1<<30, "bytes the throughput job writes")
	followers := flag.Int("followers", 1000, "followers in the fan-out run")
	fanoutSize := flag.Int64("fanout-bytes", 64<<20, "bytes the fan-out job writes")
	stalledSize := flag.Int64("stalled-bytes", 256<<20, "bytes the stalled-follower job writes")
	stalledRounds := flag.Int("stalled-rounds", 9, "runs of the stalled-follower job each way")
	cliStartsN := flag.Int("cli-starts", 0, "fresh-CLI starts (0: starts/10+1)")
	vm := flag.Bool("vm", false, "the bench runs in the test VM (hack/bench --vm): the targets of the VM apply")
	jobs := flag.Int("jobs", 1000, "jobs in the scale run")
	emptyBin := flag.String("empty-bin", "", "an empty static Go program, the baseline of the fresh-CLI start (hack/bench builds one); none: that measure is left out")
	debug := flag.String("debug-socket", "", "have the server serve pprof on a unix socket at PATH (serve --debug-socket), to profile it during a run")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the bench (the clients) to PATH")
	onlyFlag := flag.String("only", "", "comma-separated measures to run (start, netns, cli, throughput, fanout, stalled, scale); default all")
	flag.Parse()
	var only []string
	if *onlyFlag != "" {
		only = strings.Split(*onlyFlag, ",")
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *cliStartsN == 0 {
		*cliStartsN = *starts/10 + 1
	}
	sizes := sizes{starts: *starts, cliStarts: *cliStartsN, throughput: *size, fanout: *fanoutSize, followers: *followers, stalled: *stalledSize, stalledRounds: *stalledRounds, jobs: *jobs}
	if err := run(*bin, *emptyBin, *debug, only, sizes, *vm); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// sizes are how much each measure does.
type sizes struct {
	starts, cliStarts int
	throughput        int64
	fanout            int64
	followers         int
	stalled           int64
	stalledRounds     int
	jobs              int
}

type row struct {
	name, value, baseline, ratio, target string
}

func run(bin, emptyBin, debugSocket string, only []string, sz sizes, vm bool) error {
	state, err := os.MkdirTemp("", "jobworker-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	// The gates of gated jobs, readable by the jobs' unprivileged user,
	// and not in /tmp: each job has a /tmp of its own.
	gateRoot, err = os.MkdirTemp("/var/tmp", "jobworker-bench-gates-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(gateRoot)
	if err := os.Chmod(gateRoot, 0o755); err != nil {
		return err
	}
	// The server works under a cgroup parent of the bench's own, removed
	// when it has stopped, so that a run leaves no cgroup behind.
	mount, err := cgroupfs.FindMount()
	if err != nil {
		return err
	}
	parent := "/" + filepath.Base(state)
	srv, addr, err := startServer(bin, state, parent, debugSocket)
	serverPID := 0
	if srv != nil {
		serverPID = srv.Process.Pid
	}
	if err != nil {
		return err
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
		if err := cgroupfs.RemoveTree(filepath.Join(mount, parent)); err != nil {
			fmt.Fprintln(os.Stderr, "bench: remove the bench's cgroups:", err)
		}
	}()
	dev := filepath.Join(state, "dev")
	// Several connections, dialled as the CLI dials: the server allows 128
	// streams on each.
	cfg := client.Config{Server: addr, CA: filepath.Join(dev, "ca.crt"), Cert: filepath.Join(dev, "admin.crt"), Key: filepath.Join(dev, "admin.key")}
	var clients []jobworkerv1.JobWorkerServiceClient
	for range 16 {
		conn, err := client.Dial(cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		clients = append(clients, conn)
	}
	ctx := context.Background()
	st, err := clients[0].GetServerStatus(ctx, &jobworkerv1.GetServerStatusRequest{})
	if err != nil {
		return err
	}
	mode := "cgroup v2 with " + strings.Join(st.GetCgroupControllers(), ", ")
	if len(st.GetCgroupControllers()) == 0 {
		mode = "cgroup v2 without controllers (jobs placed in cgroups, limits off)"
	}

	measures := []struct {
		name string
		run  func() ([]row, error)
	}{
		// 1. Start latency, sequential and 16 at a time, against os/exec.
		{"start", func() ([]row, error) {
			starts, client := sz.starts, clients[0]
			base, err := execLatencies(starts, 1)
			if err != nil {
				return nil, err
			}
			seq, err := startLatencies(ctx, client, starts, 1)
			if err != nil {
				return nil, err
			}
			base16, err := execLatencies(starts, 16)
			if err != nil {
				return nil, err
			}
			conc, err := startLatencies(ctx, client, starts, 16)
			if err != nil {
				return nil, err
			}
			return append(latencyRows("start, sequential", seq, base), latencyRows("start, 16 concurrent", conc, base16)...), nil
		}},
		// 1a. The start in a network namespace of its own (network none)
		// against one on the host's network, alternating.
		{"netns", func() ([]row, error) {
			host, none, err := networkLatencies(ctx, clients[0], sz.starts)
			if err != nil {
				return nil, err
			}
			return networkRows(host, none), nil
		}},
		// 1b. The fresh-CLI start, against a fork+exec and an empty Go
		// program's exec, alternating.
		{"cli", func() ([]row, error) {
			if emptyBin == "" {
				return nil, nil
			}
			return cliStarts(bin, emptyBin, cliEnv(dev, addr), sz.cliStarts)
		}},
		// 2. Output throughput: one follower, and the same bytes through a pipe.
		{"throughput", func() ([]row, error) {
			size := sz.throughput
			pipe, err := pipeThroughput(size)
			if err != nil {
				return nil, err
			}
			through, err := followThroughput(ctx, clients[0], size)
			if err != nil {
				return nil, err
			}
			cli, err := cliThroughput(ctx, clients[0], bin, cliEnv(dev, addr), size)
			if err != nil {
				return nil, err
			}
			return []row{{
				name:     fmt.Sprintf("output throughput, %s to 1 follower", human(size)),
				value:    fmt.Sprintf("%.0f MB/s", through/1e6),
				baseline: fmt.Sprintf("%.0f MB/s (pipe)", pipe/1e6),
				ratio:    fmt.Sprintf("%.2f", through/pipe),
				target:   throughputVerdict(through/pipe, vm),
			}, {
				name:     fmt.Sprintf("output throughput, %s to `jobworker logs -f`", human(size)),
				value:    fmt.Sprintf("%.0f MB/s", cli/1e6),
				baseline: fmt.Sprintf("%.0f MB/s (pipe)", pipe/1e6),
				ratio:    fmt.Sprintf("%.2f", cli/pipe),
				target:   throughputVerdict(cli/pipe, vm),
			}}, nil
		}},
		// 3. Fan-out: a job with many followers against none, and the
		// same bytes fanned out through pipes.
		{"fanout", func() ([]row, error) { return fanOut(ctx, clients, serverPID, sz.fanout, sz.followers, vm) }},
		// 4. A stalled follower next to a reading one, against the reader alone.
		{"stalled", func() ([]row, error) { return stalled(ctx, clients, serverPID, sz.stalled, sz.stalledRounds) }},
		// 5. Many jobs at once.
		{"scale", func() ([]row, error) { return scale(ctx, clients, serverPID, sz.jobs) }},
	}
	var rows []row
	var failed error
	for _, m := range measures {
		if len(only) > 0 && !slices.Contains(only, m.name) {
			continue
		}
		r, err := m.run()
		if err != nil {
			// The table of the measures done so far is printed all the
			// same: a run that fails late keeps what it measured.
			failed = fmt.Errorf("%s: %w", m.name, err)
			break
		}
		rows = append(rows, r...)
	}
	peak := max(peakSeen, rss(serverPID, "VmHWM"))
	target := ""
	if vm {
		target = verdict(peak <= 48<<20, "≤ 48 MiB in the VM")
	}
	rows = append(rows, row{"server peak RSS over the run", human(int64(peak)), "", "", target})

	fmt.Printf("jobworker bench, %s, mode: %s\n\n", time.Now().UTC().Format(time.RFC3339), mode)
	fmt.Printf("| %s | %s | %s | %s | %s |\n|---|---|---|---|---|\n", "measure", "jobworker", "baseline", "ratio", "target")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.name, r.value, r.baseline, r.ratio, r.target)
	}
	return failed
}

// throughputVerdict is the target of one follower's throughput against a
// pipe: 0.45× natively, 0.35× under the VM's emulation.
func throughputVerdict(ratio float64, vm bool) string {
	if vm {
		return verdict(ratio >= 0.35, "≥ 0.35× in the VM")
	}
	return verdict(ratio >= 0.45, "≥ 0.45×")
}

func verdict(ok bool, target string) string {
	if ok {
		return "met (" + target + ")"
	}
	return "MISSED (" + target + ")"
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 || n <= -1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// gateRoot holds the gate files of gatedJob, numbered by gates; run
// removes it at the end.
var (
	gateRoot string
	gates    int
)
