package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/jobworker/jobworker/auth"
	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/internal/sdnotify"
	"github.com/jobworker/jobworker/job"
	"github.com/jobworker/jobworker/service"
	"github.com/jobworker/jobworker/shim"
	"golang.org/x/sys/unix"
)

// serveCmd is `jobworker serve`: the daemon.
type serveCmd struct {
	Config              kong.ConfigFlag `env:"JOBWORKER_CONFIG" type:"existingfile" placeholder:"FILE" help:"Read serve's flags from a JSON file (keys: the flag names); flags and JOBWORKER_* variables override it."`
	LogFormat           string          `env:"JOBWORKER_LOG_FORMAT" default:"text" enum:"text,json" placeholder:"text|json" help:"Format of the server's log lines on stderr (slog's text or JSON handler)."`
	Listen              string          `env:"JOBWORKER_LISTEN" default:"127.0.0.1:50051" placeholder:"ADDR" help:"Address to listen on (host:port)."`
	StateDir            string          `env:"JOBWORKER_STATE_DIR" default:"/var/lib/jobworker" placeholder:"DIR" type:"path" help:"Where job records and output are kept."`
	StateDirReserve     byteSize        `env:"JOBWORKER_STATE_DIR_RESERVE" default:"64M" placeholder:"SIZE" help:"Free space of the state directory's filesystem below which new jobs are refused, kept for the server's records."`
	Dev                 bool            `env:"JOBWORKER_DEV" help:"Development mode: make a PKI in <state-dir>/dev on first start and use it."`
	Cert                string          `env:"JOBWORKER_SERVER_CERT" placeholder:"FILE" help:"Server certificate (PEM)."`
	Key                 string          `env:"JOBWORKER_SERVER_KEY" placeholder:"FILE" help:"Server private key (PEM)."`
	ClientCA            string          `name:"client-ca" env:"JOBWORKER_CLIENT_CA" placeholder:"FILE" help:"CA that signs client certificates (PEM)."`
	CRL                 string          `name:"crl" env:"JOBWORKER_CRL" placeholder:"FILE" help:"Revocation list of the client CA (made by certs revoke): its certificates are refused; SIGHUP reloads it and ends their open connections."`
	UIDRange            string          `env:"JOBWORKER_UID_RANGE" name:"uid-range" placeholder:"FIRST-LAST" help:"Give each user's jobs a uid and gid of their own from this range (default: ${default_uid_range}, which the host conventions leave unused)."`
	RunAs               string          `env:"JOBWORKER_RUN_AS" placeholder:"USER" help:"Run every job as this one user instead of a uid per user; root must be asked for explicitly."`
	DefaultNetwork      string          `env:"JOBWORKER_DEFAULT_NETWORK" default:"host" enum:"host,none" placeholder:"host|none" help:"Network of a job that asks for none: the host's, or none (only loopback); only an admin may ask for host past none."`
	CgroupParent        string          `env:"JOBWORKER_CGROUP_PARENT" placeholder:"PATH" help:"cgroup v2 directory jobs are placed under (default: the server's own cgroup, or <it>/jobworker when that is the root)."`
	DefaultMemoryLimit  byteSize        `env:"JOBWORKER_DEFAULT_MEMORY_LIMIT" default:"512M" placeholder:"SIZE" help:"memory.max of a job that asks for none."`
	DefaultPidsLimit    uint64          `env:"JOBWORKER_DEFAULT_PIDS_LIMIT" default:"1024" placeholder:"N" help:"pids.max of a job that asks for none."`
	MemoryHigh          float64         `env:"JOBWORKER_MEMORY_HIGH" default:"0.9" placeholder:"F" help:"memory.high as a fraction of memory.max (0 or 1: not set)."`
	MemoryCapacity      byteSize        `env:"JOBWORKER_MEMORY_CAPACITY" placeholder:"SIZE" help:"Memory all running jobs may reserve in all (default: 3/4 of MemTotal, at most MemTotal less --server-memory-reserve)."`
	ServerPidsReserve   uint64          `env:"JOBWORKER_SERVER_PIDS_RESERVE" default:"512" placeholder:"N" help:"Processes and threads kept for the server: all jobs together get the cgroup parent's pids bound (or the kernel's) less this."`
	ServerMemoryReserve byteSize        `env:"JOBWORKER_SERVER_MEMORY_RESERVE" default:"256M" placeholder:"SIZE" help:"Memory kept for the server: all jobs together get the cgroup parent's memory bound (or MemTotal) less this."`
	MaxRunning          int             `env:"JOBWORKER_MAX_RUNNING" default:"256" placeholder:"N" help:"Most jobs running at once; more wait PENDING."`
	StopGrace           time.Duration   `env:"JOBWORKER_STOP_GRACE" default:"10s" placeholder:"DUR" help:"Time between SIGTERM and kill when a job is stopped."`
	RingSize            byteSize        `env:"JOBWORKER_RING_SIZE" default:"256K" placeholder:"SIZE" help:"Output kept in memory per job (the newest part)."`
	OutputCap           byteSize        `env:"JOBWORKER_OUTPUT_CAP" default:"1G" placeholder:"SIZE" help:"Output kept on disk per job; past it the oldest is dropped."`
	Retain              time.Duration   `env:"JOBWORKER_RETAIN" default:"168h" placeholder:"DUR" help:"How long finished jobs are kept (0: forever)."`
	RetainCount         int             `env:"JOBWORKER_RETAIN_COUNT" default:"10000" placeholder:"N" help:"Most finished jobs kept (0: no bound)."`
	UserMaxRunning      int             `env:"JOBWORKER_USER_MAX_RUNNING" default:"64" placeholder:"N" help:"Most jobs of one user running at once; more wait PENDING (0: no bound)."`
	UserMaxPending      int             `env:"JOBWORKER_USER_MAX_PENDING" default:"1000" placeholder:"N" help:"Most PENDING jobs of one user; more are refused (0: no bound)."`
	UserMemory          byteSize        `env:"JOBWORKER_USER_MEMORY" placeholder:"SIZE" help:"Memory the running jobs of one user may reserve in all (default: half the memory capacity, at least --default-memory-limit)."`
	UserPids            uint64          `env:"JOBWORKER_USER_PIDS" default:"8192" placeholder:"N" help:"pids.max of each user's cgroup level: the processes and threads of all of one user's jobs together (0: no bound)."`
	UserOutput          byteSize        `env:"JOBWORKER_USER_OUTPUT" placeholder:"SIZE" help:"Output the jobs of one user keep on disk in all; past it that user's oldest finished jobs are removed, then a running job's oldest output is dropped (default: a quarter of the state directory's filesystem)."`
	UserRetainCount     int             `env:"JOBWORKER_USER_RETAIN_COUNT" default:"1000" placeholder:"N" help:"Most finished jobs of one user kept; its oldest are removed first (0: no bound)."`
	QuotaExempt         []string        `env:"JOBWORKER_QUOTA_EXEMPT" placeholder:"NAME" help:"Users no per-user quota binds (repeatable)."`
	MaxStreams          uint32          `env:"JOBWORKER_MAX_STREAMS" default:"128" placeholder:"N" help:"Most concurrent streams per client connection."`
	MaxConnections      int             `env:"JOBWORKER_MAX_CONNECTIONS" default:"4096" placeholder:"N" help:"Most connections open at once; past it a new one replaces the oldest still in its TLS handshake (which must finish within 10s), or is closed."`
	MetricsListen       string          `env:"JOBWORKER_METRICS_LISTEN" placeholder:"ADDR" help:"Serve Prometheus metrics at https://ADDR/metrics, with the server's certificate, to reader and admin certificates of the client CA. Off by default."`
	DebugSocket         string          `env:"JOBWORKER_DEBUG_SOCKET" placeholder:"PATH" type:"path" help:"Serve Go's runtime profiles (net/http/pprof) on a unix socket at PATH, mode 0600, for root only. Off by default."`
}

