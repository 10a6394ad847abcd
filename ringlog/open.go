package ringlog

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Gap is a range of offsets, [Start, End), whose bytes are missing from a
// reopened log's files: a segment between two others is gone or shorter
// than the next one's offset says.
type Gap struct {
	Start, End int64
}

// DamageError is what Open found wrong with a log's directory. The log Open
// returns with it serves every byte that is still there.
type DamageError struct {
	Dir string
	// Gaps are the missing ranges of offsets between the oldest and the
	// newest byte kept, oldest first.
	Gaps []Gap
	// Problems are the files Open could not use, each with the reason: the
	// directory itself (it is gone: fs.ErrNotExist), a segment it could not
	// look at, a segment longer than the next one's offset allows.
	Problems []error
}

func (e *DamageError) Error() string {
	var parts []string
	for _, g := range e.Gaps {
		parts = append(parts, fmt.Sprintf("bytes %d to %d are missing", g.Start, g.End-1))
	}
	for _, p := range e.Problems {
		parts = append(parts, p.Error())
	}
	return fmt.Sprintf("ringlog: log %s is damaged: %s", e.Dir, strings.Join(parts, "; "))
}

// Unwrap returns the Problems, so that errors.Is(err, fs.ErrNotExist)
// says whether a file (the directory, say) was not there.
func (e *DamageError) Unwrap() []error { return e.Problems }

// Open reopens the log in dir after a restart, closed to writes: every byte
// still on disk reads at the offset it was written at.
//
// Open always returns a log. When the directory holds less than a whole
// log, the error is a *DamageError saying what is missing, and the log
// serves the rest: a segment missing or cut short between two others is a
// gap, and a read in it returns a *DroppedError with Missing set whose
// Start is the next byte there is (a Reader reads on from there); a
// directory that is gone or cannot be listed is an empty log. Open cannot
// tell a last segment cut short from a shorter output.
func Open(dir string, opts Options) (*Log, error) {
	l := &Log{dir: dir, opts: opts.withDefaults(), closed: true, fsync: (*os.File).Sync}
	segs, problems, err := listSegments(dir)
	if err != nil {
		return l, &DamageError{Dir: dir, Problems: []error{fmt.Errorf("the directory cannot be read: %w", err)}}
	}
	var gaps []Gap
	for i := 1; i < len(segs); i++ {
		prev, s := &segs[i-1], segs[i]
		switch end := prev.base + prev.size; {
		case end < s.base:
			gaps = append(gaps, Gap{Start: end, End: s.base})
		case end > s.base:
			// Never written so: the next segment is the one whose name
			// says where its bytes are; these of prev are not served.
			problems = append(problems, fmt.Errorf("segment %s runs past offset %d, where the next begins: its bytes from there on are not served", filepath.Base(l.segmentPath(prev.base)), s.base))
			prev.size = s.base - prev.base
		}
	}
	for i := range segs {
		if err := l.openIndex(&segs[i]); err != nil {
			problems = append(problems, err)
		}
	}
	l.segs = segs
	if len(segs) > 0 {
		l.start = segs[0].base
		last := segs[len(segs)-1]
		l.size = last.base + last.size
	}
	if len(gaps) > 0 || len(problems) > 0 {
		return l, &DamageError{Dir: dir, Gaps: gaps, Problems: problems}
	}
	return l, nil
}

// listSegments reads the segments of dir, oldest first. A file with a
// segment's name that cannot be looked at or is not a regular file is a
// problem, left out of the segments. Other files are not the log's.
func listSegments(dir string) (segs []segment, problems []error, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		base, ok := segmentBase(e.Name())
		if !ok {
			continue
		}
		info, err := e.Info()
		if err == nil && !info.Mode().IsRegular() {
			err = fmt.Errorf("not a regular file (%v)", info.Mode().Type())
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("segment %s: %w", e.Name(), err))
			continue
		}
		segs = append(segs, segment{base: base, size: info.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].base < segs[j].base })
	return segs, problems, nil
}

// segmentBase is the offset a segment file's name gives, if name is
// spelled as segmentPath spells it.
func segmentBase(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(digits, 10, 64)
	return base, err == nil && base >= 0
}
