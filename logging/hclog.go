package logging

import (
	"io"
	"log"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// HCLog adapts z to hclog.Logger for hashicorp/raft.
func HCLog(z *zap.Logger) hclog.Logger {
	return &hcAdapter{z: z.WithOptions(zap.AddCallerSkip(1))}
}

type hcAdapter struct {
	z    *zap.Logger
	name string
	args []any
}

func fields(args []any) []zap.Field {
	out := make([]zap.Field, 0, len(args)/2+1)
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			out = append(out, zap.Any("EXTRA_VALUE", args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = "BAD_KEY"
		}
		out = append(out, zap.Any(key, args[i+1]))
	}
	return out
}

func (h *hcAdapter) Log(level hclog.Level, msg string, args ...any) {
	if ce := h.z.Check(zapLevel(level), msg); ce != nil {
		ce.Write(fields(args)...)
	}
}

func zapLevel(l hclog.Level) zapcore.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return zapcore.DebugLevel
	case hclog.Warn:
		return zapcore.WarnLevel
	case hclog.Error:
		return zapcore.ErrorLevel
	default:
		return zapcore.InfoLevel
	}
}

func (h *hcAdapter) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hcAdapter) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hcAdapter) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hcAdapter) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hcAdapter) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hcAdapter) IsTrace() bool { return h.z.Core().Enabled(zapcore.DebugLevel) }
func (h *hcAdapter) IsDebug() bool { return h.z.Core().Enabled(zapcore.DebugLevel) }
func (h *hcAdapter) IsInfo() bool  { return h.z.Core().Enabled(zapcore.InfoLevel) }
func (h *hcAdapter) IsWarn() bool  { return h.z.Core().Enabled(zapcore.WarnLevel) }
func (h *hcAdapter) IsError() bool { return h.z.Core().Enabled(zapcore.ErrorLevel) }

func (h *hcAdapter) ImpliedArgs() []any { return h.args }

func (h *hcAdapter) With(args ...any) hclog.Logger {
	return &hcAdapter{z: h.z.With(fields(args)...), name: h.name, args: append(append([]any{}, h.args...), args...)}
}

func (h *hcAdapter) Name() string { return h.name }

func (h *hcAdapter) Named(name string) hclog.Logger {
	full := name
	if h.name != "" {
		full = h.name + "." + name
	}
	return &hcAdapter{z: h.z.Named(name), name: full, args: h.args}
}

func (h *hcAdapter) ResetNamed(name string) hclog.Logger {
	return &hcAdapter{z: h.z.Named(name), name: name, args: h.args}
}

// SetLevel is a no-op: the zap core's level is the one in force.
func (h *hcAdapter) SetLevel(hclog.Level) {}

func (h *hcAdapter) GetLevel() hclog.Level {
	switch {
	case h.IsDebug():
		return hclog.Debug
	case h.IsInfo():
		return hclog.Info
	case h.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}

func (h *hcAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger { return StdLog(h.z) }

func (h *hcAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &stdWriter{z: h.z}
}
