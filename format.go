package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	jobworkerv1 "github.com/jobworker/jobworker/proto/jobworker/v1"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// printJSON prints a message as protobuf JSON on one line.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Human output.

func stateName(s jobworkerv1.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

func reasonName(r jobworkerv1.FailureReason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "FAILURE_REASON_"))
}

// outcome is a job's state in a few words: "completed", "failed (exit code
// 3)", "stopped (signal 9)", "completed (damaged)".
func outcome(j *jobworkerv1.Job) string {
	s := stateName(j.GetState())
	var detail []string
	switch j.GetReason() {
	case jobworkerv1.FailureReason_FAILURE_REASON_UNSPECIFIED, jobworkerv1.FailureReason_FAILURE_REASON_EXIT_CODE, jobworkerv1.FailureReason_FAILURE_REASON_SIGNAL:
	default:
		detail = append(detail, reasonName(j.GetReason()))
	}
	if j.GetDamaged() != "" && j.GetReason() != jobworkerv1.FailureReason_FAILURE_REASON_DAMAGED {
		// The state is the record's; what is damaged is the output.
		detail = append(detail, "damaged")
	}
	if j.ExitCode != nil {
		detail = append(detail, fmt.Sprintf("exit code %d", j.GetExitCode()))
	}
	if j.Signal != nil {
		detail = append(detail, fmt.Sprintf("signal %d", j.GetSignal()))
	}
	if len(detail) > 0 {
		s += " (" + strings.Join(detail, ", ") + ")"
	}
	return s
}

// printable reports whether s is valid UTF-8 of printable characters and
// spaces only (strconv.IsPrint): nothing in it can move a terminal's
// cursor, change its colours or title, ring its bell, or pass for a space
// or a line break it is not.
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// safe is s for human output: as it is when printable, quoted as Go
// quotes strings otherwise, so that no control byte (below 0x20, 0x7f, C1),
// invalid UTF-8 or invisible character of a job's command, arguments,
// message or owner reaches the terminal raw, and the text still reads back
// to the same bytes (strconv.Unquote). Every string that comes from the
// server goes through it (or commandLine) before it is printed.
func safe(s string) string {
	if printable(s) {
		return s
	}
	return strconv.Quote(s)
}

// commandLine is the job's command and arguments, separated by spaces; an
// argument that is empty, holds a space, a quote or a shell metacharacter
// of quoting, or is not printable (see safe) is quoted as Go quotes
// strings, so that the line splits back into the same arguments.
func commandLine(j *jobworkerv1.Job) string {
	parts := append([]string{j.GetCommand()}, j.GetArgs()...)
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, " \t\n'\"\\$") || !printable(p) {
			parts[i] = strconv.Quote(p)
		}
	}
	return strings.Join(parts, " ")
}

// ownerName is the job's owner for human output: "(unknown)" for a damaged
// job whose record does not say.
func ownerName(j *jobworkerv1.Job) string {
	if j.GetOwner() == "" {
		return "(unknown)"
	}
	return safe(j.GetOwner())
}

func printJob(w io.Writer, j *jobworkerv1.Job) {
	row := func(k, v string) { fmt.Fprintf(w, "%-9s %s\n", k, v) }
	row("ID", safe(j.GetId()))
	if j.GetName() != "" {
		row("Name", safe(j.GetName()))
	}
	if len(j.GetLabels()) > 0 {
		row("Labels", labelsLine(j.GetLabels()))
	}
	row("State", outcome(j))
	if j.GetMessage() != "" {
		row("Message", safe(j.GetMessage()))
	}
	if j.GetDamaged() != "" {
		row("Damaged", safe(j.GetDamaged()))
	}
	row("Owner", ownerName(j))
	row("Command", commandLine(j))
	times := "created " + humanTime(j.GetCreateTime().AsTime())
	if j.StartTime != nil {
		times += ", started " + humanTime(j.GetStartTime().AsTime())
	}
	if j.EndTime != nil && j.StartTime != nil {
		times += ", ran " + j.GetEndTime().AsTime().Sub(j.GetStartTime().AsTime()).Round(time.Millisecond).String()
	} else if j.StartTime != nil {
		times += ", running " + time.Since(j.GetStartTime().AsTime()).Round(time.Second).String()
	}
	row("Time", times)
	row("Limits", limitsLine(j.GetLimits()))
	if j.GetNetwork() == jobworkerv1.Network_NETWORK_NONE {
		row("Network", "none (loopback only)")
	} else {
		row("Network", "host")
	}
	if names := j.GetSecretEnvNames(); len(names) > 0 {
		quoted := make([]string, len(names))
		for i, n := range names {
			quoted[i] = safe(n)
		}
		row("Secrets", strings.Join(quoted, " ")+" (names only)")
	}
	u := j.GetUsage()
	row("CPU", fmt.Sprintf("%v (user %v, system %v)", usec(u.GetCpuUsageUsec()), usec(u.GetCpuUserUsec()), usec(u.GetCpuSystemUsec())))
	row("Memory", fmt.Sprintf("%s (peak %s), OOM kills %d", formatSize(u.GetMemoryCurrentBytes()), formatSize(u.GetMemoryPeakBytes()), u.GetOomKills()))
	row("I/O", fmt.Sprintf("read %s in %d ops, wrote %s in %d ops", formatSize(u.GetIoReadBytes()), u.GetIoReadOps(), formatSize(u.GetIoWriteBytes()), u.GetIoWriteOps()))
	row("Pids", strconv.FormatUint(u.GetPidsCurrent(), 10))
	out := formatSize(uint64(j.GetOutputSize()))
	if j.GetOutputStart() > 0 {
		out += fmt.Sprintf(" (the first %s dropped by the output cap)", formatSize(uint64(j.GetOutputStart())))
	}
	row("Output", out)
}