// identity is who jobs run as: with --run-as, that one user (cred; nil for
// root); otherwise a uid per user from --uid-range (or the default range),
// which no account of /etc/passwd or /etc/group may use.
func (c *serveCmd) identity() (*shim.Credential, *job.UIDRange, error) {
	if c.RunAs != "" {
		if c.UIDRange != "" {
			return nil, nil, errors.New("--run-as and --uid-range: give one (a uid per user, or one user for every job)")
		}
		cred, err := runAsCredential(c.RunAs, shim.LookupUser)
		return cred, nil, err
	}
	r := job.DefaultUIDRange
	if c.UIDRange != "" {
		var err error
		if r, err = job.ParseUIDRange(c.UIDRange); err != nil {
			return nil, nil, fmt.Errorf("--uid-range: %w", err)
		}
	}
	if err := r.CheckFree("/etc/passwd", "/etc/group"); err != nil {
		return nil, nil, fmt.Errorf("--uid-range: %w", err)
	}
	return nil, &r, nil
}

// errRootAlias refuses a --run-as user other than "root" whose uid is 0.
var errRootAlias = errors.New("its uid is 0, so jobs would run as root: ask for that as --run-as root, or name an unprivileged user")

// runAsCredential is the credential jobs run as for --run-as name, found
// with lookup (shim.LookupUser). It is nil, root, for the name "root"
// only: any other name that resolves to uid 0 (an alias such as toor in
// /etc/passwd, or the number 0) is refused with errRootAlias, so that
// running jobs as root is always spelled out.
func runAsCredential(name string, lookup func(string) (*shim.Credential, error)) (*shim.Credential, error) {
	if name == "root" {
		return nil, nil
	}
	cred, err := lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--run-as: %w", err)
	}
	if cred.UID == 0 {
		return nil, fmt.Errorf("--run-as %s: %w", name, errRootAlias)
	}
	return cred, nil
}

