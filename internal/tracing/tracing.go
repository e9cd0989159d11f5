// Package tracing makes Laneway's OpenTelemetry spans: one for Process, one
// per relay publish (linked to the span that wrote the outbox row, since the
// relay runs later and possibly elsewhere), one per handler execution (a
// child of the span that wrote the message), and one per dead-lettered
// entry. The trace context crosses the broker inside the envelope
// (metadata.headers.traceparent, see docs/architecture.md).
//
// A nil *Tracer is tracing turned off: callers check for nil before calling,
// so the hot paths cost nothing when no TracerProvider was given.
package tracing

import (
	"context"
	"encoding/json"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// ScopeName is the instrumentation scope of every Laneway span.
const ScopeName = "github.com/laneway/laneway"

// Attribute keys of Laneway's spans.
const (
	AttrCommand   = "laneway.command"   // type string of the command, "Shop.PlaceOrder.v1"
	AttrAggregate = "laneway.aggregate" // aggregate category, "order"
	AttrPriority  = "laneway.priority"  // integer priority of the message
	AttrAsync     = "laneway.async"     // the command went to the outbox
	AttrBatch     = "laneway.batch"     // commands in a ProcessBatch call
	AttrLane      = "laneway.lane"      // "primary" or "backfill"
	AttrStream    = "laneway.stream"    // physical broker stream
	AttrHandler   = "laneway.handler"   // handler name (consumer group)
	AttrAttempt   = "laneway.attempt"   // 1 on the first delivery
	AttrMessageID = "laneway.message_id"
	AttrType      = "laneway.type"       // type string of the message
	AttrDLQStream = "laneway.dlq.stream" // "" when the DLQ is off and the entry was dropped
	AttrReason    = "laneway.dlq.reason"
	AttrOutboxRow = "laneway.outbox.row_id"
)

// EventDeadLettered is the span event recorded when an entry is moved to a
// dead-letter stream (or dropped with the DLQ off).
const EventDeadLettered = "laneway.dead_lettered"

// Tracer makes Laneway's spans from an application's TracerProvider.
type Tracer struct {
	t trace.Tracer
}

// New returns a Tracer, or nil (tracing off) when tp is nil.
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{t: tp.Tracer(ScopeName)}
}

// StartProcess starts the span of one Process call.
func (t *Tracer) StartProcess(ctx context.Context, command, aggregate string, priority int, async bool) (context.Context, trace.Span) {
	return t.t.Start(ctx, "process "+command, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
		attribute.String(AttrCommand, command),
		attribute.String(AttrAggregate, aggregate),
		attribute.Int(AttrPriority, priority),
		attribute.Bool(AttrAsync, async),
	))
}

// StartBatch starts the span of one ProcessBatch call.
func (t *Tracer) StartBatch(ctx context.Context, n int) (context.Context, trace.Span) {
	return t.t.Start(ctx, "process batch", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.Int(AttrBatch, n)))
}

// Handled describes one handler execution.
type Handled struct {
	Handler  string
	Lane     string
	Stream   string
	EntryID  string
	Attempt  int64
	Envelope *envelope.Envelope
}

// StartHandler starts the span of one handler execution, a child of the
// span that wrote the message (when the envelope carries one).
func (t *Tracer) StartHandler(ctx context.Context, h Handled) (context.Context, trace.Span) {
	md := &h.Envelope.Metadata
	if sc := SpanContextOf(md); sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return t.t.Start(ctx, "handle "+h.Handler, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String(AttrLane, h.Lane),
		attribute.Int(AttrPriority, md.Domain.Priority),
		attribute.String(AttrStream, h.Stream),
		attribute.String(AttrHandler, h.Handler),
		attribute.Int64(AttrAttempt, h.Attempt),
		attribute.String(AttrMessageID, md.Headers.ID),
		attribute.String(AttrType, md.Headers.Type),
	))
}

