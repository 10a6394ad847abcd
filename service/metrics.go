package service

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/jobworker/jobworker/auth"
	"github.com/jobworker/jobworker/job"
)

// Metrics are the server's Prometheus metrics. Their labels are users,
// methods, codes, reasons and states, never job IDs, so that their number
// stays bounded by the users, not the jobs.
type Metrics struct {
	reg *prometheus.Registry

	rpcs       *prometheus.CounterVec
	rpcSeconds *prometheus.HistogramVec
	ends       *prometheus.CounterVec
	oomKills   *prometheus.CounterVec
	start      prometheus.Histogram
	queueWait  prometheus.Histogram
	streamed   prometheus.Counter
	conns      prometheus.Gauge

	mu     sync.Mutex
	queued map[string]bool // jobs created pending that have not started
}

// NewMetrics makes the server's metrics; NewServer adds those read from its
// job manager at each scrape. Give OnEvent to the job manager.
func NewMetrics() *Metrics {
	x := &Metrics{
		reg: prometheus.NewRegistry(),
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobworker_grpc_requests_total", Help: "RPCs handled, by method and gRPC status code.",
		}, []string{"method", "code"}),
		rpcSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jobworker_grpc_request_duration_seconds", Help: "Time to handle an RPC (a stream: its whole life), by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"method"}),
		ends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobworker_job_ends_total", Help: "Jobs that ended, by user, final state and failure reason (none for completed and stopped jobs).",
		}, []string{"user", "state", "reason"}),
		oomKills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobworker_oom_kills_total", Help: "Processes the kernel's OOM killer killed in jobs that ended, by user.",
		}, []string{"user"}),
		start: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "jobworker_job_start_seconds", Help: "Time from admission to the command's execution of jobs started at once.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "jobworker_job_queue_wait_seconds", Help: "Time from admission to the command's execution of jobs that waited pending.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 12),
		}),
		streamed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jobworker_output_streamed_bytes_total", Help: "Output bytes sent to GetJobOutput streams.",
		}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jobworker_connections", Help: "Open client connections.",
		}),
		queued: map[string]bool{},
	}
	x.reg.MustRegister(x.rpcs, x.rpcSeconds, x.ends, x.oomKills, x.start, x.queueWait, x.streamed, x.conns,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return x
}

// OnEvent counts a job event (job.Config.OnEvent): it is called with the
// job manager's lock held and only updates counters.
func (x *Metrics) OnEvent(ev job.Event) {
	st := &ev.Job
	switch ev.Type {
	case job.EventCreated:
		if st.State == job.StatePending {
			x.mu.Lock()
			x.queued[st.ID] = true
			x.mu.Unlock()
		}
	case job.EventStarted:
		x.mu.Lock()
		queued := x.queued[st.ID]
		delete(x.queued, st.ID)
		x.mu.Unlock()
		d := st.Started.Sub(st.Created).Seconds()
		if queued {
			x.queueWait.Observe(d)
		} else {
			x.start.Observe(d)
		}
	case job.EventEnded:
		x.mu.Lock()
		delete(x.queued, st.ID)
		x.mu.Unlock()
		reason := string(st.Reason)
		if reason == "" {
			reason = "none"
		}
		x.ends.WithLabelValues(st.Owner, string(st.State), reason).Inc()
		x.oomKills.WithLabelValues(st.Owner).Add(float64(st.Usage.OOMKills))
	}
}

// jobsCollector reads the job manager's figures at each scrape.
type jobsCollector struct {
	m   *job.Manager
	out outputStreams

	jobs, userRunning, userPending, userMemory, reserved, capacity, written, dropped, streams *prometheus.Desc
}

