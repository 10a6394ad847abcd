//go:build integration

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobworker/jobworker/internal/testchild"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The TestOnHost tests need the speed of real hardware (gigabytes of output,
// a thousand TLS clients, a minute of load), so hack/test runs them on the
// build host itself rather than in the emulated test VM. They need root and
// a cgroup v2 mount, but no controllers: the server runs as it does on a
// host whose cgroup v2 has none (jobs get their cgroups, limits are off).

// startHostServer starts a dev server under a cgroup parent of its own (a
// testchild.TempCgroup, given relative to the mount), killed and removed
// again when the test ends, after the server has stopped.
func startHostServer(t *testing.T, extra ...string) *devServer {
	t.Helper()
	mount, dir := testchild.TempCgroup(t)
	parent := strings.TrimPrefix(dir, mount)
	sock := filepath.Join(t.TempDir(), "debug.sock")
	return startDevServer(t, t.TempDir(), append([]string{"--cgroup-parent", parent, "--debug-socket", sock}, extra...)...)
}

// debugGet fetches a page of the server's pprof endpoint.
func (s *devServer) debugGet(path string) string {
	s.t.Helper()
	sock := s.debugSocket()
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial}, Timeout: time.Minute}
	resp, err := c.Get("http://jobworker" + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

// goroutines is the server's goroutine count (the profile's own request
// adds the same few each time).
func (s *devServer) goroutines() int {
	s.t.Helper()
	first, _, _ := strings.Cut(s.debugGet("/debug/pprof/goroutine?debug=1"), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if err != nil {
		s.t.Fatalf("goroutine profile header %q", first)
	}
	return n
}

// heapInuse is the server's HeapInuse after a garbage collection.
func (s *devServer) heapInuse() int64 {
	s.t.Helper()
	sc := bufio.NewScanner(strings.NewReader(s.debugGet("/debug/pprof/heap?debug=1&gc=1")))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapInuse = "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				s.t.Fatal(err)
			}
			return n
		}
	}
	s.t.Fatal("no HeapInuse in the heap profile")
	return 0
}

