package laneway_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewayconfig"
)

// tracedDomain: OpenAccount raises Opened; two handlers project it.
// "Projector" fails the first attempt on account "1" (a retry), "Auditor"
// always fails on account "2" (the DLQ).
func tracedDomain(t *testing.T, category string) *laneway.Domain {
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: category})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterCommand[Account, OpenAccount](b, func(ctx context.Context, tx *laneway.Tx, c OpenAccount) error {
		a := laneway.New[Account](c.ID)
		a.Raise(Opened{Owner: c.Owner})
		return tx.Save(ctx, a)
	})
	var mu sync.Mutex
	failedOnce := false
	projector := laneway.NewHandler("Projector")
	laneway.On(projector, func(ctx context.Context, tx *laneway.Tx, e Opened, m laneway.Meta) error {
		mu.Lock()
		defer mu.Unlock()
		if m.Stream == category+"-1" && !failedOnce {
			failedOnce = true
			return errors.New("projector: first attempt fails")
		}
		return nil
	})
	auditor := laneway.NewHandler("Auditor")
	laneway.On(auditor, func(ctx context.Context, tx *laneway.Tx, e Opened, m laneway.Meta) error {
		if m.Stream == category+"-2" {
			return errors.New("auditor: account 2 is refused")
		}
		return nil
	})
	b.AddHandler(projector)
	b.AddHandler(auditor)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

// spanSet indexes the ended spans of a recorder.
type spanSet []sdktrace.ReadOnlySpan

func (s spanSet) named(name string) spanSet {
	var out spanSet
	for _, sp := range s {
		if sp.Name() == name {
			out = append(out, sp)
		}
	}
	return out
}

func (s spanSet) with(key, value string) spanSet {
	var out spanSet
	for _, sp := range s {
		if attrOf(sp, key).AsString() == value {
			out = append(out, sp)
		}
	}
	return out
}

func (s spanSet) childrenOf(parent trace.SpanContext) spanSet {
	var out spanSet
	for _, sp := range s {
		if sp.Parent().SpanID() == parent.SpanID() && sp.SpanContext().TraceID() == parent.TraceID() {
			out = append(out, sp)
		}
	}
	return out
}