// labelsLine is a job's labels as K=V, sorted by key, each made safe.
func labelsLine(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = safe(k) + "=" + safe(labels[k])
	}
	return strings.Join(parts, ", ")
}

// labelsColumn is a job's labels for the list: K=V, sorted by key, each
// made safe, separated by commas, cut short past maxLabelsColumn bytes
// (status shows them all); "-" for none.
func labelsColumn(j *jobworkerv1.Job) string {
	if len(j.GetLabels()) == 0 {
		return "-"
	}
	return cutColumn(strings.ReplaceAll(labelsLine(j.GetLabels()), ", ", ","), maxLabelsColumn)
}

// maxLabelsColumn is the longest labels column of the list.
const maxLabelsColumn = 40

// cutColumn is s cut to at most n bytes, between two characters (half of
// one is invalid UTF-8), ending in "..." when it was cut.
func cutColumn(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// jobName is the job's name for the list: "-" for none.
func jobName(j *jobworkerv1.Job) string {
	if j.GetName() == "" {
		return "-"
	}
	return safe(j.GetName())
}

func usec(n uint64) time.Duration {
	return (time.Duration(n) * time.Microsecond).Round(time.Millisecond)
}

func limitsLine(l *jobworkerv1.Limits) string {
	if l == nil {
		return "none"
	}
	var parts []string
	if l.CpuWeight != nil {
		parts = append(parts, fmt.Sprintf("cpu weight %d", l.GetCpuWeight()))
	}
	if l.Cpus != nil {
		parts = append(parts, fmt.Sprintf("cpus %g", l.GetCpus()))
	}
	if l.MemoryMaxBytes != nil {
		m := "memory " + formatSize(l.GetMemoryMaxBytes())
		if l.MemoryHighBytes != nil {
			m += " (high " + formatSize(l.GetMemoryHighBytes()) + ")"
		}
		parts = append(parts, m)
	}
	if l.IoWeight != nil {
		parts = append(parts, fmt.Sprintf("io weight %d", l.GetIoWeight()))
	}
	for _, m := range l.GetIoMax() {
		parts = append(parts, fmt.Sprintf("io %s rbps %d wbps %d riops %d wiops %d", safe(m.GetDevice()), m.GetReadBps(), m.GetWriteBps(), m.GetReadIops(), m.GetWriteIops()))
	}
	if l.PidsMax != nil {
		parts = append(parts, fmt.Sprintf("pids %d", l.GetPidsMax()))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func printJobTable(w io.Writer, jobs []*jobworkerv1.Job) error {
	sort.SliceStable(jobs, func(a, b int) bool {
		return jobs[a].GetCreateTime().AsTime().After(jobs[b].GetCreateTime().AsTime())
	})
	fmt.Fprintf(w, "%-36s  %-28s  %-12s  %-16s  %-16s  %-25s  %s\n", "ID", "STATE", "OWNER", "NAME", "LABELS", "CREATED", "COMMAND")
	for _, j := range jobs {
		cmd := cutColumn(commandLine(j), 60)
		fmt.Fprintf(w, "%-36s  %-28s  %-12s  %-16s  %-16s  %-25s  %s\n", safe(j.GetId()), outcome(j), ownerName(j), jobName(j), labelsColumn(j), humanTime(j.GetCreateTime().AsTime()), cmd)
	}
	return nil
}

func printServerStatus(w io.Writer, r *jobworkerv1.GetServerStatusResponse) error {
	row := func(k, v string) { fmt.Fprintf(w, "%-11s %s\n", k, v) }
	row("Version", safe(r.GetVersion()))
	row("Jobs", fmt.Sprintf("%d running (at most %d), %d pending", r.GetJobsRunning(), r.GetMaxRunning(), r.GetJobsPending()))
	row("Memory", fmt.Sprintf("%s reserved of %s capacity", formatSize(r.GetMemoryReservedBytes()), formatSize(r.GetMemoryCapacityBytes())))
	u := r.GetUsage()
	row("Usage", fmt.Sprintf("cpu %v, memory %s, io read %s wrote %s, pids %d, OOM kills %d", usec(u.GetCpuUsageUsec()), formatSize(u.GetMemoryCurrentBytes()), formatSize(u.GetIoReadBytes()), formatSize(u.GetIoWriteBytes()), u.GetPidsCurrent(), u.GetOomKills()))
	ctl := safe(strings.Join(r.GetCgroupControllers(), " "))
	if ctl == "" {
		ctl = "none (jobs get their cgroups, without limits)"
	}
	row("Controllers", ctl)
	return nil
}

// humanTimeLayout is how human output shows a time: local, to the second,
// with the zone's offset, so that a time read from another host's output
// (or pasted into a report) still says when it was.
const humanTimeLayout = "2006-01-02 15:04:05 -07:00"

func humanTime(t time.Time) string { return t.Local().Format(humanTimeLayout) }