// TestOnHost10GiBJob: a job writes 10 GiB with a 256 MiB output cap. The
// server's peak RSS stays under 200 MiB; the disk holds at most the cap; a
// follower receives every byte or is told exactly how many it missed; a
// reader from the start afterwards is told how many bytes were dropped.
func TestOnHost10GiBJob(t *testing.T) {
	const total, outputCap = 10 << 30, 256 << 20
	s := startHostServer(t, "--output-cap", "256M")
	id := s.detach("user", "head", "-c", strconv.Itoa(total), "/dev/zero")

	// A follower that reads as fast as it can, checking the offsets.
	st, err := s.client("reader").GetJobOutput(context.Background(), &jobworkerv1.GetJobOutputRequest{Id: id, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	var got, dropped int64
	for {
		r, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		dropped += r.GetDropped()
		if r.GetOffset() != got+dropped {
			t.Fatalf("chunk at offset %d after %d bytes received and %d reported dropped: a silent gap", r.GetOffset(), got, dropped)
		}
		for _, c := range r.GetData() {
			if c != 0 {
				t.Fatalf("a non-zero byte near offset %d", r.GetOffset())
			}
		}
		got += int64(len(r.GetData()))
	}
	if got+dropped != total {
		t.Errorf("follower: %d bytes received + %d reported dropped = %d, want %d", got, dropped, got+dropped, total)
	}
	t.Logf("follower: %d bytes received, %d reported dropped", got, dropped)

	j := s.wait(id)
	if j.GetState() != jobworkerv1.JobState_JOB_STATE_COMPLETED || j.GetOutputSize() != total {
		t.Errorf("job: %v, output %d bytes, want completed with %d", j.GetState(), j.GetOutputSize(), total)
	}
	hwm := procStatus(t, s.pid(), "VmHWM")
	t.Logf("server peak RSS: %d KiB", hwm)
	if hwm > 200<<10 {
		t.Errorf("server peak RSS %d KiB, want under 200 MiB", hwm)
	}
	var disk int64
	err = filepath.WalkDir(filepath.Join(s.state, "jobs", id), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		disk += fi.Size()
		return err
	})
	if err != nil {
		t.Fatalf("measuring the job's directory: %v", err)
	}
	t.Logf("on disk: %d bytes; kept from offset %d", disk, j.GetOutputStart())
	if disk < outputCap/2 {
		t.Errorf("%d bytes on disk for a job that wrote %d with a cap of %d: the output is not where it was looked for", disk, total, outputCap)
	}
	if disk > outputCap+4096 || total-j.GetOutputStart() > outputCap {
		t.Errorf("%d bytes on disk, %d bytes kept: over the cap of %d", disk, total-j.GetOutputStart(), outputCap)
	}
	r := s.cli("reader", "logs", "--offset", "0", id)
	wantNote := fmt.Sprintf("jobworker: %d bytes of output before offset %d were dropped", j.GetOutputStart(), j.GetOutputStart())
	if int64(len(r.out)) != total-j.GetOutputStart() || !strings.Contains(r.err, wantNote) {
		t.Errorf("logs from 0 after the end: %d bytes, stderr %q; want %d bytes and %q", len(r.out), r.err, total-j.GetOutputStart(), wantNote)
	}
}

// TestOnHostDisconnectingClients: 1000 clients follow a job's output and go
// away mid-stream, half of them cancelling their call and all of them then
// cut off at the TCP level while the server is blocked sending to them.
// The server's goroutines and file descriptors return to their baseline.
func TestOnHostDisconnectingClients(t *testing.T) {
	const clients = 1000
	s := startHostServer(t)
	id := s.detach("user", "sh", "-c", "head -c 8388608 /dev/zero; echo ready; exec sleep 1000")
	// Wait for the output through the cached API connection, whose calls
	// have ended: a CLI follower killed here could still count in the
	// baseline.
	eventually(t, time.Minute, "the job's 8 MiB written", func() bool {
		return s.job(id).GetOutputSize() == 8<<20+int64(len("ready\n"))
	})

	cycle := func(n int) {
		p := newProxy(t, s.addr)
		cfg := s.tlsConfig("user")
		type client struct {
			conn   *grpc.ClientConn
			cancel context.CancelFunc
		}
		cs := make([]client, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		var failed atomic.Int64
		for i := range cs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				conn, err := grpc.NewClient(p.lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
				if err != nil {
					failed.Add(1)
					return
				}
				ctx, cancel := context.WithCancel(context.Background())
				cs[i] = client{conn, cancel}
				st, err := jobworkerv1.NewJobWorkerServiceClient(conn).GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: id, Follow: true})
				if err == nil {
					_, err = st.Recv()
				}
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d of %d clients could not start following", failed.Load(), n)
		}
		if n == clients {
			t.Logf("with %d clients connected, each blocked mid-stream: %d goroutines, %d fds", n, s.goroutines(), openFDs(t, s.pid()))
		}
		for i, c := range cs {
			if i%2 == 0 {
				c.cancel()
			}
		}
		if p.cut() < n {
			t.Fatalf("cut fewer connections than %d clients", n)
		}
		for _, c := range cs {
			c.cancel()
			c.conn.Close()
		}
	}

	// The baseline; one client first, which must already leave nothing.
	g0, f0 := s.goroutines(), openFDs(t, s.pid())
	t.Logf("baseline: %d goroutines, %d fds", g0, f0)
	cycle(1)
	eventually(t, time.Minute, fmt.Sprintf("goroutines and fds back to the baseline of %d and %d after one client", g0, f0), func() bool {
		return s.goroutines() <= g0 && openFDs(t, s.pid()) <= f0
	})
	cycle(clients)
	var g, f int
	eventually(t, time.Minute, fmt.Sprintf("goroutines and fds back to the baseline of %d and %d", g0, f0), func() bool {
		g, f = s.goroutines(), openFDs(t, s.pid())
		return g <= g0 && f <= f0
	})
	t.Logf("after %d clients went away: %d goroutines, %d fds", clients, g, f)
	if r := s.cli("user", "status", id); r.code != 0 || !strings.Contains(r.out, "running") {
		t.Errorf("the job after the clients left: %q %q", r.out, r.err)
	}
}

