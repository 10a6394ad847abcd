//go:build integration

// Package e2e tests jobworker-kube against a real Kubernetes control plane
// and two real jobworker servers on this host: etcd, kube-apiserver,
// kube-scheduler and kube-controller-manager (built by hack/controlplane,
// found in $JOBWORKER_CONTROLPLANE), `jobworker serve` twice (each its own
// state directory, address, cgroup parent under this host's cgroup v2 mount
// and memory capacity, one PKI from `jobworker certs`), and jobworker-kube
// serving both as nodes. The cluster is started once for all tests, in
// TestMain; a part of it that cannot be built or started fails the run and
// says why.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jobworker/jobworker/cgroupfs"
	"github.com/jobworker/jobworker/client"
	"github.com/jobworker/jobworker/kube/provider"
	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The two jobworker hosts: their node names and memory capacities.
const (
	hostSmall = "jw-small" // 1 GiB for jobs
	hostLarge = "jw-large" // 4 GiB for jobs
)

// stopGrace is the hosts' default grace for StopJob, shorter than the
// grace TestDeleteWithGrace gives its pod, so that the test tells the
// pod's grace from the host's.
const stopGrace = "500ms"

// cluster is the running test cluster.
var cluster *testCluster

type testCluster struct {
	dir, bin   string // work directory; where the binaries are
	controlCG  string // the cgroup the jobworker servers' cgroups are under
	kube       *kubernetes.Clientset
	kubeconfig string
	pki        string // the jobworker PKI
	procs      []*proc
	hosts      map[string]*jwHost
	provider   *proc
	providerFn func() *proc // starts jobworker-kube again
	kubeletAPI string       // the first node's kubelet API, host:port
}

// jwHost is one jobworker server.
type jwHost struct {
	name, addr, state, parent, capacity string
	proc                                *proc
	conn                                *client.Conn
}

// proc is a process of the cluster, its output in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	// killed is set when the test ended the process on purpose.
	killed atomic.Bool
}

func TestMain(m *testing.M) {
	c, err := startCluster()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot start the test cluster: %v\n", err)
		if c != nil {
			c.dumpLogs(os.Stderr)
			c.stop()
		}
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	if code != 0 {
		c.dumpLogs(os.Stderr)
	}
	c.stop()
	os.Exit(code)
}

