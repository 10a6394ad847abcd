package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

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

// cliThroughput starts a job writing size bytes and follows it with a
// `jobworker logs -f` process of bin into /dev/null, timing StartJob to
// the process's exit: the server and that build's own client. (The CLI
// checks offsets as it resumes; the bytes' count is readAll's to check.)
func cliThroughput(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, bin string, env []string, size int64) (float64, error) {
	t := time.Now()
	r, err := c.StartJob(ctx, &jobworkerv1.StartJobRequest{Command: "head", Args: []string{"-c", fmt.Sprint(size), "/dev/zero"}})
	if err != nil {
		return 0, err
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	var stderr strings.Builder
	cmd := withEnv(exec.Command(bin, "logs", "-f", r.GetJob().GetId()), env)
	cmd.Stdout, cmd.Stderr = null, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("jobworker logs -f: %v: %s", err, stderr.String())
	}
	return float64(size) / time.Since(t).Seconds(), nil
}

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

// rawFanOut is the fan-out baseline: `head -c size /dev/zero | tee` to n
// pipes, each read by a `cat >/dev/null`, timed from head's start to the
// last cat's exit.
func rawFanOut(size int64, n int) (time.Duration, error) {
	var cats []*exec.Cmd
	var ends []*os.File // tee's ends of the pipes
	defer func() {
		for _, f := range ends {
			f.Close()
		}
		for _, c := range cats {
			if c.Process != nil {
				c.Process.Kill()
				c.Wait()
			}
		}
	}()
	args := []string{}
	for i := range n {
		r, w, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		cat := exec.Command("cat")
		cat.Stdin = r
		err = cat.Start()
		r.Close()
		if err != nil {
			w.Close()
			return 0, err
		}
		cats = append(cats, cat)
		ends = append(ends, w)
		args = append(args, fmt.Sprintf("/proc/self/fd/%d", 3+i))
	}
	in, out, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	tee := exec.Command("tee", args...)
	tee.Stdin, tee.ExtraFiles = in, ends
	err = tee.Start()
	in.Close()
	for _, f := range ends {
		f.Close()
	}
	ends = nil
	if err != nil {
		out.Close()
		return 0, err
	}
	head := exec.Command("head", "-c", fmt.Sprint(size), "/dev/zero")
	head.Stdout = out
	t := time.Now()
	err = head.Start()
	out.Close()
	if err != nil {
		tee.Process.Kill()
		tee.Wait()
		return 0, err
	}
	if err := head.Wait(); err != nil {
		return 0, fmt.Errorf("raw fan-out: head: %w", err)
	}
	if err := tee.Wait(); err != nil {
		return 0, fmt.Errorf("raw fan-out: tee: %w", err)
	}
	for _, c := range cats {
		if err := c.Wait(); err != nil {
			return 0, fmt.Errorf("raw fan-out: cat: %w", err)
		}
	}
	cats = nil
	return time.Since(t), nil
}

func fanOut(ctx context.Context, clients []jobworkerv1.JobWorkerServiceClient, pid int, size int64, followers int, vm bool) ([]row, error) {
	c := clients[0]
	raw, err := rawFanOut(size, followers)
	if err != nil {
		return nil, err
	}
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
	allRatio := float64(all) / float64(raw)
	rawTarget := ""
	if vm {
		rawTarget = verdict(allRatio <= 2.5 && complete == followers, "≤ 2.5× in the VM, all complete")
	}
	peakTarget := ""
	if !vm && followers >= 1000 {
		peakTarget = verdict(peak <= 256<<20, "≤ 256 MiB")
	}
	return []row{
		{fmt.Sprintf("fan-out: %s job, %d followers, job wall time", human(size), followers), with.Round(time.Millisecond).String(), alone.Round(time.Millisecond).String() + " (no followers)", fmt.Sprintf("%.2f", ratio), verdict(ratio <= 1.5 && complete == followers, "≤ 1.5×, all complete")},
		{"fan-out: followers with every byte", fmt.Sprintf("%d of %d (%d failed)", complete, followers, errs), "", "", ""},
		{"fan-out: the last follower done", seconds(all), seconds(raw) + " (tee to pipes)", fmt.Sprintf("%.2f", allRatio), rawTarget},
		{"fan-out: server peak RSS", human(int64(peak)), "", "", peakTarget},
	}, nil
}

// seconds prints d in seconds, as hack/bench's summary reads it (Go's
// "1m49s" it does not).
func seconds(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func stalled(ctx context.Context, clients []jobworkerv1.JobWorkerServiceClient, pid int, size int64, rounds int) ([]row, error) {
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