// TestOnHostLoad: 50 clients for 60 s start jobs, ask their status, follow
// their output to the end, and stop long ones. No call fails unexpectedly;
// latencies are reported; once the jobs are gone the server's heap is back
// at its baseline.
func TestOnHostLoad(t *testing.T) {
	const clients, run = 50, 60 * time.Second
	// Retention by count drops the oldest finished jobs: a bound that the
	// other clients' jobs could reach between one client's StartJob and its
	// GetJobOutput (a few hundred finish in a slow second) would take that
	// client's job away, as the operator asked. 1000 leaves room for seconds.
	const retain = 1000
	s := startHostServer(t, "--retain-count", strconv.Itoa(retain))
	// The baseline: a server that has run and retained as many jobs as it
	// will after the load, and served each call once (so one-time set-up is
	// not counted as growth).
	fill := func(c jobworkerv1.JobWorkerServiceClient, n int) error {
		ctx := context.Background()
		r, err := c.StartJob(ctx, &jobworkerv1.StartJobRequest{Command: "echo", Args: []string{strconv.Itoa(n)}})
		if err != nil {
			return err
		}
		if _, err := streamOutput(ctx, c, r.GetJob().GetId(), 0, true, io.Discard, io.Discard, false); err != nil {
			return fmt.Errorf("follow job %d: %w", n, err)
		}
		return nil
	}
	var filled sync.WaitGroup
	fillErrs := make(chan error, 16)
	for w := range 16 {
		filled.Go(func() {
			f := s.flags(s.addr, "user")
			c, err := f.connect()
			if err != nil {
				fillErrs <- err
				return
			}
			defer c.Close()
			for n := w; n < retain; n += 16 {
				if err := fill(c, n); err != nil {
					fillErrs <- err
					return
				}
			}
		})
	}
	filled.Wait()
	close(fillErrs)
	for err := range fillErrs {
		t.Fatalf("fill the retained jobs: %v", err)
	}
	id := s.detach("user", "echo", "last")
	s.wait(id)
	s.cli("user", "logs", id)
	base := s.heapInuse()
	baseRSS := procStatus(t, s.pid(), "VmRSS")

	type sample struct {
		op string
		d  time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	var errs []string
	var jobs atomic.Int64
	record := func(op string, start time.Time, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", op, err))
			return false
		}
		samples = append(samples, sample{op, time.Since(start)})
		return true
	}
	end := time.Now().Add(run)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := s.flags(s.addr, "user")
			c, err := f.connect()
			if err != nil {
				record("connect", time.Now(), err)
				return
			}
			defer c.Close()
			ctx := context.Background()
			for n := 0; time.Now().Before(end); n++ {
				req := &jobworkerv1.StartJobRequest{Command: "sh", Args: []string{"-c", fmt.Sprintf("echo client %d job %d", i, n)}}
				long := n%5 == 4
				if long {
					req = &jobworkerv1.StartJobRequest{Command: "sleep", Args: []string{"1000"}}
				}
				t0 := time.Now()
				r, err := c.StartJob(ctx, req)
				if !record("StartJob", t0, err) {
					continue
				}
				jobs.Add(1)
				id := r.GetJob().GetId()
				t0 = time.Now()
				st, err := c.GetJobStatus(ctx, &jobworkerv1.GetJobStatusRequest{Id: id})
				if err == nil {
					_, err = st.Recv()
				}
				record("GetJobStatus", t0, err)
				if long {
					t0 = time.Now()
					_, err := c.StopJob(ctx, &jobworkerv1.StopJobRequest{Id: id, Grace: durationpb.New(0)})
					record("StopJob", t0, err)
				}
				t0 = time.Now()
				out, err := c.GetJobOutput(ctx, &jobworkerv1.GetJobOutputRequest{Id: id, Follow: true})
				var got []byte
				for err == nil {
					var m *jobworkerv1.GetJobOutputResponse
					if m, err = out.Recv(); err == nil {
						got = append(got, m.GetData()...)
					}
				}
				if err == io.EOF {
					err = nil
					if want := fmt.Sprintf("client %d job %d\n", i, n); !long && string(got) != want {
						err = fmt.Errorf("job %s: output %q, want %q", id, got, want)
					}
				}
				record("GetJobOutput (follow to the end)", t0, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("%d calls failed, the first: %s", len(errs), errs[0])
	}
	ops := map[string][]time.Duration{}
	for _, sm := range samples {
		ops[sm.op] = append(ops[sm.op], sm.d)
	}
	t.Logf("%d clients, %v: %d jobs, %d calls, %d failed", clients, run, jobs.Load(), len(samples), len(errs))
	for _, op := range []string{"StartJob", "GetJobStatus", "GetJobOutput (follow to the end)", "StopJob"} {
		d := ops[op]
		slices.Sort(d)
		if len(d) == 0 {
			t.Errorf("no successful %s", op)
			continue
		}
		t.Logf("%-34s n=%-6d p50 %-10v p99 %v", op, len(d), d[len(d)/2].Round(10*time.Microsecond), d[len(d)*99/100].Round(10*time.Microsecond))
	}

	// Afterwards, the clients gone: no job running, and the heap back
	// where it started.
	if r := s.cli("admin", "list", "--state", "running"); r.code != 0 || !strings.HasPrefix(r.out, "ID") || strings.Count(r.out, "\n") > 1 {
		t.Errorf("list --state running after the load: exit %d, stderr %q, stdout (want the header only):\n%s", r.code, r.err, r.out)
	}
	var after int64
	if !settles(time.Minute, func() bool { after = s.heapInuse(); return after <= base+2<<20 }) {
		prof := filepath.Join(os.TempDir(), "jobworker-load-heap.pprof")
		os.WriteFile(prof, []byte(s.debugGet("/debug/pprof/heap?gc=1")), 0o644)
		t.Errorf("heap in use %d KiB a minute after the load, baseline %d KiB; profile: %s", after>>10, base>>10, prof)
	}
	t.Logf("heap in use: %d KiB before, %d KiB after; RSS %d KiB before, %d KiB after", base>>10, after>>10, baseRSS, procStatus(t, s.pid(), "VmRSS"))
}

// TestOnHostTLSScan: sslscan, a scanner nobody here wrote, finds only TLS
// 1.3 on the running server; a TLS 1.2 client and a client without a
// certificate are refused by it. (auth's TestHandshake covers every
// kind of bad certificate against the same TLS configuration.)
func TestOnHostTLSScan(t *testing.T) {
	sslscan := os.Getenv("JOBWORKER_SSLSCAN")
	if sslscan == "" {
		t.Fatal("JOBWORKER_SSLSCAN must name sslscan (hack/test installs it)")
	}
	s := startHostServer(t)
	out, err := exec.Command(sslscan, "--no-colour", s.addr).CombinedOutput()
	if err != nil {
		t.Fatalf("sslscan: %v\n%s", err, out)
	}
	protocols := map[string]string{}
	var summary []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 2 && (strings.HasPrefix(f[0], "SSLv") || strings.HasPrefix(f[0], "TLSv")) {
			protocols[f[0]] = f[1]
			summary = append(summary, strings.TrimSpace(line))
		}
		if len(f) > 1 && (f[0] == "Preferred" || f[0] == "Accepted") {
			summary = append(summary, strings.TrimSpace(line))
		}
	}
	t.Logf("sslscan %s:\n%s", s.addr, strings.Join(summary, "\n"))
	for _, p := range []string{"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"} {
		want := "disabled"
		if p == "TLSv1.3" {
			want = "enabled"
		}
		if protocols[p] != want {
			t.Errorf("sslscan: %s %q, want %s", p, protocols[p], want)
		}
	}

	for _, tt := range []struct {
		name  string
		edit  func(*tls.Config)
		alert string
	}{
		{"TLS 1.2 client", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 }, "protocol version not supported"},
		{"no client certificate", func(c *tls.Config) { c.Certificates = nil }, "certificate required"},
	} {
		cfg := s.tlsConfig("admin")
		cfg.NextProtos = []string{"h2"}
		tt.edit(cfg)
		conn, err := tls.Dial("tcp", s.addr, cfg)
		if err == nil {
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tt.alert) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.alert)
		}
	}
}

