//go:build !integration

package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// parseWith parses args into model as run does and returns what kong
// printed (help), the exit it asked for (-1: none) and its error.
func parseWith(t *testing.T, model any, args ...string) (out string, exit int, err error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	p, err := newParser(model, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	exit = -1
	func() {
		defer func() {
			if r := recover(); r != nil {
				req, ok := r.(exitRequest)
				if !ok {
					panic(r)
				}
				exit = int(req)
			}
		}()
		_, err = p.Parse(joinNegativeValues(args))
	}()
	return stdout.String() + stderr.String(), exit, err
}

// TestVerbModel: every verb of the whole cli (and every subcommand) gets a
// model of its own from verbModel, which helps, parses and refuses as the
// whole cli does; anything else gets the whole cli.
func TestVerbModel(t *testing.T) {
	p, err := newParser(&cli{}, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var paths [][]string
	var walk func(n *kong.Node, path []string)
	walk = func(n *kong.Node, path []string) {
		for _, c := range n.Children {
			p := append(append([]string(nil), path...), c.Name)
			paths = append(paths, p)
			walk(c, p)
		}
	}
	walk(p.Model.Node, nil)
	if len(paths) < 15 {
		t.Fatalf("the whole cli has %d commands: %q", len(paths), paths)
	}
	for _, path := range paths {
		_, whole := verbModel(path).(*cli)
		if want := path[0] == "completion"; whole != want {
			t.Errorf("verbModel(%q) is the whole cli: %v, want %v", path, whole, want)
		}
		for _, args := range [][]string{
			append(append([]string(nil), path...), "--help"),
			append(append([]string(nil), path...), "--no-such-flag"),
			append(append([]string(nil), path...), "a", "b", "c", "d", "e"),
		} {
			wantOut, wantExit, wantErr := parseWith(t, &cli{}, args...)
			gotOut, gotExit, gotErr := parseWith(t, verbModel(args), args...)
			if gotOut != wantOut || gotExit != wantExit || errText(gotErr) != errText(wantErr) {
				t.Errorf("%q with its own model: exit %d, error %v, output\n%s\nwith the whole cli: exit %d, error %v, output\n%s",
					args, gotExit, gotErr, gotOut, wantExit, wantErr, wantOut)
			}
		}
	}

	// What a verb's flags parse to is the same in either model.
	for _, args := range [][]string{
		{"run", "-d", "--memory", "64M", "--env", "A=1", "--", "/bin/sh", "-c", "exit 3"},
		{"logs", "--offset", "-10", "--follow", "00000000-0000-4000-8000-000000000001"},
		{"serve", "--dev", "--listen", "127.0.0.1:0", "--max-running", "7"},
		{"certs", "client", "--ca-dir", "/x", "--out", "/y", "--user", "alice", "--role", "user"},
		{"list", "--state", "running", "--label", "a=b"},
	} {
		var whole cli
		if _, exit, err := parseWith(t, &whole, args...); err != nil || exit != -1 {
			t.Fatalf("%q: %v (exit %d)", args, err, exit)
		}
		own := verbModel(args)
		if _, exit, err := parseWith(t, own, args...); err != nil || exit != -1 {
			t.Fatalf("%q with its own model: %v (exit %d)", args, err, exit)
		}
		var field string
		for _, f := range reflect.VisibleFields(reflect.TypeFor[cli]()) {
			if strings.EqualFold(f.Name, args[0]) {
				field = f.Name
			}
		}
		want := reflect.ValueOf(&whole).Elem().FieldByName(field).Interface()
		got := reflect.ValueOf(own).Elem().FieldByName(field).Interface()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: its own model parsed %+v, the whole cli %+v", args, got, want)
		}
	}

	for _, args := range [][]string{nil, {"--help"}, {"--version"}, {"rn"}, {"Run"}, {"completion", "bash"}} {
		if _, whole := verbModel(args).(*cli); !whole {
			t.Errorf("verbModel(%q) is not the whole cli", args)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
