package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteSize is a size in bytes given on the command line as a number with an
// optional K, M, G or T suffix (powers of 1024), such as 100M or 1.5G.
type byteSize uint64

// UnmarshalText parses a size for kong.
func (s *byteSize) UnmarshalText(text []byte) error {
	n, err := parseSize(string(text))
	if err != nil {
		return err
	}
	*s = byteSize(n)
	return nil
}

func (s byteSize) String() string { return formatSize(uint64(s)) }

// parseSize parses a size such as 512, 64K, 100M, 1.5G or 2T (powers of
// 1024; an optional trailing B or iB is accepted, case does not matter).
func parseSize(s string) (uint64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "IB")
	t = strings.TrimSuffix(t, "B")
	mult := uint64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	if t == "" {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional K, M, G or T suffix, like 100M", s)
	}
	if i, err := strconv.ParseUint(t, 10, 64); err == nil {
		if i > math.MaxUint64/mult {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		return i * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || strings.ContainsAny(t, "eEpPxX_") {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional K, M, G or T suffix, like 100M", s)
	}
	v := f * float64(mult)
	if v >= math.MaxUint64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return uint64(v), nil
}

// formatSize formats n bytes for people: B below 1 KiB, otherwise KiB, MiB,
// GiB or TiB with at most one decimal.
func formatSize(n uint64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	v := float64(n)
	unit := ""
	for _, u := range units {
		v /= 1024
		unit = u
		if v < 1024 {
			break
		}
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + unit
}
