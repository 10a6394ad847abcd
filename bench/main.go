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
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	debug := flag.String("debug-listen", "", "have the server serve pprof on ADDR (serve --debug-listen), to profile it during a run")
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

func run(bin, debugListen string, only []string, starts int, size int64, followers, jobs int) error {
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
	srv, addr, err := startServer(bin, state, parent, debugListen)
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

// startServer starts `jobworker serve --dev` on a free port with room for
// many jobs under the cgroup parent given, and returns it once it serves.
// A debugListen address is passed to the server as --debug-listen.
func startServer(bin, state, cgroupParent, debugListen string) (*exec.Cmd, string, error) {
	args := []string{"serve", "--dev", "--state-dir", state, "--listen", "127.0.0.1:0", "--cgroup-parent", cgroupParent,
		"--default-memory-limit", "64M", "--memory-capacity", "1T", "--max-running", "2000",
		"--output-cap", "0", "--retain", "0", "--retain-count", "0"}
	if debugListen != "" {
		args = append(args, "--debug-listen", debugListen)
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
	slices.Sort(lat)
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

// pct is the p-quantile of lat, which is sorted.
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
	got, end, err := readAll(ctx, c, r.GetJob().GetId())
	if err != nil {
		return 0, err
	}
	d := end.Sub(t)
	if got != size {
		return 0, fmt.Errorf("the follower received %d bytes, want %d", got, size)
	}
	return float64(size) / d.Seconds(), nil
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

// resetPeak resets the server's VmHWM (proc(5), clear_refs 5).
func resetPeak(pid int) {
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// gateRoot holds the gate files of gatedJob, numbered by gates; run
// removes it at the end.
var (
	gateRoot string
	gates    int
)

// gatedJob starts a job that waits for a gate file before it writes size
// bytes, so that followers can connect first. It returns the job ID and a
// function that opens the gate and returns when it did.
func gatedJob(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, size int64) (string, func() time.Time, error) {
	gates++
	gate := filepath.Join(gateRoot, fmt.Sprint(gates))
	r, err := c.StartJob(ctx, &jobworkerv1.StartJobRequest{Command: "sh", Args: []string{"-c",
		fmt.Sprintf("while [ ! -e %s ]; do sleep 0.005; done; exec head -c %d /dev/zero", gate, size)}})
	if err != nil {
		return "", nil, err
	}
	return r.GetJob().GetId(), func() time.Time {
		t := time.Now()
		os.WriteFile(gate, nil, 0o644)
		return t
	}, nil
}

// jobWall waits for the job to end and returns the time from open to its
// end as the server recorded it.
func jobWall(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string, open time.Time) (time.Duration, error) {
	st, err := c.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: id, Watch: true})
	if err != nil {
		return 0, err
	}
	var last *jobworkerv1.Job
	for {
		r, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		last = r.GetJob()
	}
	if last.GetState() != jobworkerv1.JobState_JOB_STATE_COMPLETED {
		return 0, fmt.Errorf("job %s ended %v", id, last.GetState())
	}
	return last.GetEndTime().AsTime().Sub(open), nil
}

// readAll follows a job's output and returns the bytes received and when
// the last one came.
func readAll(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, id string) (int64, time.Time, error) {
	stream, err := c.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: id, Follow: true})
	if err != nil {
		return 0, time.Time{}, err
	}
	var n int64
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return n, time.Now(), nil
		}
		if err != nil {
			return n, time.Time{}, err
		}
		n += int64(len(r.GetData()))
	}
}