// Run starts the server and serves until SIGTERM or SIGINT.
func (c *serveCmd) Run(e *env) error {
	// SIGHUP, whose default action ends the process, is caught before
	// anything else: start-up can take a while (reading the certificate
	// files, the cgroup sweep of job.Open), and a reload asked meanwhile
	// (logrotate, an impatient `systemctl reload`) must not kill the
	// server. One that comes before the certificates are loaded waits in
	// the channel and is applied once they are: it then re-reads them.
	// SIGTERM and SIGINT are caught by run (main.go) before Run is called.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var log *slog.Logger
	if c.LogFormat == "json" {
		log = slog.New(slog.NewJSONHandler(e.stderr, nil))
	} else {
		log = slog.New(slog.NewTextHandler(e.stderr, nil))
	}
	if os.Geteuid() != 0 {
		return errors.New("the server must run as root (it creates cgroups and starts jobs as other users): run it with sudo")
	}
	// What can be checked without touching the host is checked first, so
	// that a wrong flag changes nothing.
	cred, uids, err := c.identity()
	if err != nil {
		return err
	}
	if cred == nil && uids == nil {
		log.Warn("jobs run as root, as --run-as asks")
	}
	total, err := memTotal()
	if err != nil {
		return err
	}
	capacity := uint64(c.MemoryCapacity)
	if capacity == 0 {
		capacity = total / 4 * 3
		if r := uint64(c.ServerMemoryReserve); r < total {
			capacity = min(capacity, total-r)
		}
	}
	if c.UserMemory != 0 && c.DefaultMemoryLimit > c.UserMemory {
		return fmt.Errorf("--default-memory-limit %s is larger than --user-memory %s: no user's job could start", c.DefaultMemoryLimit, c.UserMemory)
	}
	if uint64(c.DefaultMemoryLimit) > capacity {
		return fmt.Errorf("--default-memory-limit %s is larger than the memory capacity %s", c.DefaultMemoryLimit, byteSize(capacity))
	}
	if err := prepareStateDir(c.StateDir); err != nil {
		return err
	}
	// One server per state directory and per cgroup parent: a second one
	// would take the first one's running jobs for leftovers of a crash, and
	// kill them.
	stateLock, err := lockStateDir(c.StateDir)
	if err != nil {
		return err
	}
	defer stateLock.Close()
	certFile, keyFile, caFile := c.Cert, c.Key, c.ClientCA
	if c.Dev {
		dir := filepath.Join(c.StateDir, "dev")
		made, err := ensureDevPKI(dir)
		if err != nil {
			return err
		}
		if made {
			log.Info("made a development PKI", "dir", dir)
		}
		if certFile == "" {
			certFile, keyFile = auth.Paths(dir, "server")
		}
		if caFile == "" {
			caFile = filepath.Join(dir, "ca.crt")
		}
	}
	var missing []string
	for _, f := range []struct{ flag, value string }{{"--cert", certFile}, {"--key", keyFile}, {"--client-ca", caFile}} {
		if f.value == "" {
			missing = append(missing, f.flag)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: give the server's certificate, key and client CA (make them with `jobworker certs`), or use --dev", strings.Join(missing, ", "))
	}
	tlsState, err := auth.NewServerTLSWithCRL(certFile, keyFile, caFile, c.CRL)
	if err != nil {
		return err
	}
	// systemd (Type=notify) is told when the server serves, reloads and
	// stops; a notification that fails is logged, never fatal.
	notify := sdnotify.New(os.Getenv("NOTIFY_SOCKET"))
	tell := func(err error) {
		if err != nil {
			log.Warn("systemd notification", "error", err)
		}
	}
	ready := make(chan struct{})
	conns := service.NewConns(c.MaxConnections)
	go func() {
		for range hup {
			<-ready // a reload asked at start-up is told once serving
			tell(notify.Reloading())
			if err := tlsState.Reload(); err != nil {
				log.Error("reload on SIGHUP refused; the certificates in use stay", "error", err)
				// It serves on with them: systemd, told of a reload,
				// waits for READY=1 to end it, refused or not.
				tell(notify.Ready())
				continue
			}
			log.Info("reloaded the server certificate, key and client CA")
			if c.CRL != "" {
				n := conns.CloseIf(tlsState.Revoked)
				log.Info("reloaded the revocation list", "crl", c.CRL, "revoked_connections_closed", n)
			}
			tell(notify.Ready())
		}
	}()

	h, err := cgroupfs.Setup(cgroupfs.Options{Parent: c.CgroupParent})
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	h.SetUserLimits(cgroupfs.UserLimits{PidsMax: c.UserPids, Exempt: func(user string) bool { return slices.Contains(c.QuotaExempt, user) }})
	parentLock, err := lockExclusive(h.Parent(), os.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("cgroup parent %s is in use by another jobworker server: stop it, or give this one its own --cgroup-parent", h.Parent())
	}
	if err != nil {
		return fmt.Errorf("lock the cgroup parent %s: %w", h.Parent(), err)
	}
	defer parentLock.Close()
	jobsLimits, err := h.KeepReserve(cgroupfs.ServerReserve{Pids: c.ServerPidsReserve, Memory: uint64(c.ServerMemoryReserve)}, total)
	var re *cgroupfs.ReserveError
	if errors.As(err, &re) {
		return fmt.Errorf("cgroups: %w: lower --server-%s-reserve", err, re.What)
	}
	if err != nil {
		return fmt.Errorf("cgroups: keep the server's reserve: %w", err)
	}
	for _, ctl := range cgroupfs.AllControllers() {
		if !h.Has(ctl) {
			log.Warn("cgroup controller missing: limits that need it are refused, and its defaults are not applied", "controller", ctl, "parent", h.Parent(),
				"fix", "boot with cgroup v2 unified (systemd.unified_cgroup_hierarchy=1) and delegate the controller to the server's cgroup")
		}
	}
	metrics := service.NewMetrics()
	jobCfg := c.jobConfig(h, cred, uids, capacity, func(err error) { log.Error("job manager", "error", err) })
	jobCfg.OnEvent = metrics.OnEvent
	m, err := job.Open(jobCfg)
	if err != nil {
		return err
	}

	lis, err := net.Listen("tcp", c.Listen)
	if err != nil {
		m.Close(context.Background())
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen on %s: the address is in use (another server?): choose another with --listen", c.Listen)
		}
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}

	srv := service.NewServer(service.Config{
		Jobs: m, Cgroups: h, TLS: tlsState.Config(), Log: log, Version: versionString(),
		DefaultMemory: uint64(c.DefaultMemoryLimit), DefaultPids: c.DefaultPidsLimit, MaxStreams: c.MaxStreams,
		Conns:          conns,
		DefaultNetwork: job.Network(c.DefaultNetwork), Metrics: metrics,
	})

	if c.MetricsListen != "" {
		mlis, err := net.Listen("tcp", c.MetricsListen)
		if err != nil {
			m.Close(context.Background())
			lis.Close()
			return fmt.Errorf("--metrics-listen %s: %w", c.MetricsListen, err)
		}
		msrv := metrics.ServeMetrics(mlis, tlsState.Config(), log)
		defer msrv.Close()
		log.Info("serving metrics", "metrics_listen", mlis.Addr().String())
	}

	if c.DebugSocket != "" {
		dbg, err := serveDebug(c.DebugSocket)
		if err != nil {
			m.Close(context.Background())
			lis.Close()
			return err
		}
		defer dbg.Close()
		log.Info("serving runtime profiles to root", "debug_socket", c.DebugSocket)
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	tell(notify.Ready())
	close(ready)
	runAs := c.RunAs
	if uids != nil {
		runAs = "a uid per user from " + uids.String()
	}
	log.Info("serving", "listen", lis.Addr().String(), "state_dir", c.StateDir, "cgroup_parent", h.Parent(), "controllers", strings.Join(h.Controllers(), ","), "run_as", runAs,
		"jobs_pids_max", jobsLimits.PidsMax, "jobs_memory_max", byteSize(jobsLimits.MemoryMax))
	if c.Dev {
		fmt.Fprintln(e.stderr, "# development server: point the CLI at it as admin with")
		if err := printDevExports(e.stdout, filepath.Join(c.StateDir, "dev"), lis.Addr().String()); err != nil {
			return err
		}
	}

	select {
	case err := <-served:
		m.Close(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-e.ctx.Done():
	}
	tell(notify.Stopping())
	log.Info("shutting down: stopping jobs")
	stopped := make(chan struct{})
	go func() {
		srv.Shutdown()
		close(stopped)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), c.StopGrace+30*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		log.Error("stopping jobs", "error", err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
	log.Info("stopped")
	return nil
}

// jobConfig is the job manager's configuration from the flags, with the
// cgroup hierarchy, the run-as user and the memory capacity Run found.
func (c *serveCmd) jobConfig(h *cgroupfs.Hierarchy, cred *shim.Credential, uids *job.UIDRange, capacity uint64, onError func(error)) job.Config {
	return job.Config{
		StateDir:           c.StateDir,
		StateDirReserve:    uint64(c.StateDirReserve),
		Cgroups:            h,
		UIDs:               uids,
		RunAs:              cred,
		Defaults:           cgroupfs.Limits{MemoryMax: uint64(c.DefaultMemoryLimit), PidsMax: c.DefaultPidsLimit},
		MemoryHighFraction: c.MemoryHigh,
		MemoryCapacity:     capacity,
		MaxRunning:         c.MaxRunning,
		Quotas:             c.quotas(capacity),
		StopGrace:          c.StopGrace,
		RingSize:           int(c.RingSize),
		OutputCap:          int64(c.OutputCap),
		Retain:             c.Retain,
		RetainCount:        c.RetainCount,
		OnError:            onError,
	}
}

// quotas are the per-user quotas from the flags, with the memory capacity
// Run found.
func (c *serveCmd) quotas(capacity uint64) job.Quotas {
	mem := uint64(c.UserMemory)
	if mem == 0 {
		mem = max(capacity/2, uint64(c.DefaultMemoryLimit))
	}
	output := int64(c.UserOutput)
	if output == 0 {
		var fs unix.Statfs_t
		if unix.Statfs(c.StateDir, &fs) == nil {
			output = int64(fs.Blocks * uint64(fs.Bsize) / 4)
		}
	}
	return job.Quotas{MaxRunning: c.UserMaxRunning, MaxPending: c.UserMaxPending, Memory: mem, Output: output, RetainCount: c.UserRetainCount, Exempt: c.QuotaExempt}
}

// serveDebug serves net/http/pprof's handlers on a unix socket at path:
// goroutine, heap and CPU profiles of the running server, for an operator
// chasing a leak or a slowdown. The socket is root's, mode 0600 from its
// creation (the umask is narrowed around the bind), so that no job, nor any
// other user, can reach it: the profiles need no authentication of their
// own. A socket left by an earlier server is replaced; anything else in
// its place is refused. The handlers are on a mux of their own, never on
// http.DefaultServeMux.
func serveDebug(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("--debug-socket %s: exists and is not a socket: remove it or choose another path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--debug-socket %s: %w", path, err)
		}
	}
	old := unix.Umask(0o177)
	lis, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("--debug-socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("--debug-socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(lis)
	return lis, nil
}

// memTotal reads MemTotal from /proc/meminfo.
func memTotal() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse MemTotal: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no MemTotal in /proc/meminfo")
}
