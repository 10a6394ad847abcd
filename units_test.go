//go:build !integration

package main

import (
	"math"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"0", 0, false},
		{"1", 1, false},
		{"1023", 1023, false},
		{"1K", 1024, false},
		{"1k", 1024, false},
		{"1KiB", 1024, false},
		{"1kb", 1024, false},
		{"100M", 100 << 20, false},
		{"1.5G", 3 << 29, false},
		{"0.5K", 512, false},
		{"2T", 2 << 40, false},
		{" 64K ", 64 << 10, false},
		{"18446744073709551615", math.MaxUint64, false},
		{"18446744073709551616", 0, true},
		{"16777216T", 0, true},
		{"", 0, true},
		{"K", 0, true},
		{"-1", 0, true},
		{"-1M", 0, true},
		{"1X", 0, true},
		{"1e3", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
		{"1.5.5M", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   uint64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{1536, "1.5 KiB"},
		{1<<20 - 1, "1024 KiB"},
		{1 << 20, "1 MiB"},
		{100 << 20, "100 MiB"},
		{3 << 29, "1.5 GiB"},
		{1 << 40, "1 TiB"},
		{1 << 50, "1024 TiB"},
	}
	for _, tt := range tests {
		if got := formatSize(tt.in); got != tt.want {
			t.Errorf("formatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
