package main

import "time"

// serveCmd is `jobworker serve`: the daemon.
type serveCmd struct {
	Listen             string        `default:"127.0.0.1:50051" placeholder:"ADDR" help:"Address to listen on (host:port)."`
	StateDir           string        `default:"/var/lib/jobworker" placeholder:"DIR" type:"path" help:"Where job records and output are kept."`
	Dev                bool          `help:"Development mode: make a PKI in <state-dir>/dev on first start and use it."`
	Cert               string        `env:"JOBWORKER_SERVER_CERT" placeholder:"FILE" type:"path" help:"Server certificate (PEM)."`
	Key                string        `env:"JOBWORKER_SERVER_KEY" placeholder:"FILE" type:"path" help:"Server private key (PEM)."`
	ClientCA           string        `name:"client-ca" env:"JOBWORKER_CLIENT_CA" placeholder:"FILE" type:"path" help:"CA that signs client certificates (PEM)."`
	RunAs              string        `default:"nobody" placeholder:"USER" help:"User jobs run as; root must be asked for explicitly."`
	CgroupParent       string        `placeholder:"PATH" help:"cgroup v2 directory jobs are placed under (default: the server's own cgroup, or <it>/jobworker when that is the root)."`
	DefaultMemoryLimit byteSize      `default:"512M" placeholder:"SIZE" help:"memory.max of a job that asks for none."`
	DefaultPidsLimit   uint64        `default:"1024" placeholder:"N" help:"pids.max of a job that asks for none."`
	MemoryCapacity     byteSize      `placeholder:"SIZE" help:"Memory all running jobs may reserve in all (default: 3/4 of MemTotal)."`
	MaxRunning         int           `default:"256" placeholder:"N" help:"Most jobs running at once; more wait PENDING."`
	StopGrace          time.Duration `default:"10s" placeholder:"DUR" help:"Time between SIGTERM and kill when a job is stopped."`
	RingSize           byteSize      `default:"256K" placeholder:"SIZE" help:"Output kept in memory per job (the newest part)."`
	OutputCap          byteSize      `default:"1G" placeholder:"SIZE" help:"Output kept on disk per job; past it the oldest is dropped."`
	Retain             time.Duration `default:"168h" placeholder:"DUR" help:"How long finished jobs are kept."`
}

// Run starts the server.
func (c *serveCmd) Run(e *env) error {
	return errNotImplemented
}
