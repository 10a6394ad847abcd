//go:build !integration

package job

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"nightly-build_2.1", true},
		{"9lives", true},
		{strings.Repeat("x", MaxNameBytes), true},
		{strings.Repeat("x", MaxNameBytes+1), false},
		{"", false},
		{"-rf", false},
		{".hidden", false},
		{"_x", false},
		{"has space", false},
		{"a/b", false},
		{"tab\there", false},
		{"ünïcode", false},
		{"nul\x00", false},
		{"semi;colon", false},
	}
	for _, tt := range tests {
		err := CheckName(tt.name)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckName(%q) = %v, want ok %v (an ErrInvalid otherwise)", tt.name, err, tt.ok)
		}
	}
}

func TestCheckLabels(t *testing.T) {
	many := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	tests := []struct {
		what   string
		labels map[string]string
		ok     bool
	}{
		{"none", nil, true},
		{"simple", map[string]string{"team": "infra"}, true},
		{"empty value", map[string]string{"flag": ""}, true},
		{"prefixed key", map[string]string{"example.com/tier": "batch"}, true},
		{"value with spaces and unicode", map[string]string{"note": "run by Zoë, twice"}, true},
		{"key of 63 bytes", map[string]string{strings.Repeat("k", MaxLabelKeyBytes): "v"}, true},
		{"key of 64 bytes", map[string]string{strings.Repeat("k", MaxLabelKeyBytes+1): "v"}, false},
		{"value of 255 bytes", map[string]string{"k": strings.Repeat("v", MaxLabelValueBytes)}, true},
		{"value of 256 bytes", map[string]string{"k": strings.Repeat("v", MaxLabelValueBytes+1)}, false},
		{"32 labels", many(MaxLabels), true},
		{"33 labels", many(MaxLabels + 1), false},
		{"empty key", map[string]string{"": "v"}, false},
		{"key starting with -", map[string]string{"-k": "v"}, false},
		{"key ending with /", map[string]string{"k/": "v"}, false},
		{"key with =", map[string]string{"a=b": "v"}, false},
		{"key with space", map[string]string{"a b": "v"}, false},
		{"value with a newline", map[string]string{"k": "a\nb"}, false},
		{"value with ESC", map[string]string{"k": "\x1b[2J"}, false},
		{"value not UTF-8", map[string]string{"k": "\xff"}, false},
		{"value with U+200B", map[string]string{"k": "a\u200bb"}, false},
	}
	for _, tt := range tests {
		err := CheckLabels(tt.labels)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckLabels(%s) = %v, want ok %v (an ErrInvalid otherwise)", tt.what, err, tt.ok)
		}
	}
}

func TestRequestValidateNameAndLabels(t *testing.T) {
	r := Request{Command: "/bin/true", Name: "ok", Labels: map[string]string{"a": "b"}}
	if err := r.Validate(); err != nil {
		t.Errorf("Validate with a good name and labels = %v", err)
	}
	r.Name = "not ok"
	if err := r.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Validate with name %q = %v, want ErrInvalid", r.Name, err)
	}
	r.Name, r.Labels = "", map[string]string{"a b": ""}
	if err := r.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Validate with label key %q = %v, want ErrInvalid", "a b", err)
	}
}

func TestValidIDPrefix(t *testing.T) {
	tests := []struct {
		p  string
		ok bool
	}{
		{"6f9619ff", true},
		{"6f9619ff-", true},
		{"6f9619ff-8b8", true},
		{"6f9619ff-8b86-4011-b42d-00c04fc964ff", true},
		{"6f9619f", false},                               // 7 characters
		{"6f9619ff-8b86-4011-b42d-00c04fc964ff0", false}, // longer than an ID
		{"6F9619FF", false},                              // upper case
		{"6f9619fg", false},
		{"6f9619ff8", false}, // a digit where the dash goes
		{"6f9619ff-8b86-", true},
		{"6f9619ff-8b86x", false},
		{"", false},
		{"--------", false},
	}
	for _, tt := range tests {
		if got := ValidIDPrefix(tt.p); got != tt.ok {
			t.Errorf("ValidIDPrefix(%q) = %v, want %v", tt.p, got, tt.ok)
		}
	}
}