func newJobsCollector(m *job.Manager, out outputStreams) *jobsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &jobsCollector{m: m, out: out,
		jobs:        d("jobworker_jobs", "Jobs the server keeps, by state.", "state"),
		userRunning: d("jobworker_user_jobs_running", "Running (or paused) jobs, by user.", "user"),
		userPending: d("jobworker_user_jobs_pending", "Pending jobs, by user.", "user"),
		userMemory:  d("jobworker_user_memory_reserved_bytes", "Memory the running jobs of a user reserve, by user.", "user"),
		reserved:    d("jobworker_memory_reserved_bytes", "Memory all running jobs reserve."),
		capacity:    d("jobworker_memory_capacity_bytes", "Memory running jobs may reserve in all (0: no bound)."),
		written:     d("jobworker_output_written_bytes_total", "Output bytes jobs wrote since the server started."),
		dropped:     d("jobworker_output_dropped_bytes_total", "Output bytes the per-job output cap dropped since the server started."),
		streams:     d("jobworker_output_streams", "Open GetJobOutput streams."),
	}
}

func (c *jobsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jobs, c.userRunning, c.userPending, c.userMemory, c.reserved, c.capacity, c.written, c.dropped, c.streams} {
		ch <- d
	}
}

func (c *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.m.Figures()
	for _, s := range []job.State{job.StatePending, job.StateRunning, job.StatePaused, job.StateCompleted, job.StateFailed, job.StateStopped} {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(f.States[s]), string(s))
	}
	for user, u := range f.Users {
		ch <- prometheus.MustNewConstMetric(c.userRunning, prometheus.GaugeValue, float64(u.Running), user)
		ch <- prometheus.MustNewConstMetric(c.userPending, prometheus.GaugeValue, float64(u.Pending), user)
		ch <- prometheus.MustNewConstMetric(c.userMemory, prometheus.GaugeValue, float64(u.MemoryReserved), user)
	}
	ch <- prometheus.MustNewConstMetric(c.reserved, prometheus.GaugeValue, float64(f.MemoryReserved))
	ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(f.MemoryCapacity))
	ch <- prometheus.MustNewConstMetric(c.written, prometheus.CounterValue, float64(f.OutputWritten))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(f.OutputDropped))
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(c.out.open.Load()))
}

// observe counts an RPC that ended with err after d.
func (x *Metrics) observe(fullMethod string, d time.Duration, err error) {
	method := path.Base(fullMethod)
	x.rpcs.WithLabelValues(method, status.Code(err).String()).Inc()
	x.rpcSeconds.WithLabelValues(method).Observe(d.Seconds())
}

func (x *Metrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	t := time.Now()
	resp, err := handler(ctx, req)
	x.observe(info.FullMethod, time.Since(t), err)
	return resp, err
}

func (x *Metrics) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	t := time.Now()
	err := handler(srv, ss)
	x.observe(info.FullMethod, time.Since(t), err)
	return err
}

// connStats counts the open connections (a grpc stats.Handler).
type connStats struct{ x *Metrics }

func (c connStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c connStats) HandleRPC(context.Context, stats.RPCStats)                         {}
func (c connStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c connStats) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnBegin:
		c.x.conns.Inc()
	case *stats.ConnEnd:
		c.x.conns.Dec()
	}
}

// ServeMetrics serves the metrics on lis over HTTPS, with tlsConfig (the
// server's: its certificate, TLS 1.3, a client certificate of the client
// CA required), to reader and admin certificates only; other roles get 403.
// It returns the HTTP server, for Shutdown.
func (x *Metrics) ServeMetrics(lis net.Listener, tlsConfig *tls.Config, log *slog.Logger) *http.Server {
	h := promhttp.HandlerFor(x.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)})
	mux := http.NewServeMux()
	mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "a client certificate is required", http.StatusUnauthorized)
			return
		}
		id, err := auth.IdentityFromCertificate(r.TLS.VerifiedChains[0][0])
		if err != nil || id.Role != auth.RoleReader && id.Role != auth.RoleAdmin {
			http.Error(w, "metrics are for reader and admin certificates", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	}))
	base := tlsConfig
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The server's configuration for each handshake (it follows a
		// reload), speaking HTTP/1.1 as well as HTTP/2.
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := base.GetConfigForClient(hello)
			if err != nil || c == nil {
				return c, err
			}
			c = c.Clone()
			c.NextProtos = []string{"h2", "http/1.1"}
			return c, nil
		},
	}
	srv := &http.Server{Handler: mux, TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go srv.ServeTLS(lis, "", "")
	return srv
}
