package encoderplugin

import (
	"io"
	"log/slog"
	"strings"
)

// hclogTime is the time layout of hclog's JSON lines, which the host parses.
const hclogTime = "2006-01-02T15:04:05.000000Z07:00"

// Logger returns a logger for a plugin process: it writes JSON lines in
// hclog's shape (@level, @message, @timestamp) to w, normally os.Stderr,
// which the host reads and logs as the plugin's, at the plugin's levels.
func Logger(w io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format(hclogTime))
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	})
	return slog.New(h)
}