func attrOf(sp sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range sp.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// linkedFrom returns the publish spans that link to sc.
func (s spanSet) linkedFrom(sc trace.SpanContext) spanSet {
	var out spanSet
	for _, sp := range s {
		for _, l := range sp.Links() {
			if l.SpanContext.Equal(sc.WithRemote(false)) || (l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID()) {
				out = append(out, sp)
			}
		}
	}
	return out
}

// TestTraceFromProcessToHandlers follows two commands, one per lane, from
// Process through the relay to both handlers: a NORMAL command run in the
// caller (its event goes primary; one handler fails once and is retried),
// and a LOW command sent through the outbox (the engine's command handler
// runs it on the backfill lane; one handler of its event exhausts its
// attempts and the entry is dead-lettered). Each command is one trace; the
// relay's publish spans link to the span that wrote the row.
func TestTraceFromProcessToHandlers(t *testing.T) {
	for bname, openBroker := range testBrokers() {
		for _, sc := range stores() {
			t.Run(bname+"/"+sc.name, func(t *testing.T) {
				ctx := context.Background()
				cat := testsvc.Prefix() + "account"
				rec := tracetest.NewSpanRecorder()
				tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
				defer func() { require.NoError(t, tp.Shutdown(context.Background())) }()

				cfg := lanewayconfig.Default()
				cfg.Server.PriorityLanes.Enabled = true
				cfg.Server.PriorityLanes.Propagate = true
				cfg.Server.StreamSubscription.BlockingTimeoutMS = 200
				cfg.Server.StreamSubscription.MaxRetries = 2
				cfg.Server.StreamSubscription.RetryDelaySeconds = 0.05
				cfg.Server.StreamSubscription.EnableDLQ = true
				app, err := laneway.Open(ctx, tracedDomain(t, cat), cfg, laneway.Options{Store: sc.open(t), TracerProvider: tp})
				require.NoError(t, err)
				br := openBroker(t)
				defer br.Close()
				eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, DisableHTTP: true,
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				require.NoError(t, eng.Start(ctx))
				stopped := false
				stop := func() {
					if !stopped {
						stopped = true
						require.NoError(t, eng.Stop(context.Background()))
					}
				}
				defer stop()

				require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "a"}))
				require.NoError(t, app.Process(laneway.WithPriority(ctx, laneway.Low), OpenAccount{ID: "2", Owner: "b"}, laneway.Async()))

				ended := func() spanSet { return spanSet(rec.Ended()) }
				require.Eventually(t, func() bool {
					s := ended()
					return len(s.named("dead_letter Auditor")) == 1 &&
						len(s.named("handle Projector").with("laneway.lane", "primary")) == 2 &&
						len(s.named("handle Projector").with("laneway.lane", "backfill")) == 1 &&
						len(s.named("handle Auditor").with("laneway.lane", "primary")) == 1
				}, opsWait, 10*time.Millisecond)
				stop() // no span may still be in flight while the set is read
				all := ended()

				process := all.named("process Bank.OpenAccount.v1")
				require.Len(t, process, 2)
				normal, low := process[0], process[1]
				if attrOf(normal, "laneway.priority").AsInt64() != 0 {
					normal, low = low, normal
				}
				for _, p := range process {
					assert.False(t, p.Parent().IsValid(), "Process starts the trace")
					assert.Equal(t, cat, attrOf(p, "laneway.aggregate").AsString())
					assert.Equal(t, "Bank.OpenAccount.v1", attrOf(p, "laneway.command").AsString())
				}
				assert.Equal(t, int64(0), attrOf(normal, "laneway.priority").AsInt64())
				assert.Equal(t, int64(-50), attrOf(low, "laneway.priority").AsInt64())
				assert.True(t, attrOf(low, "laneway.async").AsBool())
				assert.NotEqual(t, normal.SpanContext().TraceID(), low.SpanContext().TraceID(), "a trace per command")

				handlerAttrs := func(sp sdktrace.ReadOnlySpan, lane, stream, handler string, prio, attempt int64) {
					t.Helper()
					assert.Equal(t, lane, attrOf(sp, "laneway.lane").AsString(), sp.Name())
					assert.Equal(t, stream, attrOf(sp, "laneway.stream").AsString(), sp.Name())
					assert.Equal(t, handler, attrOf(sp, "laneway.handler").AsString(), sp.Name())
					assert.Equal(t, prio, attrOf(sp, "laneway.priority").AsInt64(), sp.Name())
					assert.Equal(t, attempt, attrOf(sp, "laneway.attempt").AsInt64(), sp.Name())
					assert.Equal(t, trace.SpanKindConsumer, sp.SpanKind())
				}
				publishes := all.named("publish "+cat).with("laneway.stream", cat)

				// NORMAL: Process -> (event row, publish linked) -> both handlers
				// as children of the Process span, the Projector twice.
				pub := publishes.linkedFrom(normal.SpanContext())
				require.Len(t, pub, 1, "the relay publish of the NORMAL event links to Process")
				assert.False(t, pub[0].Parent().IsValid(), "the relay's span starts its own trace")
				assert.NotEqual(t, normal.SpanContext().TraceID(), pub[0].SpanContext().TraceID())
				assert.Equal(t, trace.SpanKindProducer, pub[0].SpanKind())
				kids := all.childrenOf(normal.SpanContext())
				proj := kids.named("handle Projector")
				require.Len(t, proj, 2, "a failed attempt and its retry")
				if attrOf(proj[0], "laneway.attempt").AsInt64() != 1 {
					proj[0], proj[1] = proj[1], proj[0]
				}
				handlerAttrs(proj[0], "primary", cat, "Projector", 0, 1)
				handlerAttrs(proj[1], "primary", cat, "Projector", 0, 2)
				assert.Equal(t, codes.Error, proj[0].Status().Code)
				assert.Contains(t, proj[0].Status().Description, "first attempt fails")
				assert.Equal(t, codes.Unset, proj[1].Status().Code)
				aud := kids.named("handle Auditor")
				require.Len(t, aud, 1)
				handlerAttrs(aud[0], "primary", cat, "Auditor", 0, 1)

				// LOW: Process -> (command row, publish linked) -> the command
				// handler on the backfill command lane -> (event row, publish
				// linked) -> both handlers on the backfill lane; the Auditor
				// twice, then the dead-letter span with its event.
				cmdStream := cat + ":command:backfill"
				cmdPub := all.named("publish " + cmdStream).linkedFrom(low.SpanContext())
				require.Len(t, cmdPub, 1, "the relay publish of the LOW command links to Process")
				cmdRun := all.childrenOf(low.SpanContext()).named("handle " + laneway.CommandGroup)
				require.Len(t, cmdRun, 1)
				handlerAttrs(cmdRun[0], "backfill", cmdStream, laneway.CommandGroup, -50, 1)
				evPub := all.named("publish " + cat + ":backfill").linkedFrom(cmdRun[0].SpanContext())
				require.Len(t, evPub, 1, "the relay publish of the event links to the command handler that raised it")
				lowKids := all.childrenOf(cmdRun[0].SpanContext())
				proj = lowKids.named("handle Projector")
				require.Len(t, proj, 1)
				handlerAttrs(proj[0], "backfill", cat+":backfill", "Projector", -50, 1)
				aud = lowKids.named("handle Auditor")
				require.Len(t, aud, 2)
				for _, a := range aud {
					assert.Equal(t, codes.Error, a.Status().Code)
					assert.Equal(t, low.SpanContext().TraceID(), a.SpanContext().TraceID())
				}
				dead := lowKids.named("dead_letter Auditor")
				require.Len(t, dead, 1, "the dead-letter span belongs to the command's trace")
				assert.Equal(t, cat+":backfill:dlq", attrOf(dead[0], "laneway.dlq.stream").AsString())
				assert.Contains(t, attrOf(dead[0], "laneway.dlq.reason").AsString(), "account 2 is refused")
				assert.Equal(t, int64(2), attrOf(dead[0], "laneway.attempt").AsInt64())
				require.Len(t, dead[0].Events(), 1)
				assert.Equal(t, "laneway.dead_lettered", dead[0].Events()[0].Name)

				// Every span of the LOW command's handlers is in its trace.
				for _, sp := range all.named("handle Projector").with("laneway.lane", "backfill") {
					assert.Equal(t, low.SpanContext().TraceID(), sp.SpanContext().TraceID())
				}
			})
		}
	}
}

