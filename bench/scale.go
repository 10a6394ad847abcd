package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

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
		req := &jobworkerv1.ListJobsRequest{States: []jobworkerv1.JobState{jobworkerv1.JobState_JOB_STATE_RUNNING}, PageSize: 1000}
		shown := 0
		for {
			r, err := clients[0].ListJobs(ctx, req)
			if err != nil {
				return 0, err
			}
			shown += len(r.GetJobs())
			if req.PageToken = r.GetNextPageToken(); req.PageToken == "" {
				break
			}
		}
		var err error
		if shown < n {
			err = fmt.Errorf("ListJobs shows %d running, want %d", shown, n)
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
