// Command bench measures jobworker end to end: the real binary as a dev
// server, a real mutual-TLS gRPC connection on loopback, and for each figure
// its physical baseline in the same run. It prints a table and exits 0
// whether or not the targets are met. hack/bench runs it as root where
// cgroup v2 is.
//
// Measured so far: start latency (sequential and 16-way concurrent) against
// os/exec starting /bin/true, and output throughput of a job writing 1 GiB
// to one follower against the same bytes through a plain pipe.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jobworker/jobworker/auth"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

func main() {
	bin := flag.String("bin", "jobworker", "the jobworker binary")
	starts := flag.Int("starts", 500, "job starts per start-latency run")
	size := flag.Int64("bytes", 1<<30, "bytes the throughput job writes")
	flag.Parse()
	if err := run(*bin, *starts, *size); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type row struct {
	name, value, baseline, ratio, target string
}

func run(bin string, starts int, size int64) error {
	state, err := os.MkdirTemp("", "jobworker-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	srv, addr, err := startServer(bin, state)
	if err != nil {
		return err
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	dev := filepath.Join(state, "dev")
	cfg, err := auth.ClientConfig(filepath.Join(dev, "ca.crt"), filepath.Join(dev, "admin.crt"), filepath.Join(dev, "admin.key"), "localhost")
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := jobworkerv1.NewJobWorkerServiceClient(conn)
	ctx := context.Background()
	st, err := client.GetServerStatus(ctx, &jobworkerv1.GetServerStatusRequest{})
	if err != nil {
		return err
	}
	mode := "cgroup v2 with " + strings.Join(st.GetCgroupControllers(), ", ")
	if len(st.GetCgroupControllers()) == 0 {
		mode = "cgroup v2 without controllers (jobs placed in cgroups, limits off)"
	}

	var rows []row
	// 1. Start latency.
	base, err := execLatencies(starts, 1)
	if err != nil {
		return err
	}
	seq, err := startLatencies(ctx, client, starts, 1)
	if err != nil {
		return err
	}
	rows = append(rows, latencyRows("start, sequential", seq, base)...)
	base16, err := execLatencies(starts, 16)
	if err != nil {
		return err
	}
	conc, err := startLatencies(ctx, client, starts, 16)
	if err != nil {
		return err
	}
	rows = append(rows, latencyRows("start, 16 concurrent", conc, base16)...)

	// 2. Output throughput: one follower, and the same bytes through a pipe.
	pipe, err := pipeThroughput(size)
	if err != nil {
		return err
	}
	through, err := followThroughput(ctx, client, size)
	if err != nil {
		return err
	}
	rows = append(rows, row{
		name:     fmt.Sprintf("output throughput, %s to 1 follower", human(size)),
		value:    fmt.Sprintf("%.0f MB/s", through/1e6),
		baseline: fmt.Sprintf("%.0f MB/s (pipe)", pipe/1e6),
		ratio:    fmt.Sprintf("%.2f", through/pipe),
		target:   verdict(through >= 0.3*pipe && through >= 500e6, "≥ 0.3× and ≥ 500 MB/s"),
	})

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
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// startServer starts `jobworker serve --dev` on a free port with room for
// many jobs, and returns it once it serves.
func startServer(bin, state string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin, "serve", "--dev", "--state-dir", state, "--listen", "127.0.0.1:0",
		"--default-memory-limit", "64M", "--memory-capacity", "1T", "--max-running", "2000",
		"--output-cap", "0", "--retain", "0", "--retain-count", "0")
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

// measure runs n calls of f from workers goroutines and returns the
// latencies.
func measure(n, workers int, f func() (time.Duration, error)) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				d, err := f()
				if err != nil {
					errs <- err
					return
				}
				lat[i] = d
			}
		}()
	}
	var err error
	for i := 0; i < n && err == nil; i++ {
		select {
		case next <- i:
		case err = <-errs:
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	return lat, err
}

// execLatencies is the baseline: os/exec starting /bin/true, from Start
// until it returns (the child has exec'd).
func execLatencies(n, workers int) ([]time.Duration, error) {
	return measure(n, workers, func() (time.Duration, error) {
		cmd := exec.Command("/bin/true")
		t := time.Now()
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		d := time.Since(t)
		return d, cmd.Wait()
	})
}

// startLatencies times StartJob of /bin/true: the RPC returns once the
// job's command has been exec'd in its cgroup.
func startLatencies(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, n, workers int) ([]time.Duration, error) {
	return measure(n, workers, func() (time.Duration, error) {
		t := time.Now()
		_, err := c.StartJob(ctx, &jobworkerv1.StartJobRequest{Command: "/bin/true"})
		return time.Since(t), err
	})
}

func pct(lat []time.Duration, p float64) time.Duration {
	return lat[min(len(lat)-1, int(float64(len(lat))*p))]
}

func latencyRows(name string, lat, base []time.Duration) []row {
	p50, p99 := pct(lat, 0.50), pct(lat, 0.99)
	b50, b99 := pct(base, 0.50), pct(base, 0.99)
	return []row{
		{name + " p50", p50.Round(time.Microsecond).String(), b50.Round(time.Microsecond).String() + " (os/exec)", fmt.Sprintf("%.1f", float64(p50)/float64(b50)), verdict(float64(p50) <= 5*float64(b50), "≤ 5× baseline")},
		{name + " p99", p99.Round(time.Microsecond).String(), b99.Round(time.Microsecond).String() + " (os/exec)", fmt.Sprintf("%.1f", float64(p99)/float64(b99)), verdict(p99 <= 10*time.Millisecond, "≤ 10 ms")},
	}
}

// pipeThroughput is the baseline: head -c N /dev/zero | cat >/dev/null.
func pipeThroughput(size int64) (float64, error) {
	t := time.Now()
	out, err := exec.Command("sh", "-c", fmt.Sprintf("head -c %d /dev/zero | cat >/dev/null", size)).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pipe baseline: %v: %s", err, out)
	}
	return float64(size) / time.Since(t).Seconds(), nil
}

// followThroughput starts a job writing size bytes and follows it from
// offset 0 to the end, timing StartJob to the last byte.
func followThroughput(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, size int64) (float64, error) {
	t := time.Now()
	r, err := c.StartJob(ctx, &jobworkerv1.StartJobRequest{Command: "head", Args: []string{"-c", fmt.Sprint(size), "/dev/zero"}})
	if err != nil {
		return 0, err
	}
	stream, err := c.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: r.GetJob().GetId(), Follow: true})
	if err != nil {
		return 0, err
	}
	var got int64
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		got += int64(len(chunk.GetData()))
	}
	d := time.Since(t)
	if got != size {
		return 0, fmt.Errorf("the follower received %d bytes, want %d", got, size)
	}
	return float64(size) / d.Seconds(), nil
}
