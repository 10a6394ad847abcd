package shim

import "os"

// panicEnv, in the shim's own environment, makes the test binary's shim
// panic before the exec (MainForTest). Only the test binary reads it.
const panicEnv = "JOBWORKER_SHIM_TEST_PANIC"

// PanickingLauncher is a Launcher of binary (the test binary) whose shims
// panic before the exec.
func PanickingLauncher(binary string) Launcher {
	return Launcher{Binary: binary, env: []string{panicEnv + "=1"}}
}

// MainForTest is Main in the test binary: a shim from PanickingLauncher
// panics where its steps would run.
func MainForTest() error {
	if launched() && os.Getenv(panicEnv) == "1" {
		return run(func(Spec) error { panic("forced by the test") })
	}
	return Main()
}
