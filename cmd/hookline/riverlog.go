package main

import (
	"context"
	"log/slog"
	"strings"

	"github.com/riverqueue/river/rivershared/riversharedmaintenance"
)

// riverLogger is the logger hookline gives River: logger, with River's routine
// reports lowered from INFO to DEBUG. River reports at INFO, every few
// seconds, what no operator acts on (its producers' job counts, its
// maintenance services' successful runs): 79 of the 133 lines of a six-minute
// log. At INFO, hookline's log is then what an operator acts on. River's
// configuration takes a logger and offers no level per message, hence a
// handler that rewrites them.
func riverLogger(logger *slog.Logger) *slog.Logger {
	return slog.New(riverHandler{logger.Handler()})
}

// riverHandler lowers River's routine INFO records to DEBUG and passes every
// other record through as it is.
type riverHandler struct{ slog.Handler }

// Handle writes r, at DEBUG when it is one of River's routine reports (and
// then only if DEBUG is enabled: Enabled, asked before the message was known,
// let it through at INFO).
func (h riverHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo && routineRiverReport(r.Message) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the rewriting on a logger with attributes.
func (h riverHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return riverHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the rewriting on a logger with a group.
func (h riverHandler) WithGroup(name string) slog.Handler {
	return riverHandler{h.Handler.WithGroup(name)}
}

// routineRiverReport reports whether a River message is a routine report:
// "producer: Producer job counts" (each queue's producer, every 5 s while its
// counts change) and "<service>: Ran successfully" of the maintenance
// services that clean finished jobs and queues and make scheduled jobs
// available. The job rescuer's "Ran successfully" stays at INFO: it means
// jobs were rescued from a process that died holding them, or discarded.
func routineRiverReport(msg string) bool {
	if strings.HasSuffix(msg, ": Producer job counts") {
		return true
	}
	service, ok := strings.CutSuffix(msg, riversharedmaintenance.LogPrefixRanSuccessfully)
	return ok && !strings.HasSuffix(service, "JobRescuer")
}
