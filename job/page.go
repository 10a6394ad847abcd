package job

import (
	"sort"
	"time"
)

// Cursor is a place in List's order (newest first: by creation time, then
// by ID): a page after it holds the jobs that come later, older ones.
type Cursor struct {
	Created time.Time
	ID      string
}

// CursorOf is the place of st in List's order.
func CursorOf(st Status) Cursor { return Cursor{Created: st.Created, ID: st.ID} }

// less reports whether a comes before b in List's order. Times compare
// by their wall clock in nanoseconds, the cursor a page token carries: a
// job's creation time also has a monotonic reading, which orders two jobs
// of one wall time differently than a token could.
func (a Cursor) less(b Cursor) bool {
	if an, bn := a.Created.UnixNano(), b.Created.UnixNano(); an != bn {
		return an > bn
	}
	return a.ID < b.ID
}

// ListPage returns at most n of the jobs that match f, newest first,
// starting after the cursor (nil: at the newest), and whether more
// follow. Only the page's jobs are read in full.
func (m *Manager) ListPage(f Filter, after *Cursor, n int) (page []Status, more bool) {
	type entry struct {
		at Cursor
		j  *job
	}
	m.mu.Lock()
	var es []entry
	for _, j := range m.jobs {
		c := CursorOf(j.st)
		if (after == nil || after.less(c)) && f.match(&j.st) {
			es = append(es, entry{c, j})
		}
	}
	m.mu.Unlock()
	sort.Slice(es, func(a, b int) bool { return es[a].at.less(es[b].at) })
	if len(es) > n {
		es, more = es[:n], true
	}
	page = make([]Status, len(es))
	for i, e := range es {
		page[i] = m.snapshot(e.j)
	}
	return page, more
}