// TestOnHostMissingControllers: on a host whose cgroup v2 lacks controllers
// (a hybrid host has cgroup2 at /sys/fs/cgroup/unified with none), the
// server starts, reports each missing controller once at start-up and does
// not apply the defaults that need it, says which it has in `status`,
// refuses a limit whose controller is missing with an error naming it, and
// still gives every job a cgroup of its own: placement, CPU usage and the
// whole-tree kill. Where the host has a controller, its limit is accepted.
func TestOnHostMissingControllers(t *testing.T) {
	s := startHostServer(t)
	st, err := s.client("admin").GetServerStatus(context.Background(), &jobworkerv1.GetServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, c := range st.GetCgroupControllers() {
		have[c] = true
	}
	t.Logf("the host's cgroup v2 offers the server: %v", st.GetCgroupControllers())
	limits := []struct {
		controller string
		flags      []string
	}{
		{"cpu", []string{"--cpus", "0.5"}},
		{"io", []string{"--io-weight", "100"}},
		{"memory", []string{"--memory-limit", "16M"}}, // below the default: no lift to refuse
		{"pids", []string{"--pids-limit", "100"}},
	}
	for _, l := range limits {
		reported := strings.Count(s.serverLog(), "controller="+l.controller+" ")
		r := s.cli("user", append(append([]string{"run"}, l.flags...), "--", "true")...)
		if have[l.controller] {
			if reported != 0 || r.code != 0 {
				t.Errorf("%s is there: reported missing %d times; run %v: exit %d, %q", l.controller, reported, l.flags, r.code, r.err)
			}
			continue
		}
		if reported != 1 {
			t.Errorf("missing controller %s reported %d times at start-up, want once; log:\n%s", l.controller, reported, s.serverLog())
		}
		// A refused request is jobworker's failure, not the job's: 125.
		if want := "needs the cgroup v2 " + l.controller + " controller"; r.code != 125 || !strings.Contains(r.err, want) {
			t.Errorf("run %v without the %s controller: exit %d, %q; want exit 125 and %q", l.flags, l.controller, r.code, r.err, want)
		}
	}
	wantCtl := strings.Join(st.GetCgroupControllers(), " ")
	if wantCtl == "" {
		wantCtl = "none (jobs get their cgroups, without limits)"
	}
	if r := s.cli("admin", "status"); !strings.Contains(r.out, "Controllers "+wantCtl+"\n") {
		t.Errorf("status:\n%s\nwant Controllers %s", r.out, wantCtl)
	}

	// A job without limits: its own cgroup, its CPU time counted, the
	// defaults of missing controllers not applied.
	busy := s.detach("user", "sh", "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`)
	j := s.wait(busy)
	if j.GetState() != jobworkerv1.JobState_JOB_STATE_COMPLETED || j.GetUsage().GetCpuUsageUsec() == 0 {
		t.Errorf("a busy job: %v, cpu %d µs; want completed with its CPU time", j.GetState(), j.GetUsage().GetCpuUsageUsec())
	}
	if !have["memory"] && j.GetLimits().GetMemoryMaxBytes() != 0 {
		t.Errorf("without the memory controller the job got memory limit %d, want none", j.GetLimits().GetMemoryMaxBytes())
	}
	// Its whole tree goes at a stop, a daemon in a session of its own too.
	g := newGate(t)
	tree := s.detach("user", "sh", "-c", "setsid sleep 1000 & "+g.wait()+"; exec sleep 1000")
	g.open(t)
	dir := runningCgroup(t, tree)
	if !strings.Contains(dir, "/user-dev-user/") {
		t.Errorf("the job's cgroup %s is not under its user's", dir)
	}
	var pids []int
	eventually(t, time.Minute, "both processes in the job's cgroup", func() bool {
		pids = cgroupProcs(t, dir)
		return len(pids) == 2
	})
	if r := s.cli("user", "stop", "--grace", "1s", tree); r.code != 0 {
		t.Fatalf("stop: exit %d, %q", r.code, r.err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d of the stopped job still runs", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the stopped job's cgroup %s: %v, want removed", dir, err)
	}
}

// TestOnHostServerStatusCPUCount: GetServerStatus reports the CPUs the
// server may run jobs on, what jobworker-kube offers as the node's CPU
// capacity.
func TestOnHostServerStatusCPUCount(t *testing.T) {
	s := startHostServer(t)
	st, err := s.client("admin").GetServerStatus(context.Background(), &jobworkerv1.GetServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.GetCpuCount(), uint32(runtime.NumCPU()); got != want {
		t.Errorf("GetServerStatus().cpu_count = %d, want %d (runtime.NumCPU of this host, the server's affinity being the same)", got, want)
	}
}
