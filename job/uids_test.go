package job

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseUIDRange(t *testing.T) {
	tests := []struct {
		in   string
		want UIDRange
		err  string
	}{
		{"100000-165535", UIDRange{100000, 165535}, ""},
		{"1000-1000", UIDRange{1000, 1000}, ""},
		{DefaultUIDRange.String(), DefaultUIDRange, ""},
		{"2147483647-2147483647", UIDRange{1<<31 - 1, 1<<31 - 1}, ""},
		{"999-2000", UIDRange{}, "system users"},
		{"0-10", UIDRange{}, "system users"},
		{"2000-1000", UIDRange{}, "first uid is above its last"},
		{"60000-70000", UIDRange{}, "nobody"},
		{"2147483647-2147483648", UIDRange{}, "negative"},
		{"1000", UIDRange{}, "want FIRST-LAST"},
		{"a-b", UIDRange{}, "want FIRST-LAST"},
		{"1000-4294967296", UIDRange{}, "want FIRST-LAST"},
		{"", UIDRange{}, "want FIRST-LAST"},
	}
	for _, tt := range tests {
		got, err := ParseUIDRange(tt.in)
		if tt.err == "" && (err != nil || got != tt.want) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParseUIDRange(%q) = %v, %v; want %v, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// TestDefaultUIDRange: the default range is inside what systemd's
// UIDS-GIDS.md leaves unused (1879048192-2147483647).
func TestDefaultUIDRange(t *testing.T) {
	r := DefaultUIDRange
	if r.First < 1879048192 || r.Last > 2147483647 || r.Last-r.First+1 != 65536 {
		t.Errorf("DefaultUIDRange = %s, want 65536 ids within 1879048192-2147483647", r)
	}
}

func TestUIDRangeCheckFree(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	passwd := write("passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbroken line\nnobody:x:65534:65534::/:/bin/false\n")
	group := write("group", "root:x:0:\nbuild:x:200500:\n")
	r := UIDRange{200000, 299999}
	err := r.CheckFree(passwd, group)
	if err == nil || !strings.Contains(err.Error(), `holds the id 200500 of group "build"`) {
		t.Errorf("CheckFree with group build at 200500 = %v, want it named", err)
	}
	if err := (UIDRange{1000, 1999}).CheckFree(passwd, group); err == nil || !strings.Contains(err.Error(), `user "alice"`) {
		t.Errorf("CheckFree with alice at 1000 = %v, want it named", err)
	}
	// A user whose primary group has no line in the group file.
	carol := write("passwd-carol", "carol:x:1001:400500::/home/carol:/bin/sh\n")
	if err := (UIDRange{400000, 499999}).CheckFree(carol, group); err == nil || !strings.Contains(err.Error(), `holds the id 400500, the primary group of user "carol", in`) {
		t.Errorf("CheckFree with carol's gid at 400500 = %v, want it named", err)
	}
	if err := (UIDRange{300000, 399999}).CheckFree(passwd, filepath.Join(dir, "missing")); err != nil {
		t.Errorf("CheckFree of a free range = %v", err)
	}
}

// TestUIDTable: each owner gets a uid of its own, the same one after the
// table is opened again; a full range is ErrUIDsExhausted, and the owner it
// refused gets nothing recorded.
func TestUIDTable(t *testing.T) {
	dir := t.TempDir()
	r := UIDRange{First: 300000, Last: 300001}
	tab, err := openUIDs(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	a, err := tab.credential("alice")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tab.credential("bob")
	a2, _ := tab.credential("alice")
	if a.UID != 300000 || a.GID != a.UID || b.UID != 300001 || a2.UID != a.UID || len(a.Groups) != 0 || a.Home != "/tmp" {
		t.Fatalf("alice %+v, bob %+v, alice again %+v; want 300000 and 300001, gid = uid, no groups, HOME /tmp", a, b, a2)
	}
	if _, err := tab.credential("carol"); !errors.Is(err, ErrUIDsExhausted) {
		t.Errorf("a third owner on a range of two: %v, want ErrUIDsExhausted", err)
	}
	again, err := openUIDs(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	if a3, _ := again.credential("alice"); a3.UID != a.UID {
		t.Errorf("alice after reopening: %d, want %d", a3.UID, a.UID)
	}
	if b3, _ := again.credential("bob"); b3.UID != b.UID {
		t.Errorf("bob after reopening: %d, want %d", b3.UID, b.UID)
	}
	if _, err := again.credential("carol"); !errors.Is(err, ErrUIDsExhausted) {
		t.Errorf("carol after reopening: %v, want ErrUIDsExhausted", err)
	}
	// A narrower range keeps those it still holds, and gives the others a
	// new uid.
	narrow, err := openUIDs(dir, UIDRange{First: 300001, Last: 300005})
	if err != nil {
		t.Fatal(err)
	}
	if b4, _ := narrow.credential("bob"); b4.UID != 300001 {
		t.Errorf("bob in a range that still holds his uid: %d, want 300001", b4.UID)
	}
	if a4, _ := narrow.credential("alice"); a4.UID != 300002 {
		t.Errorf("alice in a range without her uid: %d, want 300002", a4.UID)
	}
	fi, err := os.Stat(filepath.Join(dir, uidsFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the table's file: %v, %v; want mode 0600", fi, err)
	}
}