// DeadLettered records the move of an entry to dlq (or its drop, dlq "")
// as a span of the message's trace carrying EventDeadLettered: the failed
// attempts' spans have ended by the time the consumer gives up on it.
func (t *Tracer) DeadLettered(h Handled, dlq, reason string) {
	ctx := context.Background()
	if sc := SpanContextOf(&h.Envelope.Metadata); sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	attrs := []attribute.KeyValue{
		attribute.String(AttrLane, h.Lane),
		attribute.Int(AttrPriority, h.Envelope.Metadata.Domain.Priority),
		attribute.String(AttrStream, h.Stream),
		attribute.String(AttrHandler, h.Handler),
		attribute.Int64(AttrAttempt, h.Attempt),
		attribute.String(AttrMessageID, h.Envelope.Metadata.Headers.ID),
		attribute.String(AttrDLQStream, dlq),
		attribute.String(AttrReason, reason),
	}
	_, span := t.t.Start(ctx, "dead_letter "+h.Handler, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	span.AddEvent(EventDeadLettered, trace.WithAttributes(attrs...))
	span.SetStatus(codes.Error, reason)
	span.End()
}

// StartPublish starts one span per row the relay publishes, each the root
// of its own trace with a link to the span that wrote the row; the returned
// function ends them with the publish's outcome.
func (t *Tracer) StartPublish(ctx context.Context, rows []lanewaystore.OutboxRow, pubs []lanewaybroker.Publication) (end func(error)) {
	spans := make([]trace.Span, len(rows))
	for i, r := range rows {
		stream := pubs[i].Stream
		opts := []trace.SpanStartOption{
			trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String(AttrStream, stream),
				attribute.Int(AttrPriority, r.Priority),
				attribute.String(AttrMessageID, r.MessageID),
				attribute.Int64(AttrOutboxRow, r.ID),
				attribute.String(AttrType, r.Type),
			),
		}
		if sc := spanContextOfRow(r.Metadata); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
		_, spans[i] = t.t.Start(ctx, "publish "+stream, opts...)
	}
	return func(err error) {
		for _, s := range spans {
			End(s, err)
		}
	}
}

// End ends span, marking it failed when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// ParentOf returns the trace context of ctx's span in the envelope's form
// (zero when ctx holds no valid span).
func ParentOf(ctx context.Context) (*envelope.TraceParent, *envelope.Extensions) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil, nil
	}
	tp := &envelope.TraceParent{TraceID: sc.TraceID().String(), ParentID: sc.SpanID().String(), Sampled: sc.IsSampled()}
	if ts := sc.TraceState().String(); ts != "" {
		return tp, &envelope.Extensions{TraceState: ts}
	}
	return tp, nil
}

// SpanContextOf returns the remote span context an envelope carries; it is
// not valid when the envelope has none or its ids are not W3C hex ids.
func SpanContextOf(md *envelope.Metadata) trace.SpanContext {
	tp := md.Headers.TraceParent
	if tp == nil || tp.TraceID == "" {
		return trace.SpanContext{}
	}
	tid, err := trace.TraceIDFromHex(tp.TraceID)
	if err != nil {
		return trace.SpanContext{}
	}
	sid, err := trace.SpanIDFromHex(tp.ParentID)
	if err != nil {
		return trace.SpanContext{}
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true}
	if tp.Sampled {
		cfg.TraceFlags = trace.FlagsSampled
	}
	if md.Extensions != nil && md.Extensions.TraceState != "" {
		// A tracestate that does not parse is dropped; the ids still hold.
		if ts, err := trace.ParseTraceState(md.Extensions.TraceState); err == nil {
			cfg.TraceState = ts
		}
	}
	return trace.NewSpanContext(cfg)
}

// spanContextOfRow reads the trace context out of an outbox row's metadata.
func spanContextOfRow(metadata []byte) trace.SpanContext {
	var md struct {
		Headers struct {
			TraceParent *envelope.TraceParent `json:"traceparent"`
		} `json:"headers"`
		Extensions *envelope.Extensions `json:"extensions"`
	}
	if json.Unmarshal(metadata, &md) != nil {
		return trace.SpanContext{}
	}
	return SpanContextOf(&envelope.Metadata{
		Headers: envelope.Headers{TraceParent: md.Headers.TraceParent}, Extensions: md.Extensions,
	})
}