func fanOut(ctx context.Context, clients []jobworkerv1.JobWorkerServiceClient, pid int, size int64, followers int) ([]row, error) {
	c := clients[0]
	// Alone.
	id, open, err := gatedJob(ctx, c, size)
	if err != nil {
		return nil, err
	}
	alone, err := jobWall(ctx, c, id, open())
	if err != nil {
		return nil, err
	}
	// With followers, all connected before the job writes.
	resetPeak(pid)
	id, open, err = gatedJob(ctx, c, size)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	complete, errs := 0, 0
	ready := make(chan struct{}, followers)
	for i := range followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[i%len(clients)]
			stream, err := cl.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: id, Follow: true})
			ready <- struct{}{}
			var n int64
			for err == nil {
				var r *jobworkerv1.GetJobOutputResponse
				r, err = stream.Recv()
				if r != nil {
					n += int64(len(r.GetData()))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err == io.EOF && n == size {
				complete++
			} else {
				errs++
			}
		}()
	}
	for range followers {
		<-ready
	}
	t := open()
	with, err := jobWall(ctx, c, id, t)
	if err != nil {
		return nil, err
	}
	wg.Wait()
	all := time.Since(t)
	peak := rss(pid, "VmHWM")
	ratio := float64(with) / float64(alone)
	return []row{
		{fmt.Sprintf("fan-out: %s job, %d followers, job wall time", human(size), followers), with.Round(time.Millisecond).String(), alone.Round(time.Millisecond).String() + " (no followers)", fmt.Sprintf("%.2f", ratio), verdict(ratio <= 1.5 && complete == followers, "≤ 1.5×, all complete")},
		{"fan-out: followers with every byte", fmt.Sprintf("%d of %d (%d failed), last done after %v", complete, followers, errs, all.Round(time.Millisecond)), "", "", ""},
		{"fan-out: server peak RSS", human(int64(peak)), "", "", ""},
	}, nil
}

