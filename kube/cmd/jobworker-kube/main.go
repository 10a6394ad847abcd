// Command jobworker-kube makes jobworker hosts Kubernetes nodes: it serves
// one Virtual Kubelet node per host given to it, and runs the pods the
// kube-scheduler places there as jobs of that host (package provider).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/jobworker/jobworker/client"
	"github.com/jobworker/jobworker/kube/provider"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// kubeletVersion is what the nodes report as their kubelet's version: the
// Kubernetes release whose API the provider speaks, marked as jobworker's.
const kubeletVersion = "v1.37.1-jobworker"

type cli struct {
	Kubeconfig string        `env:"KUBECONFIG" placeholder:"FILE" type:"path" help:"kubeconfig of the cluster (its credential must be allowed what a kubelet may do)."`
	Node       []string      `required:"" placeholder:"NAME=HOST:PORT" env:"JOBWORKER_KUBE_NODE" help:"A virtual node and the jobworker server it runs pods on (repeatable)."`
	CA         string        `required:"" placeholder:"FILE" type:"path" env:"JOBWORKER_KUBE_CA" help:"CA that signed the jobworker servers' certificates."`
	Cert       string        `required:"" placeholder:"FILE" type:"path" env:"JOBWORKER_KUBE_CERT" help:"Client certificate for the jobworker servers (role admin): every pod's job runs as this identity."`
	Key        string        `required:"" placeholder:"FILE" type:"path" env:"JOBWORKER_KUBE_KEY" help:"Its key."`
	Listen     string        `default:"127.0.0.1:10250" placeholder:"IP:PORT" env:"JOBWORKER_KUBE_LISTEN" help:"Kubelet API address of the first node (logs, stats); each further node takes the next port. The IP is the nodes' InternalIP."`
	NodeIP     string        `placeholder:"IP" env:"JOBWORKER_KUBE_NODE_IP" help:"The nodes' InternalIP, where the API server reaches the kubelet API (default: the --listen IP)."`
	TLSCert    string        `required:"" name:"kubelet-cert" placeholder:"FILE" type:"path" env:"JOBWORKER_KUBE_KUBELET_CERT" help:"Serving certificate of the kubelet API."`
	TLSKey     string        `required:"" name:"kubelet-key" placeholder:"FILE" type:"path" env:"JOBWORKER_KUBE_KUBELET_KEY" help:"Its key."`
	ClientCA   string        `required:"" name:"kubelet-client-ca" placeholder:"FILE" type:"path" env:"JOBWORKER_KUBE_KUBELET_CLIENT_CA" help:"CA of the API server's kubelet client certificate (--kubelet-client-certificate): only its holders may read logs and stats."`
	Image      string        `default:"${image}" env:"JOBWORKER_KUBE_IMAGE" help:"The placeholder image a pod must name."`
	Check      time.Duration `name:"check-interval" default:"2s" placeholder:"DUR" env:"JOBWORKER_KUBE_CHECK_INTERVAL" help:"How often each host's health is checked."`
	Version    bool          `help:"Print the version and exit."`
}

func main() {
	var c cli
	kong.Parse(&c, kong.Name("jobworker-kube"),
		kong.Description("Serve jobworker hosts as Virtual Kubelet nodes of a Kubernetes cluster."),
		kong.Vars{"image": provider.DefaultImage})
	if c.Version {
		fmt.Println("jobworker-kube", version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, &c, log); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "jobworker-kube:", err)
		os.Exit(1)
	}
}

// hostSpec is one --node.
type hostSpec struct{ name, server string }

func parseNodes(specs []string) ([]hostSpec, error) {
	var hosts []hostSpec
	seen := map[string]bool{}
	for _, s := range specs {
		name, server, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--node %q: want NAME=HOST:PORT", s)
		}
		if _, _, err := net.SplitHostPort(server); err != nil {
			return nil, fmt.Errorf("--node %q: want NAME=HOST:PORT", s)
		}
		if seen[name] {
			return nil, fmt.Errorf("--node %q: node %s is named twice", s, name)
		}
		seen[name] = true
		hosts = append(hosts, hostSpec{name, server})
	}
	return hosts, nil
}

func run(ctx context.Context, c *cli, log *slog.Logger) error {
	hosts, err := parseNodes(c.Node)
	if err != nil {
		return err
	}
	ip, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: want IP:PORT", c.Listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("--listen %q: want IP:PORT", c.Listen)
	}
	nodeIP := c.NodeIP
	if nodeIP == "" {
		nodeIP = ip
	}
	rest, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig}, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	tlsConfig, err := servingTLS(c.TLSCert, c.TLSKey, c.ClientCA)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(hosts))
	for i, h := range hosts {
		listen := net.JoinHostPort(ip, strconv.Itoa(port+i))
		conn, err := client.Dial(client.Config{Server: h.server, CA: c.CA, Cert: c.Cert, Key: c.Key})
		if err != nil {
			return err
		}
		defer conn.Close()
		// Each node on its own: one whose host is down waits for it
		// without holding up the others.
		wg.Go(func() {
			n, p, err := newNode(ctx, kube, conn, h, listen, nodeIP, int32(port+i), tlsConfig, c.Image, c.Check, log.With("node", h.name))
			if err != nil {
				errs <- err
				return
			}
			defer p.Wait()
			errs <- n.Run(ctx)
		})
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
	}
	cancel()
	wg.Wait()
	return first
}

// newNode builds one virtual node for host h: its status keeper, its
// provider (which finds the jobs of its pods again), and the Virtual
// Kubelet node that drives both.
func newNode(ctx context.Context, kube kubernetes.Interface, conn *client.Conn, h hostSpec, listen, nodeIP string, port int32,
	tlsConfig *tls.Config, image string, check time.Duration, log *slog.Logger) (*nodeutil.Node, *provider.Provider, error) {
	status := provider.NewNode(conn, h.name, nodeIP, port, kubeletVersion)
	status.Check(ctx, 5*time.Second)
	go status.Run(ctx, check)

	eb := record.NewBroadcaster()
	eb.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events(corev1.NamespaceAll)})
	context.AfterFunc(ctx, eb.Shutdown)
	rec := eb.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "jobworker-kube", Host: h.name})

	var p *provider.Provider
	mux := http.NewServeMux()
	n, err := nodeutil.NewNode(h.name, func(pc nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		*pc.Node = status.Spec()
		var err error
		p, err = provider.New(ctx, provider.Config{
			NodeName: h.name, HostIP: nodeIP, API: conn, Kube: kube, Recorder: rec, Image: image, Log: log,
		})
		return p, status, err
	},
		nodeutil.WithClient(kube),
		func(cfg *nodeutil.NodeConfig) error {
			cfg.HTTPListenAddr = listen
			cfg.TLSConfig = tlsConfig
			cfg.Handler = provider.KeepTailLines(mux)
			cfg.EventRecorder = rec
			cfg.NumWorkers = 4
			cfg.InformerResyncPeriod = 30 * time.Second
			return nil
		},
		nodeutil.AttachProviderRoutes(mux),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("node %s: %w", h.name, err)
	}
	return n, p, nil
}

// servingTLS is the kubelet API's TLS: its serving certificate, and only
// clients with a certificate from clientCA (the API server's kubelet
// client certificate).
func servingTLS(cert, key, clientCA string) (*tls.Config, error) {
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("--kubelet-cert: %w", err)
	}
	pem, err := os.ReadFile(clientCA)
	if err != nil {
		return nil, fmt.Errorf("--kubelet-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--kubelet-client-ca %s: no certificate in it", clientCA)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{kp},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}
