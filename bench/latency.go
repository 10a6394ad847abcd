package main

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

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

// median returns the middle of d (which it sorts).
func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return pct(d, 0.5)
}

// networkLatencies times n sequential StartJobs of /bin/true on the host's
// network and n in a network namespace of their own (network none),
// alternating one of each, so that both see the same load.
func networkLatencies(ctx context.Context, c jobworkerv1.JobWorkerServiceClient, n int) (host, none []time.Duration, err error) {
	for range n {
		for _, nw := range []jobworkerv1.Network{jobworkerv1.Network_NETWORK_HOST, jobworkerv1.Network_NETWORK_NONE} {
			t := time.Now()
			if _, err := c.StartJob(ctx, &jobworkerv1.StartJobRequest{Command: "/bin/true", Network: nw}); err != nil {
				return nil, nil, fmt.Errorf("start with network %v: %w", nw, err)
			}
			if nw == jobworkerv1.Network_NETWORK_HOST {
				host = append(host, time.Since(t))
			} else {
				none = append(none, time.Since(t))
			}
		}
	}
	slices.Sort(host)
	slices.Sort(none)
	return host, none, nil
}

// networkRows compares the starts in a network namespace of their own with
// those on the host's network.
func networkRows(host, none []time.Duration) []row {
	var rows []row
	for _, p := range []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p99", 0.99}} {
		h, n := pct(host, p.q), pct(none, p.q)
		rows = append(rows, row{"start, network none, sequential " + p.name, n.Round(time.Microsecond).String(),
			h.Round(time.Microsecond).String() + " (network host)", fmt.Sprintf("%.2f", float64(n)/float64(h)), ""})
	}
	return rows
}
