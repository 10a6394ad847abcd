package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// loadServeConfig is kong's loader for `serve --config FILE`: a JSON object
// whose keys are serve's flag names (state-dir, state_dir or stateDir). It differs from kong.JSON
// in two ways that operators count on:
//   - precedence is flag > JOBWORKER_* variable > file > default: kong
//     would let the file win over the environment, so a flag whose variable
//     is set is left to the variable;
//   - a key that names no flag of serve is an error that names it, rather
//     than a setting silently ignored (a typo, or a flag of another verb).
func loadServeConfig(r io.Reader) (kong.Resolver, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("the configuration file is not a JSON object: %w", err)
	}
	// kong's JSON resolver reads state_dir and stateDir; state-dir, the
	// flag's own spelling, is the one an operator writes first.
	norm := make(map[string]json.RawMessage, len(keys))
	for k, v := range keys {
		norm[strings.ReplaceAll(k, "-", "_")] = v
	}
	nb, err := json.Marshal(norm)
	if err != nil {
		return nil, err
	}
	base, err := kong.JSON(bytes.NewReader(nb))
	if err != nil {
		return nil, err
	}
	return &serveConfig{base: base, keys: keys}, nil
}

type serveConfig struct {
	base kong.Resolver
	keys map[string]json.RawMessage
}

// Validate refuses keys that name no flag of serve.
func (c *serveConfig) Validate(app *kong.Application) error {
	known := map[string]bool{}
	for _, n := range app.Children {
		if n.Name != "serve" {
			continue
		}
		for _, f := range n.Flags {
			for _, k := range configKeys(f.Name) {
				known[k] = true
			}
		}
	}
	var unknown []string
	for k := range c.keys {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("configuration file: unknown key %q: the keys are serve's flag names, such as \"state-dir\"", unknown[0])
	}
	return c.base.Validate(app)
}

// Resolve is the file's value of flag, unless one of the flag's
// environment variables is set: the variable, applied before, stands.
func (c *serveConfig) Resolve(ctx *kong.Context, parent *kong.Path, flag *kong.Flag) (any, error) {
	for _, e := range flag.Envs {
		if _, ok := os.LookupEnv(e); ok {
			return nil, nil
		}
	}
	return c.base.Resolve(ctx, parent, flag)
}

// configKeys are the spellings of a flag's name that kong's JSON resolver
// takes: as it is, with _ for -, and in camelCase.
func configKeys(name string) []string {
	parts := strings.Split(name, "-")
	camel := parts[0]
	for _, p := range parts[1:] {
		if p != "" {
			camel += strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return []string{name, strings.ReplaceAll(name, "-", "_"), camel}
}