// TestResolve: a prefix names the one job of the caller's that has it; a
// prefix of another user's job only is not found, and an ambiguous one
// lists the caller's candidates only.
func TestResolve(t *testing.T) {
	jobs := map[string]string{ // ID: owner
		"aaaaaaaa-0000-4000-8000-000000000001": "alice",
		"aaaaaaaa-0000-4000-8000-000000000002": "alice",
		"aaaaaaaa-1111-4000-8000-000000000003": "bob",
		"bbbbbbbb-0000-4000-8000-000000000004": "bob",
		"cccccccc-0000-4000-8000-000000000005": "alice",
	}
	m := &Manager{jobs: map[string]*job{}}
	for id, owner := range jobs {
		m.jobs[id] = &job{st: Status{ID: id, Owner: owner}}
	}
	as := func(user string) func(string) bool {
		return func(owner string) bool { return user == "admin" || owner == user }
	}
	tests := []struct {
		caller, prefix string
		want           string   // the ID resolved
		ambiguous      []string // or the candidates listed
		err            error
	}{
		{"alice", "cccccccc", "cccccccc-0000-4000-8000-000000000005", nil, nil},
		{"alice", "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000001", nil, nil},
		{"alice", "aaaaaaaa", "", []string{"aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"}, ErrAmbiguous},
		{"admin", "aaaaaaaa", "", []string{"aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002", "aaaaaaaa-1111-4000-8000-000000000003"}, ErrAmbiguous},
		{"bob", "aaaaaaaa", "aaaaaaaa-1111-4000-8000-000000000003", nil, nil}, // alice's do not count
		{"alice", "aaaaaaaa-1", "", nil, ErrNotFound},                         // bob's only
		{"alice", "bbbbbbbb", "", nil, ErrNotFound},
		{"alice", "bbbbbbbb-0000-4000-8000-000000000004", "", nil, ErrNotFound}, // bob's whole ID
		{"admin", "bbbbbbbb", "bbbbbbbb-0000-4000-8000-000000000004", nil, nil},
		{"alice", "dddddddd", "", nil, ErrNotFound},
		{"alice", "ccccccc", "", nil, ErrInvalid}, // too short
		{"alice", "CCCCCCCC", "", nil, ErrInvalid},
	}
	for _, tt := range tests {
		got, err := m.Resolve(tt.prefix, as(tt.caller))
		if got != tt.want || !errors.Is(err, tt.err) || tt.err == nil && err != nil {
			t.Errorf("%s: Resolve(%q) = %q, %v; want %q, %v", tt.caller, tt.prefix, got, err, tt.want, tt.err)
			continue
		}
		var ae *AmbiguousError
		if errors.As(err, &ae) {
			if !slices.Equal(ae.IDs, tt.ambiguous) || ae.More != 0 {
				t.Errorf("%s: Resolve(%q) lists %q (and %d more), want %q", tt.caller, tt.prefix, ae.IDs, ae.More, tt.ambiguous)
			}
			for _, id := range tt.ambiguous {
				if !strings.Contains(err.Error(), id) {
					t.Errorf("%s: Resolve(%q) = %q, which does not name candidate %s", tt.caller, tt.prefix, err, id)
				}
			}
		}
	}
}

// TestResolveManyCandidates: an ambiguous prefix lists at most
// maxCandidates IDs and counts the rest.
func TestResolveManyCandidates(t *testing.T) {
	m := &Manager{jobs: map[string]*job{}}
	for i := range maxCandidates + 3 {
		id := fmt.Sprintf("aaaaaaaa-0000-4000-8000-%012d", i)
		m.jobs[id] = &job{st: Status{ID: id, Owner: "alice"}}
	}
	_, err := m.Resolve("aaaaaaaa", func(string) bool { return true })
	var ae *AmbiguousError
	if !errors.As(err, &ae) || len(ae.IDs) != maxCandidates || ae.More != 3 || !strings.Contains(err.Error(), "and 3 more") {
		t.Errorf("Resolve of a prefix of %d jobs = %v, want %d listed and 3 more", maxCandidates+3, err, maxCandidates)
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		s    string
		want unix.Signal
		ok   bool
	}{
		{"HUP", unix.SIGHUP, true},
		{"int", unix.SIGINT, true},
		{"SIGQUIT", unix.SIGQUIT, true},
		{"sigusr1", unix.SIGUSR1, true},
		{"USR2", unix.SIGUSR2, true},
		{"TERM", unix.SIGTERM, true},
		{"KILL", unix.SIGKILL, true},
		{"CONT", unix.SIGCONT, true},
		{"WINCH", unix.SIGWINCH, true},
		{"1", unix.SIGHUP, true},
		{"10", unix.SIGUSR1, true},
		{"12", unix.SIGUSR2, true},
		{"9", unix.SIGKILL, true},
		{"28", unix.SIGWINCH, true},
		{"STOP", 0, false}, // not among them: pause is the way to stop a job for a while
		{"SIGSTOP", 0, false},
		{"19", 0, false},
		{"0", 0, false},
		{"-9", 0, false},
		{"SEGV", 0, false},
		{"", 0, false},
		{"SIG", 0, false},
		{"USR1 ", 0, false},
		{"99999999999999999999", 0, false},
		{"+10", 0, false}, // a number is decimal digits only
		{" 10", 0, false},
		{"0x0a", 0, false},
		{"010", 0, false},
		{"\u017fIGUSR1", 0, false}, // U+017F, which upper-cases to S: names are ASCII
		{"U\u017fR1", 0, false},
		{"\u0131nt", 0, false}, // U+0131, which upper-cases to I
		{"SIGSIGUSR1", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSignal(tt.s)
		if got != tt.want || (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v, ok %v", tt.s, got, err, tt.want, tt.ok)
		}
	}
	for _, name := range SignalNames() {
		sig, err := ParseSignal(name)
		if err != nil || SignalName(sig) != name {
			t.Errorf("SignalName(ParseSignal(%q)) = %q, %v", name, SignalName(sig), err)
		}
	}
}

func TestFilterNameAndLabels(t *testing.T) {
	st := Status{Owner: "alice", State: StatePaused, Name: "build", Labels: map[string]string{"team": "infra", "tier": "batch"}}
	tests := []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{Name: "build"}, true},
		{Filter{Name: "buil"}, false},
		{Filter{Labels: map[string]string{"team": "infra"}}, true},
		{Filter{Labels: map[string]string{"team": "infra", "tier": "batch"}}, true},
		{Filter{Labels: map[string]string{"team": "infra", "tier": "web"}}, false}, // all must match
		{Filter{Labels: map[string]string{"owner": ""}}, false},                    // a missing label is not an empty one
		{Filter{Name: "build", States: []State{StatePaused}}, true},
		{Filter{Name: "build", States: []State{StateRunning}}, false},
	}
	for _, tt := range tests {
		if got := tt.f.match(&st); got != tt.want {
			t.Errorf("Filter%+v.match = %v, want %v", tt.f, got, tt.want)
		}
	}
}
