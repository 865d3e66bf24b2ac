package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// defaultParamDir is where rust-fil-proofs looks for parameters when
// FIL_PROOFS_PARAMETER_CACHE is not set (and where `lotus fetch-params`
// puts the ceremony's).
const defaultParamDir = "/var/tmp/filecoin-proof-parameters"

// postParamPrefix starts the file names of the PoSt circuits' parameters.
const postParamPrefix = "v28-proof-of-spacetime-fallback-"

// checkParams finds the parameter folder and makes sure it holds at least
// one PoSt circuit's parameters and verifying key. Without them every
// request would fail minutes later with a library error; refusing to start
// says what to do while the operator is looking.
func checkParams() (string, error) {
	dir := os.Getenv("FIL_PROOFS_PARAMETER_CACHE")
	src := "FIL_PROOFS_PARAMETER_CACHE"
	if dir == "" {
		dir, src = defaultParamDir, "the default, FIL_PROOFS_PARAMETER_CACHE being unset"
	}
	params, _ := filepath.Glob(filepath.Join(dir, postParamPrefix+"*.params"))
	for _, p := range params {
		if _, err := os.Stat(strings.TrimSuffix(p, ".params") + ".vk"); err == nil {
			return dir, nil
		}
	}
	// Which sizes are covered shows only per request: a circuit whose files
	// are missing fails with the library's "No cached parameters found"
	// naming the file.
	return "", fmt.Errorf("no PoSt parameters (%s*.params with its .vk) in %s (%s).\n"+
		"  For 2 KiB and 8 MiB test sectors: run 'make params' in the vsm source tree and set FIL_PROOFS_PARAMETER_CACHE to the folder it prints.\n"+
		"  For mainnet sectors: fetch the ceremony's parameters for your sector size (e.g. 'lotus fetch-params 32GiB') into %s",
		postParamPrefix, dir, src, defaultParamDir)
}
