//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	_ "embed"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobworker/jobworker/auth"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
)

// readme is README.md, in the test binary: the integration tests run in a
// directory of their own, without the repository.
//
//go:embed README.md
var readme string

// metricsAddr is the address the server logged it serves metrics on.
func (s *devServer) metricsAddr() string {
	s.t.Helper()
	// The line is logged before the server serves, but its stderr reaches
	// the test through a pipe: it may come after the export lines.
	re := regexp.MustCompile(`"?serving metrics"? metrics_listen=(\S+)`)
	var m []string
	if !settles(time.Minute, func() bool { m = re.FindStringSubmatch(s.serverLog()); return m != nil }) {
		s.t.Fatalf("the server logged no metrics address; its log:\n%s", s.serverLog())
	}
	return m[1]
}

// scrape GETs https://ADDR/metrics as who (no certificate for ""), over
// HTTP/1.1 as Prometheus does by default.
func (s *devServer) scrape(who string) (int, string, error) {
	s.t.Helper()
	dir := filepath.Join(s.state, "dev")
	cfg := &tls.Config{}
	if who != "" {
		var err error
		cfg, err = auth.ClientConfig(filepath.Join(s.state, "dev", "ca.crt"), filepath.Join(dir, who+".crt"), filepath.Join(dir, who+".key"), "localhost")
		if err != nil {
			s.t.Fatal(err)
		}
	} else {
		c, err := auth.ClientConfig(filepath.Join(s.state, "dev", "ca.crt"), filepath.Join(s.state, "dev", "reader.crt"), filepath.Join(s.state, "dev", "reader.key"), "localhost")
		if err != nil {
			s.t.Fatal(err)
		}
		cfg.RootCAs, cfg.ServerName = c.RootCAs, "localhost"
	}
	cfg.NextProtos = []string{"http/1.1"}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: time.Minute}
	resp, err := c.Get("https://" + s.metricsAddr() + "/metrics")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metricValue is the value of the sample named exactly series (name and
// labels, in the exposition's sorted order) in a scrape; -1 if missing.
func metricValue(scrape, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(scrape))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

// TestOnHostMetrics runs a known sequence of jobs and RPCs (jobs completed,
// failed, stopped, queued behind --user-max-running and started from the
// queue, paused, pending, capped, followed), then scrapes --metrics-listen
// over mutual TLS and checks each metric's value; the scrape passes
// `promtool check metrics`; reader and admin certificates may scrape, a
// user's is refused, and a client without one cannot connect. (OOM kills
// need the memory controller: TestMetricsOOMKills.)
func TestOnHostMetrics(t *testing.T) {
	promtool := os.Getenv("JOBWORKER_PROMTOOL")
	if promtool == "" {
		t.Fatal("JOBWORKER_PROMTOOL is not set: hack/test installs Debian's prometheus package for promtool")
	}
	s := startHostServer(t, "--metrics-listen", "127.0.0.1:0", "--output-cap", "1M", "--ring-size", "64K", "--user-max-running", "1")
	const big = 3 << 20
	if r := s.cli("user", "run", "--", "sh", "-c", "echo hello"); r.code != 0 || r.out != "hello\n" {
		t.Fatalf("run echo hello: exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
	}
	if r := s.cli("user", "run", "--", "sh", "-c", "exit 3"); r.code != 3 {
		t.Fatalf("run exit 3: exit %d, stderr %q", r.code, r.err)
	}
	running := s.detach("user", "sleep", "1000")
	stopped := s.detach("bob", "sleep", "1000")
	if r := s.cli("bob", "stop", "--grace", "0s", running); r.code == 0 {
		t.Fatalf("bob stopped dev-user's job")
	}
	if r := s.cli("bob", "stop", "--grace", "0s", stopped); r.code != 0 {
		t.Fatalf("stop: exit %d, stderr %q", r.code, r.err)
	}
	if r := s.cli("reader", "run", "-d", "--", "true"); r.code == 0 {
		t.Fatalf("a reader started a job")
	}
	capped := s.detach("admin", "head", "-c", strconv.Itoa(big), "/dev/zero")
	dropped := s.wait(capped).GetOutputStart()
	if dropped == 0 {
		t.Fatalf("the output cap dropped nothing of %d bytes", big)
	}
	// dev-user's one running slot is taken: two more jobs wait pending;
	// stopping the first starts one of them from the queue, which is then
	// paused and followed.
	queued := s.detach("user", "sleep", "1000")
	waiting := s.detach("user", "sleep", "1000")
	for _, id := range []string{queued, waiting} {
		if st := s.job(id).GetState(); st != jobworkerv1.JobState_JOB_STATE_PENDING {
			t.Fatalf("job %s behind --user-max-running 1: %v, want pending", id, st)
		}
	}
	if r := s.cli("user", "stop", "--grace", "0s", running); r.code != 0 {
		t.Fatalf("stop: exit %d, stderr %q", r.code, r.err)
	}
	eventually(t, time.Minute, "the first queued job running", func() bool {
		return s.job(queued).GetState() == jobworkerv1.JobState_JOB_STATE_RUNNING
	})
	if r := s.cli("user", "pause", queued); r.code != 0 {
		t.Fatalf("pause: exit %d, stderr %q", r.code, r.err)
	}
	follow := exec.Command(binary(t), "logs", "-f", queued)
	follow.Env = s.cliEnv(s.addr, "user")
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	eventually(t, time.Minute, "the follower's output stream open", func() bool {
		_, scrape, err := s.scrape("reader")
		return err == nil && metricValue(scrape, "jobworker_output_streams") == 1
	})
	// (s.job's connection stays open.)
	reserved := s.job(queued).GetLimits().GetMemoryMaxBytes()
	st, err := s.client("admin").GetServerStatus(context.Background(), &jobworkerv1.GetServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}

	code, scrape, err := s.scrape("reader")
	if err != nil || code != http.StatusOK {
		t.Fatalf("scrape as reader: %d, %v\n%s", code, err, scrape)
	}
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`jobworker_jobs{state="completed"}`, 2},
		{`jobworker_jobs{state="failed"}`, 1},
		{`jobworker_jobs{state="running"}`, 0},
		{`jobworker_jobs{state="paused"}`, 1},
		{`jobworker_jobs{state="pending"}`, 1},
		{`jobworker_jobs{state="stopped"}`, 2},
		{`jobworker_job_ends_total{reason="none",state="completed",user="dev-user"}`, 1},
		{`jobworker_job_ends_total{reason="exit_code",state="failed",user="dev-user"}`, 1},
		{`jobworker_job_ends_total{reason="none",state="stopped",user="dev-user"}`, 1},
		{`jobworker_job_ends_total{reason="none",state="stopped",user="bob"}`, 1},
		{`jobworker_job_ends_total{reason="none",state="completed",user="admin"}`, 1},
		{`jobworker_oom_kills_total{user="dev-user"}`, 0},
		{`jobworker_user_jobs_running{user="dev-user"}`, 1},
		{`jobworker_user_jobs_pending{user="dev-user"}`, 1},
		{`jobworker_user_memory_reserved_bytes{user="dev-user"}`, float64(reserved)},
		{`jobworker_memory_reserved_bytes`, float64(reserved)},
		{`jobworker_memory_capacity_bytes`, float64(st.GetMemoryCapacityBytes())},
		{`jobworker_grpc_requests_total{code="OK",method="StartJob"}`, 7},
		{`jobworker_grpc_requests_total{code="PermissionDenied",method="StartJob"}`, 1},
		{`jobworker_grpc_requests_total{code="NotFound",method="StopJob"}`, 1},
		{`jobworker_grpc_requests_total{code="OK",method="StopJob"}`, 2},
		{`jobworker_grpc_requests_total{code="OK",method="PauseJob"}`, 1},
		{`jobworker_grpc_request_duration_seconds_count{method="StartJob"}`, 8},
		{`jobworker_grpc_request_duration_seconds_count{method="PauseJob"}`, 1},
		{`jobworker_job_start_seconds_count`, 5},
		{`jobworker_job_queue_wait_seconds_count`, 1},
		{`jobworker_output_written_bytes_total`, 6 + big},
		{`jobworker_output_dropped_bytes_total`, float64(dropped)},
		{`jobworker_output_streamed_bytes_total`, 6},
		{`jobworker_output_streams`, 1},
	} {
		if got := metricValue(scrape, c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
	if got := metricValue(scrape, "jobworker_connections"); got < 1 {
		t.Errorf("jobworker_connections = %v, want at least the one kept open", got)
	}
	if strings.Contains(scrape, running) || strings.Contains(scrape, capped) || strings.Contains(scrape, queued) {
		t.Errorf("a job ID is in the metrics")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}

	if code, _, err := s.scrape("admin"); err != nil || code != http.StatusOK {
		t.Errorf("scrape as admin: %d, %v; want 200", code, err)
	}
	if code, body, err := s.scrape("user"); err != nil || code != http.StatusForbidden {
		t.Errorf("scrape as a user: %d %q, %v; want 403", code, body, err)
	}
	if _, _, err := s.scrape(""); err == nil {
		t.Errorf("scrape without a client certificate succeeded")
	}
}

// TestMetricsOOMKills: a job the OOM killer ends counts in
// jobworker_oom_kills_total as many kills as its status has, and in
// jobworker_job_ends_total as failed with the reason oom_killed; a job
// that ended otherwise adds no kill.
func TestMetricsOOMKills(t *testing.T) {
	s := startDevServer(t, t.TempDir(), "--metrics-listen", "127.0.0.1:0")
	if r := s.cli("user", "run", "--", "true"); r.code != 0 {
		t.Fatalf("run true: exit %d, stderr %q", r.code, r.err)
	}
	if r := s.cli("user", "run", "--memory-limit", "32M", "--", "awk", `BEGIN { s = "x"; while (1) s = s s }`); r.code != 128+9 {
		t.Fatalf("run awk under 32M: exit %d, stderr %q; want killed (137)", r.code, r.err)
	}
	j := jsonJob(t, "list --json --state failed", s.cli("user", "list", "--json", "--state", "failed"))
	kills := j.GetUsage().GetOomKills()
	if j.GetReason() != jobworkerv1.FailureReason_FAILURE_REASON_OOM_KILLED || kills == 0 {
		t.Fatalf("the awk job: reason %v, %d OOM kills; want oom_killed, at least one", j.GetReason(), kills)
	}
	code, scrape, err := s.scrape("reader")
	if err != nil || code != http.StatusOK {
		t.Fatalf("scrape as reader: %d, %v\n%s", code, err, scrape)
	}
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`jobworker_oom_kills_total{user="dev-user"}`, float64(kills)},
		{`jobworker_job_ends_total{reason="oom_killed",state="failed",user="dev-user"}`, 1},
		{`jobworker_job_ends_total{reason="none",state="completed",user="dev-user"}`, 1},
	} {
		if got := metricValue(scrape, c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
}

// TestOnHostPrometheusScrape: README's scrape config, with its paths and
// names pointed at a dev server's files and metrics address (and a global
// scrape interval of a second, to be quick), passes `promtool check
// config`, and a real Prometheus (Debian's) scrapes the server with it:
// the target is up and its jobworker_jobs series are there.
func TestOnHostPrometheusScrape(t *testing.T) {
	promtool := os.Getenv("JOBWORKER_PROMTOOL")
	if promtool == "" {
		t.Fatal("JOBWORKER_PROMTOOL is not set: hack/test installs Debian's prometheus package for promtool")
	}
	prometheus := filepath.Join(filepath.Dir(promtool), "prometheus")
	s := startHostServer(t, "--metrics-listen", "127.0.0.1:0")
	_, section, ok := strings.Cut(readme, "### Metrics\n")
	if !ok {
		t.Fatal("README has no section \"Metrics\"")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```\n")
	if !ok || !ok2 {
		t.Fatal("README's \"Metrics\" has no yaml block")
	}
	dev := filepath.Join(s.state, "dev")
	for _, r := range []struct{ old, new string }{
		{"/etc/prometheus/jobworker/ca.crt", filepath.Join(dev, "ca.crt")},
		{"/etc/prometheus/jobworker/prometheus.crt", filepath.Join(dev, "reader.crt")},
		{"/etc/prometheus/jobworker/prometheus.key", filepath.Join(dev, "reader.key")},
		{"server_name: jobworker.example.com", "server_name: localhost"},
		{`"jobworker.example.com:9464"`, `"` + s.metricsAddr() + `"`},
	} {
		if !strings.Contains(block, r.old) {
			t.Fatalf("README's scrape config has no %q:\n%s", r.old, block)
		}
		block = strings.ReplaceAll(block, r.old, r.new)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"+block), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", config).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config of README's scrape config: %v\n%s", err, out)
	}
	// A free port for Prometheus' own web server.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := l.Addr().String()
	l.Close()
	var plog bytes.Buffer
	prom := exec.Command(prometheus, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+web)
	prom.Stdout, prom.Stderr = &plog, &plog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prom.Process.Kill(); prom.Wait() })
	query := func(q string) (string, error) {
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + web + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	var last string
	if !settles(2*time.Minute, func() bool {
		last, _ = query(`up{job="jobworker"} == 1`)
		return strings.Contains(last, `"job":"jobworker"`)
	}) {
		t.Fatalf("Prometheus never had the target up: last answer %s\nits log:\n%s", last, plog.String())
	}
	if got, err := query(`jobworker_jobs{state="running"}`); err != nil || !strings.Contains(got, `"__name__":"jobworker_jobs"`) {
		t.Errorf("jobworker_jobs in Prometheus: %v %s", err, got)
	}
}
