package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"

	"github.com/jobworker/jobworker/client"
)

// clientFlags are the flags every client verb shares.
type clientFlags struct {
	Server string `env:"JOBWORKER_SERVER" default:"localhost:50051" placeholder:"ADDR" help:"Server address (host:port)."`
	CA     string `env:"JOBWORKER_CA" name:"ca" placeholder:"FILE" help:"CA that signed the server's certificate (PEM)."`
	Cert   string `env:"JOBWORKER_CERT" placeholder:"FILE" help:"Client certificate (PEM)."`
	Key    string `env:"JOBWORKER_KEY" placeholder:"FILE" help:"Client private key (PEM)."`
	JSON   bool   `env:"JOBWORKER_JSON" name:"json" help:"Print the API's messages as protobuf JSON, one object per line."`
}

func (f *clientFlags) config() client.Config {
	return client.Config{Server: f.Server, CA: f.CA, Cert: f.Cert, Key: f.Key}
}

// connect dials the server with mutual TLS.
func (f *clientFlags) connect() (*client.Conn, error) {
	var missing []string
	for _, v := range []struct{ flag, value string }{{"--ca", f.CA}, {"--cert", f.Cert}, {"--key", f.Key}} {
		if v.value == "" {
			missing = append(missing, v.flag)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing %s (or JOBWORKER_CA, JOBWORKER_CERT, JOBWORKER_KEY): the CLI needs the server's CA and a client certificate; for a dev server, run the export lines `jobworker serve --dev` printed", strings.Join(missing, ", "))
	}
	return client.Dial(f.config())
}

// rpcError turns an RPC error into one line that says what failed and what
// to do.
func (f *clientFlags) rpcError(what string, err error) error {
	return f.config().Explain(what, err)
}

// streamOutput prints a job's output from offset to w (following it to the
// job's end if asked), resuming by itself when the connection drops, and
// returns the offset after the last byte printed.
func streamOutput(ctx context.Context, api jobworkerv1.JobWorkerServiceClient, id string, offset int64, follow bool, w, notes io.Writer, asJSON bool) (int64, error) {
	return client.Follow(ctx, api, id, offset, follow, printOutput(w, notes, asJSON), notes)
}

// printOutput prints the chunks of a job's output as they come: the data as
// it is, with a note of what the server's output cap dropped before it; or
// each message as JSON.
func printOutput(w, notes io.Writer, asJSON bool) func(*jobworkerv1.GetJobOutputResponse) error {
	return func(r *jobworkerv1.GetJobOutputResponse) error {
		if asJSON {
			return printJSON(w, r)
		}
		noteDropped(notes, r)
		_, err := w.Write(r.GetData())
		return err
	}
}

// noteDropped says on notes what the server's output cap dropped before r,
// if anything.
func noteDropped(notes io.Writer, r *jobworkerv1.GetJobOutputResponse) {
	if r.GetDropped() > 0 {
		fmt.Fprintf(notes, "jobworker: %d bytes of output before offset %d were dropped by the server's output cap\n", r.GetDropped(), r.GetOffset())
	}
}
