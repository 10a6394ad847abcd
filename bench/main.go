// Command bench measures jobworker end to end: the real binary as a dev
// server, a real mutual-TLS gRPC connection on loopback, and for each figure
// its physical baseline in the same run. It prints a table and exits 0
// whether or not the targets are met. hack/bench runs it as root where
// cgroup v2 is.
//
// Measured: start latency (sequential and 16-way concurrent) against
// os/exec starting /bin/true; output throughput of a job writing 1 GiB to
// one follower against the same bytes through a plain pipe; fan-out of a
// 64 MiB job to 1000 followers and a stalled follower, each against the
// same job without them; and 1000 jobs running at once.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jobworker/jobworker/auth"
	"github.com/jobworker/jobworker/cgroupfs"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

func main() {
	bin := flag.String("bin", "jobworker", "the jobworker binary")
	starts := flag.Int("starts", 500, "job starts per start-latency run")
	size := flag.Int64("bytes", 1<<30, "bytes the throughput job writes")
	followers := flag.Int("followers", 1000, "followers in the fan-out run")
	jobs := flag.Int("jobs", 1000, "jobs in the scale run")
	debug := flag.String("debug-socket", "", "have the server serve pprof on a unix socket at PATH (serve --debug-socket), to profile it during a run")
	onlyFlag := flag.String("only", "", "comma-separated measures to run (start, throughput, fanout, stalled, scale); default all")
	flag.Parse()
	var only []string
	if *onlyFlag != "" {
		only = strings.Split(*onlyFlag, ",")
	}

	if err := run(*bin, *debug, only, *starts, *size, *followers, *jobs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type row struct {
	name, value, baseline, ratio, target string
}

func run(bin, debugSocket string, only []string, starts int, size int64, followers, jobs int) error {
	state, err := os.MkdirTemp("", "jobworker-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	// The gates of gated jobs, readable by the jobs' unprivileged user.
	gateRoot, err = os.MkdirTemp("", "jobworker-bench-gates-")
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
	cfg, err := auth.ClientConfig(filepath.Join(dev, "ca.crt"), filepath.Join(dev, "admin.crt"), filepath.Join(dev, "admin.key"), "localhost")
	if err != nil {
		return err
	}
	// Several connections: the server allows 128 streams on each.
	var clients []jobworkerv1.JobWorkerServiceClient
	for range 16 {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer conn.Close()
		clients = append(clients, jobworkerv1.NewJobWorkerServiceClient(conn))
	}
	client := clients[0]
	ctx := context.Background()
	st, err := client.GetServerStatus(ctx, &jobworkerv1.GetServerStatusRequest{})
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
		// 2. Output throughput: one follower, and the same bytes through a pipe.
		{"throughput", func() ([]row, error) {
			pipe, err := pipeThroughput(size)
			if err != nil {
				return nil, err
			}
			through, err := followThroughput(ctx, client, size)
			if err != nil {
				return nil, err
			}
			return []row{{
				name:     fmt.Sprintf("output throughput, %s to 1 follower", human(size)),
				value:    fmt.Sprintf("%.0f MB/s", through/1e6),
				baseline: fmt.Sprintf("%.0f MB/s (pipe)", pipe/1e6),
				ratio:    fmt.Sprintf("%.2f", through/pipe),
				target:   verdict(through >= 0.3*pipe && through >= 500e6, "≥ 0.3× and ≥ 500 MB/s"),
			}}, nil
		}},
		// 3. Fan-out: a 64 MiB job with many followers against none.
		{"fanout", func() ([]row, error) { return fanOut(ctx, clients, serverPID, 64<<20, followers) }},
		// 4. A stalled follower next to a reading one, against the reader alone.
		{"stalled", func() ([]row, error) { return stalled(ctx, clients, serverPID, 256<<20) }},
		// 5. Many jobs at once.
		{"scale", func() ([]row, error) { return scale(ctx, clients, serverPID, jobs) }},
	}
	var rows []row
	for _, m := range measures {
		if len(only) > 0 && !slices.Contains(only, m.name) {
			continue
		}
		r, err := m.run()
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		rows = append(rows, r...)
	}

	fmt.Printf("jobworker bench, %s, mode: %s\n\n", time.Now().UTC().Format(time.RFC3339), mode)
	fmt.Printf("| %s | %s | %s | %s | %s |\n|---|---|---|---|---|\n", "measure", "jobworker", "baseline", "ratio", "target")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.name, r.value, r.baseline, r.ratio, r.target)
	}
	return nil
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
