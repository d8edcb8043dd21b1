package redisstore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// RouteClientLogs sends go-redis's own diagnostic lines (pool dial failures
// and the like), which it otherwise prints to stderr through a global
// logger, to l at debug level. The store's errors already say what failed;
// these lines are detail for whoever turns debug logging on. go-redis keeps
// one logger per process, so only the program's wiring should call this.
func RouteClientLogs(l *slog.Logger) {
	redis.SetLogger(clientLogger{l})
}

type clientLogger struct{ l *slog.Logger }

func (c clientLogger) Printf(ctx context.Context, format string, v ...any) {
	if c.l.Enabled(ctx, slog.LevelDebug) {
		c.l.DebugContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
	}
}
