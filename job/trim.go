package job

import "fmt"

// A finished job's arguments and environment (up to MaxRequestBytes) are
// kept in its record on disk only: what the server holds in memory for
// each of the thousands of jobs it retains is small and fixed whatever
// they ran. Get, List and Watch read them back from the record.

// trimLocked lets go of the arguments and environment of j, whose final
// record holding them is on disk. Called with m.mu held.
func (j *job) trimLocked() {
	if !j.st.State.Ended() || j.trimmed {
		return
	}
	j.st.Args, j.st.Env = nil, nil
	j.trimmed = true
}

// withRecord fills in st, a snapshot of j taken with trimmed (j.trimmed
// then), what trimLocked let go of, from j's record. A record that cannot
// be read any more leaves them out, and says so in Damaged.
func (j *job) withRecord(st Status, trimmed bool) Status {
	if !trimmed {
		return st
	}
	rec, err := readRecord(j.dir)
	if err != nil {
		msg := fmt.Sprintf("its arguments and environment could not be read back from its record: %v", err)
		if st.Damaged != "" {
			msg = st.Damaged + "; " + msg
		}
		st.Damaged = msg
		return st
	}
	st.Args, st.Env = rec.Args, rec.Env
	return st
}
