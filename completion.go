package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
)

// completionCmd is `jobworker completion`: prints a completion script built
// from the command model, so it never drifts from the real flags.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"Shell: bash, zsh or fish."`
}

// Run prints the script. Install it with, for bash,
// `jobworker completion bash > /etc/bash_completion.d/jobworker`.
func (c *completionCmd) Run(e *env, k *kong.Kong) error {
	nodes := visibleNodes(k.Model.Node, "")
	switch c.Shell {
	case "bash":
		return writeBash(e.stdout, nodes)
	case "zsh":
		fmt.Fprintln(e.stdout, "autoload -U +X bashcompinit && bashcompinit")
		return writeBash(e.stdout, nodes)
	default:
		return writeFish(e.stdout, nodes)
	}
}

// completionNode is one command path with what may follow it.
type completionNode struct {
	path  string // "" for the root, "certs client" for a nested command
	subs  []*kong.Node
	flags []*kong.Flag
}

func visibleNodes(n *kong.Node, path string) []completionNode {
	cn := completionNode{path: path}
	for _, f := range n.Flags {
		if !f.Hidden {
			cn.flags = append(cn.flags, f)
		}
	}
	out := []completionNode{cn}
	for _, child := range n.Children {
		if child.Hidden {
			continue
		}
		out[0].subs = append(out[0].subs, child)
		out = append(out, visibleNodes(child, strings.TrimSpace(path+" "+child.Name))...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

func writeBash(w io.Writer, nodes []completionNode) error {
	var b strings.Builder
	b.WriteString("# bash completion for jobworker\n_jobworker() {\n")
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} path= w i words\n")
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tw=${COMP_WORDS[i]}\n\t\tcase \"$path $w\" in\n")
	var paths []string
	for _, n := range nodes {
		if n.path != "" {
			paths = append(paths, fmt.Sprintf("%q", " "+n.path))
		}
	}
	fmt.Fprintf(&b, "\t\t%s) path=\"$path $w\" ;;\n\t\tesac\n\tdone\n\tcase $path in\n", strings.Join(paths, " | "))
	for _, n := range nodes {
		var words []string
		for _, s := range n.subs {
			words = append(words, s.Name)
		}
		for _, f := range n.flags {
			words = append(words, "--"+f.Name)
			if f.Short != 0 {
				words = append(words, "-"+string(f.Short))
			}
		}
		fmt.Fprintf(&b, "\t%q) words=%q ;;\n", prefixSpace(n.path), strings.Join(words, " "))
	}
	b.WriteString("\tesac\n\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\n")
	b.WriteString("complete -o default -F _jobworker jobworker\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func prefixSpace(p string) string {
	if p == "" {
		return ""
	}
	return " " + p
}

func writeFish(w io.Writer, nodes []completionNode) error {
	var b strings.Builder
	b.WriteString("# fish completion for jobworker\ncomplete -c jobworker -f\n")
	for _, n := range nodes {
		cond := "__fish_use_subcommand"
		if n.path != "" {
			parts := strings.Fields(n.path)
			cond = "__fish_seen_subcommand_from " + parts[len(parts)-1]
		}
		for _, s := range n.subs {
			fmt.Fprintf(&b, "complete -c jobworker -n %q -a %s -d %q\n", cond, s.Name, s.Help)
		}
		if n.path == "" {
			continue
		}
		for _, f := range n.flags {
			short := ""
			if f.Short != 0 {
				short = " -s " + string(f.Short)
			}
			fmt.Fprintf(&b, "complete -c jobworker -n %q -l %s%s -d %q\n", cond, f.Name, short, f.Help)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
