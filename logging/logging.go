// Package logging builds vsm's zap loggers and adapts the loggers that
// hashicorp libraries expect (hclog for raft, the std logger for
// memberlist) so every line ends up in one zap stream.
package logging

import (
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a console logger on stderr at the given level
// (debug, info, warn, error).
func New(level string) (*zap.Logger, error) {
	return NewTo(os.Stderr, level)
}

// NewTo is New writing to w; tests and child processes use it.
func NewTo(w io.Writer, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeLevel = zapcore.CapitalLevelEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), lvl)
	return zap.New(core), nil
}

// StdLog adapts z for libraries that take a *log.Logger (memberlist).
// Their lines carry a "[LEVEL]" prefix, which picks the zap level.
func StdLog(z *zap.Logger) *log.Logger {
	return log.New(&stdWriter{z: z}, "", 0)
}

type stdWriter struct{ z *zap.Logger }

func (w *stdWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	switch {
	case strings.HasPrefix(msg, "[DEBUG]"), strings.HasPrefix(msg, "[TRACE]"):
		w.z.Debug(strings.TrimSpace(msg[7:]))
	case strings.HasPrefix(msg, "[WARN]"):
		w.z.Warn(strings.TrimSpace(msg[6:]))
	case strings.HasPrefix(msg, "[ERR]"):
		w.z.Error(strings.TrimSpace(msg[5:]))
	case strings.HasPrefix(msg, "[ERROR]"):
		w.z.Error(strings.TrimSpace(msg[7:]))
	case strings.HasPrefix(msg, "[INFO]"):
		w.z.Info(strings.TrimSpace(msg[6:]))
	default:
		w.z.Info(msg)
	}
	return len(p), nil
}
