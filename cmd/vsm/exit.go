package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// exitCode lets a command choose its exit status (e.g. proving check exits 1
// when a sector is faulty) while every other error exits 1.
func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}
