package main

import "time"

// certsCmd is `jobworker certs`: a small PKI so no other tool is needed.
type certsCmd struct {
	CA     certsCACmd     `cmd:"" name:"ca" help:"Make a CA (ca.crt, ca.key)."`
	Server certsServerCmd `cmd:"" help:"Make a server certificate (server.crt, server.key)."`
	Client certsClientCmd `cmd:"" help:"Make a client certificate with a role (USER.crt, USER.key)."`
}

type certsCACmd struct {
	Out string `required:"" placeholder:"DIR" type:"path" help:"Directory to write ca.crt and ca.key into."`
}

func (c *certsCACmd) Run(e *env) error { return errNotImplemented }

type certsServerCmd struct {
	CADir string        `name:"ca-dir" required:"" placeholder:"DIR" type:"path" help:"Directory holding ca.crt and ca.key."`
	Out   string        `required:"" placeholder:"DIR" type:"path" help:"Directory to write server.crt and server.key into."`
	Name  []string      `required:"" placeholder:"NAME" help:"DNS name of the server (repeatable)."`
	IP    []string      `name:"ip" placeholder:"IP" help:"IP address of the server (repeatable)."`
	Valid time.Duration `default:"8760h" placeholder:"DUR" help:"Validity."`
}

func (c *certsServerCmd) Run(e *env) error { return errNotImplemented }

type certsClientCmd struct {
	CADir string        `name:"ca-dir" required:"" placeholder:"DIR" type:"path" help:"Directory holding ca.crt and ca.key."`
	Out   string        `required:"" placeholder:"DIR" type:"path" help:"Directory to write USER.crt and USER.key into."`
	User  string        `required:"" placeholder:"NAME" help:"User name (the certificate's Common Name)."`
	Role  string        `required:"" enum:"admin,user,reader" placeholder:"ROLE" help:"Role: admin, user or reader."`
	Valid time.Duration `default:"2160h" placeholder:"DUR" help:"Validity."`
}

func (c *certsClientCmd) Run(e *env) error { return errNotImplemented }