// TestTracingOffWritesNoTraceContext: without a TracerProvider the outbox
// rows carry no traceparent (messages are byte for byte what they were).
func TestTracingOffWritesNoTraceContext(t *testing.T) {
	for _, sc := range stores() {
		t.Run(sc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer func() { require.NoError(t, tp.Shutdown(context.Background())) }()
			ctx, span := tp.Tracer("caller").Start(context.Background(), "caller")
			defer span.End()

			off := openApp(t, sc, nil)
			require.NoError(t, off.Process(ctx, OpenAccount{ID: "1", Owner: "a"}))
			rows := outboxRows(t, off)
			require.Len(t, rows, 1)
			assert.NotContains(t, rows[0].meta, "traceparent", "the caller's span is not propagated when tracing is off")

			on, err := laneway.Open(context.Background(), testDomain(t), nil, laneway.Options{Store: sc.open(t), TracerProvider: tp})
			require.NoError(t, err)
			require.NoError(t, on.Process(ctx, OpenAccount{ID: "1", Owner: "a"}))
			rows = outboxRows(t, on)
			require.Len(t, rows, 1)
			assert.Contains(t, rows[0].meta, `"traceparent":{"trace_id":"`+span.SpanContext().TraceID().String()+`"`,
				"with tracing on the row carries the Process span, a child of the caller's")
			p := spanSet(rec.Ended()).named("process Bank.OpenAccount.v1")
			require.Len(t, p, 1)
			assert.Equal(t, span.SpanContext().SpanID(), p[0].Parent().SpanID())
		})
	}
}

// TestTraceEngineProviderOnly: a provider given to the engine alone traces
// the handlers, and the events a handler raises carry its span, so their
// handlers join the trace (the app itself writes no trace context).
func TestTraceEngineProviderOnly(t *testing.T) {
	ctx := context.Background()
	cat := testsvc.Prefix() + "account"
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { require.NoError(t, tp.Shutdown(context.Background())) }()
	cfg := lanewayconfig.Default()
	cfg.Server.StreamSubscription.BlockingTimeoutMS = 200
	app, err := laneway.Open(ctx, tracedDomain(t, cat), cfg, laneway.Options{Store: stores()[0].open(t)})
	require.NoError(t, err)
	br := testBrokers()["redis"](t)
	defer br.Close()
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, DisableHTTP: true, TracerProvider: tp,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, eng.Start(ctx))
	require.NoError(t, app.Process(ctx, OpenAccount{ID: "3", Owner: "c"}, laneway.Async()))
	require.Eventually(t, func() bool {
		s := spanSet(rec.Ended())
		return len(s.named("handle Projector")) == 1 && len(s.named("handle Auditor")) == 1
	}, opsWait, 10*time.Millisecond)
	require.NoError(t, eng.Stop(context.Background()))

	all := spanSet(rec.Ended())
	assert.Empty(t, all.named("process Bank.OpenAccount.v1"), "the app has no provider: Process is not traced")
	cmdRun := all.named("handle " + laneway.CommandGroup)
	require.Len(t, cmdRun, 1)
	assert.False(t, cmdRun[0].Parent().IsValid(), "the command carried no trace context")
	kids := all.childrenOf(cmdRun[0].SpanContext())
	assert.Len(t, kids.named("handle Projector"), 1)
	assert.Len(t, kids.named("handle Auditor"), 1)
	assert.Len(t, all.named("publish "+cat).linkedFrom(cmdRun[0].SpanContext()), 1)
}
