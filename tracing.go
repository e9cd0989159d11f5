package laneway

import (
	"context"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/tracing"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// The OpenTelemetry hooks of App and Engine. Every one is reached only
// behind a nil check of the tracer, so with no TracerProvider the command
// and consume paths run exactly as before (see docs/architecture.md,
// "Tracing").

// traceContext is the trace context an outbox row carries; the zero value
// writes nothing.
type traceContext struct {
	parent *envelope.TraceParent
	ext    *envelope.Extensions
}

func traceContextOf(ctx context.Context) traceContext {
	p, ext := tracing.ParentOf(ctx)
	return traceContext{parent: p, ext: ext}
}

// traceOf is the trace context of the rows Save queues: the span of ctx
// (Process, or the handler execution that raised the events).
func (tx *Tx) traceOf(ctx context.Context) traceContext {
	if !tx.traced {
		return traceContext{}
	}
	return traceContextOf(ctx)
}

// tracedKey marks the context of a traced handler execution, so the rows
// its unit of work writes carry its span even when the app itself has no
// TracerProvider (the engine was given one).
type tracedKey struct{}

// traced reports whether the units of work of ctx stamp their rows with
// the trace context.
func (a *App) traced(ctx context.Context) bool {
	return a.tr != nil || ctx.Value(tracedKey{}) != nil
}

func (a *App) processTraced(ctx context.Context, cmd Command, o processOptions) (err error) {
	c, err := a.prepare(ctx, cmd, o)
	if err != nil {
		return err
	}
	ctx, span := a.tr.StartProcess(ctx, envelope.TypeString(a.dom.name, c.meta.name, 1), c.meta.aggregate.category, int(c.priority), c.async)
	defer func() { tracing.End(span, err) }()
	c.trace = traceContextOf(ctx)
	return a.process(ctx, cmd, c)
}

func (a *App) processBatchTraced(ctx context.Context, cmds []Command, opts []ProcessOption) (err error) {
	ctx, span := a.tr.StartBatch(ctx, len(cmds))
	defer func() { tracing.End(span, err) }()
	return a.processBatch(ctx, cmds, opts)
}

// tracer is the engine's tracer: its own provider, else the app's.
func (e *Engine) tracer() *tracing.Tracer {
	if tr := tracing.New(e.opts.TracerProvider); tr != nil {
		return tr
	}
	return e.app.tr
}

// tracePublish is the relay's hook (nil when tracing is off).
func tracePublish(tr *tracing.Tracer) func(context.Context, []lanewaystore.OutboxRow, []lanewaybroker.Publication) func(error) {
	if tr == nil {
		return nil
	}
	return tr.StartPublish
}

// traceHandle wraps a subscription's handler in a span per execution; with
// tracing off it returns handle itself.
func traceHandle(tr *tracing.Tracer, group string, handle func(context.Context, *consumer.Message) error) func(context.Context, *consumer.Message) error {
	if tr == nil {
		return handle
	}
	return func(ctx context.Context, m *consumer.Message) (err error) {
		ctx, span := tr.StartHandler(ctx, handled(group, m))
		defer func() { tracing.End(span, err) }()
		ctx = context.WithValue(ctx, tracedKey{}, true)
		return handle(ctx, m)
	}
}

// traceDeadLetter is a subscription's dead-letter hook (nil when off).
func traceDeadLetter(tr *tracing.Tracer, group string) func(*consumer.Message, string, string) {
	if tr == nil {
		return nil
	}
	return func(m *consumer.Message, dlq, reason string) {
		tr.DeadLettered(handled(group, m), dlq, reason)
	}
}

func handled(group string, m *consumer.Message) tracing.Handled {
	return tracing.Handled{
		Handler: group, Lane: m.Lane.String(), Stream: m.Stream, EntryID: m.EntryID,
		Attempt: m.Attempt, Envelope: &m.Envelope,
	}
}