func startCluster() (c *testCluster, err error) {
	cp := os.Getenv("JOBWORKER_CONTROLPLANE")
	if cp == "" {
		return nil, errors.New("JOBWORKER_CONTROLPLANE is not set: it names the directory hack/controlplane prints, which holds etcd, kube-apiserver, kube-scheduler and kube-controller-manager")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(cp, b)); err != nil {
			return nil, fmt.Errorf("the control plane in %s: %w (run hack/controlplane)", cp, err)
		}
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the jobworker servers need root")
	}
	dir, err := os.MkdirTemp("", "jobworker-kube-e2e-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	c = &testCluster{dir: dir, bin: filepath.Join(dir, "bin"), hosts: map[string]*jwHost{}}
	if err := c.buildBinaries(); err != nil {
		return c, err
	}
	ports, err := freePorts(9)
	if err != nil {
		return c, err
	}
	etcdPort, peerPort, apiPort, kubeletPort := ports[0], ports[1], ports[2], ports[3]
	if err := c.startControlPlane(cp, etcdPort, peerPort, apiPort); err != nil {
		return c, err
	}
	if err := c.startHosts(ports[5], ports[6]); err != nil {
		return c, err
	}
	c.kubeletAPI = "127.0.0.1:" + strconv.Itoa(kubeletPort)
	c.providerFn = func() *proc {
		return c.start("jobworker-kube", filepath.Join(c.bin, "jobworker-kube"),
			"--kubeconfig", c.kubeconfig,
			"--node", hostSmall+"="+c.hosts[hostSmall].addr, "--node", hostLarge+"="+c.hosts[hostLarge].addr,
			"--ca", filepath.Join(c.pki, "ca.crt"), "--cert", filepath.Join(c.pki, "kube.crt"), "--key", filepath.Join(c.pki, "kube.key"),
			"--listen", "127.0.0.1:"+strconv.Itoa(kubeletPort),
			"--kubelet-cert", filepath.Join(dir, "kubelet.crt"), "--kubelet-key", filepath.Join(dir, "kubelet.key"),
			"--kubelet-client-ca", filepath.Join(dir, "ca.crt"), "--check-interval", "1s")
	}
	c.provider = c.providerFn()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, n := range []string{hostSmall, hostLarge} {
		if err := c.waitNodeReady(ctx, n, true); err != nil {
			return c, fmt.Errorf("node %s did not become Ready: %w", n, err)
		}
	}
	if err := c.waitServiceAccount(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// buildBinaries builds jobworker (unless $JOBWORKER_BIN names it) and
// jobworker-kube, statically.
func (c *testCluster) buildBinaries() error {
	if err := os.MkdirAll(c.bin, 0o755); err != nil {
		return err
	}
	build := func(dir, out, pkg string) error {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		return nil
	}
	if bin := os.Getenv("JOBWORKER_BIN"); bin != "" {
		if err := os.Symlink(bin, filepath.Join(c.bin, "jobworker")); err != nil {
			return err
		}
	} else if err := build("../..", filepath.Join(c.bin, "jobworker"), "."); err != nil {
		return err
	}
	if bin := os.Getenv("JOBWORKER_KUBE_BIN"); bin != "" {
		return os.Symlink(bin, filepath.Join(c.bin, "jobworker-kube"))
	}
	return build("..", filepath.Join(c.bin, "jobworker-kube"), "./cmd/jobworker-kube")
}

// startControlPlane starts etcd, the API server, the scheduler and the
// controller manager, and waits for the API server to be ready.
func (c *testCluster) startControlPlane(cp string, etcdPort, peerPort, apiPort int) error {
	ca, err := newTestCA(c.dir)
	if err != nil {
		return err
	}
	for _, x := range []struct {
		name, cn string
		orgs     []string
		ips      []string
	}{
		{"apiserver", "kube-apiserver", nil, []string{"127.0.0.1", "10.0.0.1"}},
		{"admin", "admin", []string{"system:masters"}, nil},
		{"kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil},
		{"kubelet", "jobworker-kube", nil, []string{"127.0.0.1"}},
	} {
		if err := ca.issue(x.name, x.cn, x.orgs, x.ips...); err != nil {
			return err
		}
	}
	sa := filepath.Join(c.dir, "sa.key")
	if err := serviceAccountKey(sa); err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	c.start("etcd", filepath.Join(cp, "etcd"), "--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL, "--unsafe-no-fsync", "--log-level", "warn")
	server := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.start("kube-apiserver", filepath.Join(cp, "kube-apiserver"),
		"--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--endpoint-reconciler-type", "none",
		"--secure-port", strconv.Itoa(apiPort), "--cert-dir", filepath.Join(c.dir, "apiserver-certs"),
		"--tls-cert-file", ca.path("apiserver.crt"), "--tls-private-key-file", ca.path("apiserver.key"),
		"--client-ca-file", ca.path("ca.crt"), "--authorization-mode", "Node,RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", sa,
		"--service-account-signing-key-file", sa, "--service-cluster-ip-range", "10.0.0.0/24",
		"--kubelet-client-certificate", ca.path("kubelet-client.crt"), "--kubelet-client-key", ca.path("kubelet-client.key"),
		"--kubelet-preferred-address-types", "InternalIP")
	c.kubeconfig = filepath.Join(c.dir, "admin.kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, server, ca.path("ca.crt"), ca.path("admin.crt"), ca.path("admin.key"))
	if err := os.WriteFile(c.kubeconfig, []byte(kc), 0o600); err != nil {
		return err
	}
	rest, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return err
	}
	if c.kube, err = kubernetes.NewForConfig(rest); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		body, err := c.kube.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("kube-apiserver was not ready within 2 minutes: %v %s", err, body)
		}
		if err := c.exited(); err != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.start("kube-scheduler", filepath.Join(cp, "kube-scheduler"), "--kubeconfig", c.kubeconfig,
		"--authentication-kubeconfig", c.kubeconfig, "--authorization-kubeconfig", c.kubeconfig,
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0")
	c.start("kube-controller-manager", filepath.Join(cp, "kube-controller-manager"), "--kubeconfig", c.kubeconfig,
		"--authentication-kubeconfig", c.kubeconfig, "--authorization-kubeconfig", c.kubeconfig,
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0",
		"--service-account-private-key-file", sa, "--root-ca-file", ca.path("ca.crt"),
		"--use-service-account-credentials=false", "--controllers", "*")
	return nil
}

// startHosts makes one PKI with `jobworker certs` and starts the two
// jobworker servers on it.
func (c *testCluster) startHosts(portSmall, portLarge int) error {
	jw := filepath.Join(c.bin, "jobworker")
	c.pki = filepath.Join(c.dir, "pki")
	for _, args := range [][]string{
		{"certs", "ca", "--out", c.pki},
		{"certs", "server", "--ca-dir", c.pki, "--out", c.pki, "--name", "localhost", "--ip", "127.0.0.1"},
		{"certs", "client", "--ca-dir", c.pki, "--out", c.pki, "--user", "kube", "--role", "admin"},
	} {
		if b, err := exec.Command(jw, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("jobworker %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	mount, err := cgroupfs.FindMount()
	if err != nil {
		return err
	}
	own, err := cgroupfs.OwnCgroup()
	if err != nil {
		return err
	}
	cg, err := os.MkdirTemp(filepath.Join(mount, own), "kube-e2e-")
	if err != nil {
		return fmt.Errorf("make a cgroup for the jobworker servers: %w", err)
	}
	c.controlCG = cg
	for _, h := range []struct {
		name, capacity string
		port           int
	}{{hostSmall, "1G", portSmall}, {hostLarge, "4G", portLarge}} {
		parent := filepath.Join(cg, h.name)
		if err := os.Mkdir(parent, 0o755); err != nil {
			return err
		}
		host := &jwHost{name: h.name, addr: "127.0.0.1:" + strconv.Itoa(h.port), state: filepath.Join(c.dir, "state-"+h.name),
			parent: strings.TrimPrefix(parent, mount), capacity: h.capacity}
		c.hosts[h.name] = host
		if err := c.startHost(host); err != nil {
			return err
		}
		host.conn, err = client.Dial(client.Config{Server: host.addr, CA: filepath.Join(c.pki, "ca.crt"),
			Cert: filepath.Join(c.pki, "kube.crt"), Key: filepath.Join(c.pki, "kube.key")})
		if err != nil {
			return err
		}
	}
	return nil
}

// startHost starts (or starts again) a jobworker server and waits until
// it answers.
func (c *testCluster) startHost(h *jwHost) error {
	h.proc = c.start(h.name, filepath.Join(c.bin, "jobworker"), "serve", "--listen", h.addr, "--state-dir", h.state,
		"--cert", filepath.Join(c.pki, "server.crt"), "--key", filepath.Join(c.pki, "server.key"),
		"--client-ca", filepath.Join(c.pki, "ca.crt"), "--cgroup-parent", h.parent,
		"--memory-capacity", h.capacity, "--stop-grace", stopGrace)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		conn, err := net.Dial("tcp", h.addr)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-h.proc.done:
			return fmt.Errorf("jobworker serve for %s exited: %s", h.name, tail(h.proc.log))
		case <-ctx.Done():
			return fmt.Errorf("jobworker serve for %s did not listen on %s within a minute", h.name, h.addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// start starts a process of the cluster; its output goes to DIR/NAME.log.
func (c *testCluster) start(name, path string, args ...string) *proc {
	p := &proc{name: name, log: filepath.Join(c.dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(f, "=== %s %s\n", path, strings.Join(args, " "))
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		fmt.Fprintf(f, "start: %v\n", err)
		close(p.done)
		f.Close()
		c.procs = append(c.procs, p)
		return p
	}
	go func() {
		p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return p
}

// kill kills a process with sig and waits for it to end.
func (p *proc) kill(sig syscall.Signal) {
	p.killed.Store(true)
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// exited says which process of the cluster ended by itself, if one did.
func (c *testCluster) exited() error {
	for _, p := range c.procs {
		if p.killed.Load() {
			continue
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v; its log ends:\n%s", p.name, p.cmd.ProcessState, tail(p.log))
		default:
		}
	}
	return nil
}

func (c *testCluster) stop() {
	// jobworker-kube and the jobworker servers end cleanly (a server stops
	// its jobs); the control plane keeps nothing and is killed.
	var wg sync.WaitGroup
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		sig := syscall.SIGTERM
		if p.name == "etcd" || strings.HasPrefix(p.name, "kube-") {
			sig = syscall.SIGKILL
		}
		wg.Go(func() { p.kill(sig) })
	}
	wg.Wait()
	for _, h := range c.hosts {
		if h.conn != nil {
			h.conn.Close()
		}
	}
	if c.controlCG != "" {
		if f, err := os.OpenFile(filepath.Join(c.controlCG, "cgroup.kill"), os.O_WRONLY, 0); err == nil {
			f.WriteString("1")
			f.Close()
		}
		for i := 0; i < 100; i++ {
			if err := cgroupfs.RemoveTree(c.controlCG); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if os.Getenv("JOBWORKER_KUBE_E2E_KEEP") == "" {
		os.RemoveAll(c.dir)
	}
}

// dumpLogs writes the end of every process's log.
func (c *testCluster) dumpLogs(w io.Writer) {
	for _, p := range c.procs {
		fmt.Fprintf(w, "--- %s (%s) ---\n%s\n", p.name, p.log, tail(p.log))
	}
}

// tail is the last lines of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// freePorts finds n free TCP ports on loopback, the last two of them
// consecutive (for jobworker-kube's two kubelet APIs).
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	// The kubelet APIs: a port whose next one is free too.
	for base := 20000 + os.Getpid()%20000; base < 65000; base += 7 {
		a, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+1))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		ports[3] = base
		return ports, nil
	}
	return nil, errors.New("no two consecutive free ports")
}

// waitNodeReady waits until node's Ready condition is ready.
func (c *testCluster) waitNodeReady(ctx context.Context, name string, ready bool) error {
	want := corev1.ConditionFalse
	if ready {
		want = corev1.ConditionTrue
	}
	for {
		n, err := c.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == want {
					return nil
				}
			}
		}
		if err := c.exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s: Ready is not %s: %v", name, want, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitServiceAccount waits for the default namespace's service account,
// without which no pod is admitted.
func (c *testCluster) waitServiceAccount(ctx context.Context) error {
	for {
		if _, err := c.kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return nil
		}
		if err := c.exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.New("the controller manager made no default service account")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// jobsOf lists the jobs, on every host, that run the pod with uid.
func (c *testCluster) jobsOf(t *testing.T, uid string) []*jobworkerv1.Job {
	t.Helper()
	var jobs []*jobworkerv1.Job
	for _, h := range c.hosts {
		list, err := h.conn.ListJobs(context.Background(), &jobworkerv1.ListJobsRequest{Labels: map[string]string{provider.LabelPodUID: uid}})
		if err != nil {
			t.Fatalf("ListJobs on %s: %v", h.name, err)
		}
		for _, j := range list.GetJobs() {
			if j.GetLabels()[provider.LabelPodUID] == uid {
				jobs = append(jobs, j)
			}
		}
	}
	return jobs
}
