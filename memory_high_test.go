//go:build !integration

package main

import (
	"math"
	"testing"

	"github.com/jobworker/jobworker/job"
)

// TestMemoryHighDefault: README's "the default limits
// (--default-memory-limit 512M, ..., --memory-high 0.9 of the hard
// limit)": serve's defaults reach the job manager's configuration, and a
// job that asks for no memory.high gets 0.9 of its hard limit, the default
// one or its own: 460.8 MiB of 512 MiB, as in the README's example output.
func TestMemoryHighDefault(t *testing.T) {
	unsetJobworkerEnv(t)
	c, err := parseCLI(t, "serve")
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Serve.jobConfig(nil, nil, nil, 1<<40, nil)
	if cfg.MemoryHighFraction != 0.9 || cfg.Defaults.MemoryMax != 512<<20 {
		t.Fatalf("serve's job config: memory high fraction %v, default memory limit %d; want 0.9 and %d", cfg.MemoryHighFraction, cfg.Defaults.MemoryMax, 512<<20)
	}
	high := cfg.MemoryHigh(cfg.Defaults.MemoryMax)
	if high != 483183820 || formatSize(high) != "460.8 MiB" {
		t.Errorf("MemoryHigh(%d) = %d (%s), want 483183820 (460.8 MiB)", cfg.Defaults.MemoryMax, high, formatSize(high))
	}
	if got := cfg.MemoryHigh(64 << 20); got != 60397977 {
		t.Errorf("MemoryHigh(64 MiB) = %d, want 60397977 (0.9 of it, rounded down)", got)
	}

	c, err = parseCLI(t, "serve", "--memory-high", "0.5")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Serve.jobConfig(nil, nil, nil, 1<<40, nil).MemoryHighFraction; got != 0.5 {
		t.Errorf("serve --memory-high 0.5: fraction %v, want 0.5", got)
	}
}

// TestMemoryHighDerivation: memory.high is the fraction of the hard limit,
// rounded down, and not set (0) without a hard limit or for a fraction
// outside (0, 1) ("0 or 1: not set", says --memory-high's help).
func TestMemoryHighDerivation(t *testing.T) {
	tests := []struct {
		fraction float64
		max      uint64
		want     uint64
	}{
		{0.9, 512 << 20, 483183820},
		{0.9, 1 << 20, 943718},
		{0.5, 3, 1},
		{0.9, 0, 0},
		{0, 512 << 20, 0},
		{1, 512 << 20, 0},
		{1.5, 512 << 20, 0},
		{-0.1, 512 << 20, 0},
		{math.NaN(), 512 << 20, 0},
		{0.999999, 1 << 30, 1073740750},
		{1e-9, 1 << 30, 1},
	}
	for _, tt := range tests {
		if got := (job.Config{MemoryHighFraction: tt.fraction}).MemoryHigh(tt.max); got != tt.want {
			t.Errorf("Config{MemoryHighFraction: %v}.MemoryHigh(%d) = %d, want %d", tt.fraction, tt.max, got, tt.want)
		}
	}
}