func stalled(ctx context.Context, clients []jobworkerv1.JobWorkerServiceClient, pid int, size int64) ([]row, error) {
	c := clients[0]
	type sample struct {
		wall, read     time.Duration
		server, client time.Duration // CPU time used during the run
		growth         int64
	}
	run := func(stall bool) (sample, error) {
		id, open, err := gatedJob(ctx, c, size)
		if err != nil {
			return sample{}, err
		}
		before := rss(pid, "VmRSS")
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if stall {
			// Connected, never reads.
			if _, err := clients[1].GetJobOutput(sctx, &jobworkerv1.GetJobOutputRequest{Id: id, Follow: true}); err != nil {
				return sample{}, err
			}
		}
		type res struct {
			n   int64
			end time.Time
			err error
		}
		done := make(chan res, 1)
		server0, client0 := cpuTime(pid), ownCPUTime()
		go func() {
			n, end, err := readAll(ctx, clients[2], id)
			done <- res{n, end, err}
		}()
		t := open()
		wall, err := jobWall(ctx, c, id, t)
		if err != nil {
			return sample{}, err
		}
		r := <-done
		if r.err != nil || r.n != size {
			return sample{}, fmt.Errorf("reading follower: %d bytes, %v", r.n, r.err)
		}
		return sample{
			wall:   wall,
			read:   r.end.Sub(t),
			server: cpuTime(pid) - server0,
			client: ownCPUTime() - client0,
			growth: int64(rss(pid, "VmRSS")) - int64(before),
		}, nil
	}
	// One run of each is at the mercy of the scheduler on a small machine:
	// alternate them and compare medians. The CPU time the server and the
	// bench's clients use per run says whether the stalled follower costs
	// work, whatever the wall times do.
	const rounds = 9
	var none, with []sample
	var growth int64
	for range rounds {
		s, err := run(false)
		if err != nil {
			return nil, err
		}
		none = append(none, s)
		s, err = run(true)
		if err != nil {
			return nil, err
		}
		with = append(with, s)
		growth = max(growth, s.growth)
	}
	pick := func(ss []sample, f func(sample) time.Duration) (med, lo, hi time.Duration) {
		var d []time.Duration
		for _, s := range ss {
			d = append(d, f(s))
		}
		med = median(d)
		return med, d[0], d[len(d)-1]
	}
	span := func(med, lo, hi time.Duration) string {
		r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
		return fmt.Sprintf("%s (%s–%s)", r(med), r(lo), r(hi))
	}
	wall1, wlo1, whi1 := pick(with, func(s sample) time.Duration { return s.wall })
	wall0, wlo0, whi0 := pick(none, func(s sample) time.Duration { return s.wall })
	read1, _, _ := pick(with, func(s sample) time.Duration { return s.read })
	read0, _, _ := pick(none, func(s sample) time.Duration { return s.read })
	srv1, slo1, shi1 := pick(with, func(s sample) time.Duration { return s.server })
	srv0, slo0, shi0 := pick(none, func(s sample) time.Duration { return s.server })
	cl1, clo1, chi1 := pick(with, func(s sample) time.Duration { return s.client })
	cl0, clo0, chi0 := pick(none, func(s sample) time.Duration { return s.client })
	ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.2f", float64(a)/float64(b)) }
	return []row{
		{fmt.Sprintf("stalled follower: %s job wall time, median (range) of %d", human(size), rounds), span(wall1, wlo1, whi1), span(wall0, wlo0, whi0) + " none stalled", ratio(wall1, wall0), verdict(float64(wall1) <= 1.1*float64(wall0), "≤ 1.1×")},
		{"stalled follower: other follower's throughput", fmt.Sprintf("%.0f MB/s", float64(size)/read1.Seconds()/1e6), fmt.Sprintf("%.0f MB/s (none stalled)", float64(size)/read0.Seconds()/1e6), ratio(read0, read1), ""},
		{"stalled follower: server CPU per run, median (range)", span(srv1, slo1, shi1), span(srv0, slo0, shi0) + " none stalled", ratio(srv1, srv0), ""},
		{"stalled follower: bench clients' CPU per run, median (range)", span(cl1, clo1, chi1), span(cl0, clo0, chi0) + " none stalled", ratio(cl1, cl0), ""},
		{"stalled follower: server RSS growth", human(growth), "", "", verdict(growth <= 64<<20, "≤ 64 MiB")},
	}, nil
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

func scale(ctx context.Context, clients []jobworkerv1.JobWorkerServiceClient, pid int, n int) ([]row, error) {
	idle := rss(pid, "VmRSS")
	ids := make([]string, n)
	t := time.Now()
	var mu sync.Mutex
	next := 0
	_, err := measure(n, 16, func() (time.Duration, error) {
		mu.Lock()
		i := next
		next++
		mu.Unlock()
		r, err := clients[i%len(clients)].StartJob(ctx, &jobworkerv1.StartJobRequest{Command: "sleep", Args: []string{"1000"}})
		if err == nil {
			ids[i] = r.GetJob().GetId()
		}
		return 0, err
	})
	if err != nil {
		return nil, fmt.Errorf("start %d jobs: %w", n, err)
	}
	startAll := time.Since(t)
	running := rss(pid, "VmRSS")
	list, err := measure(20, 1, func() (time.Duration, error) {
		t := time.Now()
		r, err := clients[0].ListJobs(ctx, &jobworkerv1.ListJobsRequest{States: []jobworkerv1.JobState{jobworkerv1.JobState_JOB_STATE_RUNNING}})
		if err == nil && len(r.GetJobs()) < n {
			err = fmt.Errorf("ListJobs shows %d running, want %d", len(r.GetJobs()), n)
		}
		return time.Since(t), err
	})
	if err != nil {
		return nil, err
	}
	t = time.Now()
	next = 0
	_, err = measure(n, 16, func() (time.Duration, error) {
		mu.Lock()
		i := next
		next++
		mu.Unlock()
		_, err := clients[i%len(clients)].StopJob(ctx, &jobworkerv1.StopJobRequest{Id: ids[i]})
		return 0, err
	})
	if err != nil {
		return nil, fmt.Errorf("stop %d jobs: %w", n, err)
	}
	stopAll := time.Since(t)
	perJob := (int64(running) - int64(idle)) / int64(n)
	return []row{
		{fmt.Sprintf("scale: start %d sleep jobs (16 at a time)", n), startAll.Round(time.Millisecond).String(), "", "", ""},
		{fmt.Sprintf("scale: ListJobs of %d running, p50", n), pct(list, 0.5).Round(time.Microsecond).String(), "", "", ""},
		{fmt.Sprintf("scale: stop all %d", n), stopAll.Round(time.Millisecond).String(), "", "", ""},
		{"scale: server RSS per running job", human(perJob), "", "", verdict(perJob <= 100<<10, "≤ 100 KiB")},
	}, nil
}

// median returns the middle of d (which it sorts).
func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return pct(d, 0.5)
}
