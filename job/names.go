package job

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// The rules of the names users give jobs and of the names they find jobs
// by: a job's name and labels, a prefix of a job's ID, a signal's name.
// Each has one function here, which the server and the CLI both use.

// Bounds of names and labels.
const (
	MaxNameBytes       = 128
	MaxLabels          = 32
	MaxLabelKeyBytes   = 63
	MaxLabelValueBytes = 255
	// MinIDPrefix is the shortest prefix of a job ID that names a job.
	MinIDPrefix = 8
)

// isNameByte reports whether c may be in a job's name or a label's key:
// an ASCII letter or digit, '.', '_' or '-'.
func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// CheckName checks a job's name: 1-MaxNameBytes bytes of ASCII letters,
// digits, '.', '_' and '-', starting with a letter or digit (so that it
// never reads as a flag or a path). Names need not be unique.
func CheckName(name string) error {
	if name == "" {
		return invalid("empty job name")
	}
	if len(name) > MaxNameBytes {
		return invalid("job name is %d bytes, over the limit of %d", len(name), MaxNameBytes)
	}
	if !isAlnum(name[0]) {
		return invalid("job name %.64q: start it with a letter or digit", name)
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return invalid("job name %.64q: use ASCII letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}

// CheckLabels checks a job's labels: at most MaxLabels; each key 1-63
// bytes of ASCII letters, digits, '.', '_', '-' and '/', starting and
// ending with a letter or digit; each value at most 255 bytes of printable
// UTF-8 (strconv.IsPrint: no control characters).
func CheckLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return invalid("%d labels, over the limit of %d", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if err := CheckLabel(k, v); err != nil {
			return err
		}
	}
	return nil
}

// CheckLabel checks one label (see CheckLabels).
func CheckLabel(k, v string) error {
	if k == "" {
		return invalid("empty label key")
	}
	if len(k) > MaxLabelKeyBytes {
		return invalid("label key %.64q is %d bytes, over the limit of %d", k, len(k), MaxLabelKeyBytes)
	}
	if !isAlnum(k[0]) || !isAlnum(k[len(k)-1]) {
		return invalid("label key %q: start and end it with a letter or digit", k)
	}
	for i := 0; i < len(k); i++ {
		if !isNameByte(k[i]) && k[i] != '/' {
			return invalid("label key %q: use ASCII letters, digits, '.', '_', '-' and '/'", k)
		}
	}
	if len(v) > MaxLabelValueBytes {
		return invalid("label %s: the value is %d bytes, over the limit of %d", k, len(v), MaxLabelValueBytes)
	}
	if !utf8.ValidString(v) {
		return invalid("label %s: the value is not valid UTF-8", k)
	}
	for _, r := range v {
		if !strconv.IsPrint(r) {
			return invalid("label %s: the value holds a character that is not printable (%U)", k, r)
		}
	}
	return nil
}

// ValidIDPrefix reports whether p can be a prefix of a job ID that names a
// job: at least MinIDPrefix characters of a lower-case UUID, dashes where
// a UUID has them. A whole ID is a prefix of itself.
func ValidIDPrefix(p string) bool {
	if len(p) < MinIDPrefix || len(p) > 36 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// ErrAmbiguous is a prefix of more than one job's ID; an *AmbiguousError
// says which.
var ErrAmbiguous = errors.New("the job ID prefix matches more than one job")

// AmbiguousError is a prefix of the IDs of several jobs the caller may
// see. IDs lists them (at most maxCandidates), sorted.
type AmbiguousError struct {
	Prefix string
	IDs    []string
	More   int // candidates not listed
}

// maxCandidates bounds the IDs an AmbiguousError lists.
const maxCandidates = 10

func (e *AmbiguousError) Error() string {
	s := fmt.Sprintf("job ID prefix %s matches %d jobs: %s", e.Prefix, len(e.IDs)+e.More, strings.Join(e.IDs, ", "))
	if e.More > 0 {
		s += fmt.Sprintf(" and %d more", e.More)
	}
	return s + "; give more of the ID"
}

func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }

// Resolve is the ID of the one job whose ID starts with prefix among the
// jobs whose owner visible accepts: the caller's. A whole ID is itself. A
// prefix that matches none of them is ErrNotFound, whatever other jobs it
// matches, so that no job of another user resolves and none leaks; one
// that matches several is an *AmbiguousError listing those candidates
// only. prefix must pass ValidIDPrefix (otherwise ErrInvalid).
func (m *Manager) Resolve(prefix string, visible func(owner string) bool) (string, error) {
	if !ValidIDPrefix(prefix) {
		return "", invalid("job ID %q: want a UUID like 6f9619ff-8b86-4011-b42d-00c04fc964ff, or a unique prefix of it of at least %d characters", truncateID(prefix), MinIDPrefix)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if j, ok := m.jobs[prefix]; ok {
		if visible(j.st.Owner) {
			return prefix, nil
		}
		return "", ErrNotFound
	}
	var ids []string
	for id, j := range m.jobs {
		if strings.HasPrefix(id, prefix) && visible(j.st.Owner) {
			ids = append(ids, id)
		}
	}
	switch len(ids) {
	case 0:
		return "", ErrNotFound
	case 1:
		return ids[0], nil
	}
	slices.Sort(ids)
	e := &AmbiguousError{Prefix: prefix, IDs: ids}
	if len(ids) > maxCandidates {
		e.IDs, e.More = ids[:maxCandidates], len(ids)-maxCandidates
	}
	return "", e
}

// signals are the signals a job may be sent (SignalJob), by name.
var signals = []struct {
	name string
	sig  unix.Signal
}{
	{"HUP", unix.SIGHUP},
	{"INT", unix.SIGINT},
	{"QUIT", unix.SIGQUIT},
	{"KILL", unix.SIGKILL},
	{"USR1", unix.SIGUSR1},
	{"USR2", unix.SIGUSR2},
	{"TERM", unix.SIGTERM},
	{"CONT", unix.SIGCONT},
	{"WINCH", unix.SIGWINCH},
}

// SignalNames are the names of the signals ParseSignal takes.
func SignalNames() []string {
	names := make([]string, len(signals))
	for i, s := range signals {
		names[i] = s.name
	}
	return names
}

// ParseSignal is the signal s names: one of SignalNames, in any case of
// its ASCII letters, with or without "SIG", or its Linux number in decimal
// digits without a sign or a leading zero ("10" is USR1). Nothing else
// names a signal: no other spelling of a number, and no letter outside
// ASCII that upper-cases to one of a name's.
func ParseSignal(s string) (unix.Signal, error) {
	if isDecimal(s) {
		n, err := strconv.Atoi(s)
		for _, v := range signals {
			if err == nil && int(v.sig) == n {
				return v.sig, nil
			}
		}
		return 0, invalid("signal %.32s is not one a job may be sent: use one of %s, by name or number", s, strings.Join(SignalNames(), ", "))
	}
	name := strings.TrimPrefix(asciiUpper(s), "SIG")
	for _, v := range signals {
		if v.name == name {
			return v.sig, nil
		}
	}
	return 0, invalid("signal %.32q is not one a job may be sent: use one of %s, by name or number", s, strings.Join(SignalNames(), ", "))
}

// isDecimal reports whether s is a number as ParseSignal takes one: ASCII
// digits, the first not 0 unless it is the only one.
func isDecimal(s string) bool {
	if s == "" || s[0] == '0' && len(s) > 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// asciiUpper is s with its ASCII lower-case letters upper-cased and every
// other byte as it is (strings.ToUpper also maps letters outside ASCII to
// ASCII ones: U+017F to S).
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// SignalName is sig's name in SignalNames, or its number.
func SignalName(sig unix.Signal) string {
	for _, v := range signals {
		if v.sig == sig {
			return v.name
		}
	}
	return strconv.Itoa(int(sig))
}
