package main

import (
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/logging"
)

// newLogger builds the zap logger on stderr at the given level.
func newLogger(level string) (*zap.Logger, error) { return logging.New(level) }

// cliLogger builds the logger from the global --log-level flag.
func cliLogger(c *cli.Context) (*zap.Logger, error) { return newLogger(c.String("log-level")) }
