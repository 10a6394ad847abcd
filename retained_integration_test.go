//go:build integration

package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// TestRetained1000BigJobs: 1000 finished jobs with 200 KiB of arguments
// each (two of 100 KiB: the kernel takes at most 128 KiB in one) grow the server's heap by at most 8 MiB; `list` shows all 1000
// through pages, and `list --limit` stops early.
func TestRetained1000BigJobs(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "debug.sock")
	s := startDevServer(t, t.TempDir(), "--debug-socket", sock)
	api := s.client("user")
	arg := strings.Repeat("a", 100<<10)
	s.wait(s.runJobID()) // the connections made, the server warm
	heap0 := s.heapInuse()
	const n = 1000
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				r, err := api.StartJob(context.Background(), &jobworkerv1.StartJobRequest{Command: "true", Args: []string{arg, arg}})
				if err != nil {
					errs <- err
					return
				}
				ids[i] = r.GetJob().GetId()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		s.wait(id)
	}
	grew := s.heapInuse() - heap0
	t.Logf("1000 finished jobs with 200 KiB of arguments each: the heap grew by %d KiB", grew>>10)
	if grew > 8<<20 {
		t.Errorf("1000 finished jobs with 200 KiB of arguments each grew the heap by %d KiB, over 8 MiB", grew>>10)
	}
	r := s.cli("user", "list")
	if r.code != 0 {
		t.Fatalf("list: exit %d, %s", r.code, r.err)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	shown := map[string]bool{}
	for _, l := range lines[1:] {
		shown[strings.Fields(l)[0]] = true
	}
	for _, id := range ids {
		if !shown[id] {
			// Retained or not: the status says.
			st, err := api.GetJobStatus(context.Background(), &jobworkerv1.GetJobStatusRequest{Id: id})
			if err == nil {
				_, err = st.Recv()
			}
			t.Fatalf("list shows %d jobs and not %s (its status: %v), want all 1000", len(lines)-1, id, err)
		}
	}
	if r := s.cli("user", "list", "--limit", "150"); r.code != 0 || strings.Count(r.out, "\n") != 151 {
		t.Errorf("list --limit 150: exit %d, %d lines; want the header and 150 jobs", r.code, strings.Count(r.out, "\n"))
	}
}
