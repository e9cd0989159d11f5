package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/tools/lanesexp"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/internal/tools/scratch"
	"github.com/laneway/laneway/internal/tools/term"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewaystore"
)

// demoTraffic is the commands one run sends: the backfill, then production.
type demoTraffic struct {
	run   string
	start time.Time

	mu           sync.Mutex
	backfillSent int
	sendErrors   int
	firstErr     error
	backfillDone chan struct{}
	ctx          context.Context
	prodStart    atomic.Int64 // UnixNano of production's start; 0 before
}

// productionTime is how long production has been running (0 before it starts).
func (t *demoTraffic) productionTime() time.Duration {
	if ps := t.prodStart.Load(); ps != 0 {
		return time.Since(time.Unix(0, ps))
	}
	return 0
}

func (t *demoTraffic) noteErr(err error) {
	if t.ctx.Err() != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sendErrors++
	if t.firstErr == nil {
		t.firstErr = err
	}
}

// The backfill is written the way a migration should be: batches of
// demoBackfillBatch commands per transaction (App.ProcessBatch) from
// backfillWorkers goroutines. It is all in the outbox within a few seconds,
// far faster than the handlers drain it, so the backlog production meets
// does not depend on the machine's speed.
const backfillWorkers, demoBackfillBatch = 2, 100

// startBackfill floods the backfill in first, at LOW priority, as a
// migration would: its events are in the stream before production's arrive.
func (t *demoTraffic) startBackfill(ctx context.Context, wg *sync.WaitGroup, app *laneway.App, n int) {
	t.ctx = ctx
	t.backfillDone = make(chan struct{})
	var bfwg sync.WaitGroup
	lowCtx := laneway.WithPriority(ctx, laneway.Low)
	for w := 0; w < backfillWorkers; w++ {
		bfwg.Add(1)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			defer bfwg.Done()
			cmds := make([]laneway.Command, 0, demoBackfillBatch)
			for lo := w * demoBackfillBatch; lo < n && lowCtx.Err() == nil; lo += backfillWorkers * demoBackfillBatch {
				cmds = cmds[:0]
				for i := lo; i < min(lo+demoBackfillBatch, n); i++ {
					id := fmt.Sprintf("bf-%s-%d", t.run, i)
					cmds = append(cmds, customers.RegisterCustomer{CustomerID: id, Name: "Backfill " + id, Email: id + "@example.com"})
				}
				sent := len(cmds)
				if err := app.ProcessBatch(lowCtx, cmds); err != nil {
					var be *laneway.BatchError
					if errors.As(err, &be) {
						sent -= be.Failed()
					} else {
						sent = 0
					}
					t.noteErr(fmt.Errorf("backfill batch at %d: %w", lo, err))
				}
				t.mu.Lock()
				t.backfillSent += sent
				t.mu.Unlock()
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		bfwg.Wait()
		close(t.backfillDone)
	}()
}

// startProduction sends rate commands per second at NORMAL priority once
// the backfill is written (the migration ran; its events are all ahead of
// production's), until stop is closed; done then yields the number sent.
func (t *demoTraffic) startProduction(ctx context.Context, wg *sync.WaitGroup, app *laneway.App, rate float64) (stop chan struct{}, done <-chan int) {
	stop = make(chan struct{})
	sent := make(chan int, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-t.backfillDone:
		case <-stop:
			sent <- 0
			return
		case <-ctx.Done():
			sent <- 0
			return
		}
		t.prodStart.Store(time.Now().UnixNano())
		sent <- lanesexp.Producer{Rate: rate, Stop: stop,
			Send: func(ctx context.Context, n int) error {
				id := fmt.Sprintf("p-%s-%d", t.run, n)
				if err := app.Process(ctx, customers.RegisterCustomer{CustomerID: id, Name: "Customer " + id, Email: id + "@example.com"}); err != nil {
					return fmt.Errorf("production %s: %w", id, err)
				}
				return nil
			},
			Failed: t.noteErr,
		}.Run(ctx)
	}()
	return stop, sent
}

// drained: the backfill is written and every command of it handled.
func (t *demoTraffic) drained(rec *demoRecorder) bool {
	select {
	case <-t.backfillDone:
	default:
		return false
	}
	_, handled := rec.snapshot()
	t.mu.Lock()
	defer t.mu.Unlock()
	return handled >= t.backfillSent
}

// show draws the live line: backfill progress and production latency.
func (t *demoTraffic) show(w io.Writer, rec *demoRecorder, label string, backfill int, live, final bool) {
	lat, handled := rec.snapshot()
	t.mu.Lock()
	sent := t.backfillSent
	t.mu.Unlock()
	sum := latency.Summarize(lat)
	line := fmt.Sprintf("lanes %-3s backfill %s %d/%d handled (%d sent)  primary n=%d p50 %s p99 %s  %.0fs",
		label, term.Bar(handled, backfill), handled, backfill, sent, sum.Count, term.MS(sum.P50), term.MS(sum.P99), time.Since(t.start).Seconds())
	if live {
		fmt.Fprint(w, "\r\033[K"+line)
		if final {
			fmt.Fprintln(w)
		}
		return
	}
	fmt.Fprintln(w, line)
}

// startDisplay calls show every 250 ms on a terminal, every 2 s otherwise,
// until the returned channel is closed.
func startDisplay(ctx context.Context, wg *sync.WaitGroup, show func(final bool), live bool) chan struct{} {
	every := 2 * time.Second
	if live {
		every = 250 * time.Millisecond
	}
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				show(false)
			}
		}
	}()
	return done
}

// result is the run's figures once the engine stopped.
func (t *demoTraffic) result(rec *demoRecorder, label string, primarySent int) demoRun {
	lat, handled := rec.snapshot()
	rec.mu.Lock()
	lastBF, lastAny, total, herr := rec.lastBackfill, rec.lastHandled, rec.handled, rec.handlerErrors
	rec.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	res := demoRun{Lanes: label, Primary: latency.Summarize(lat), PrimarySent: primarySent, SendErrors: t.sendErrors,
		firstSendError: t.firstErr, HandlerErrors: herr, HandledTotal: total, series: rec.series,
		Backfill: demoBackfill{Sent: t.backfillSent, Handled: handled}}
	if !lastBF.IsZero() {
		res.Backfill.DrainSeconds = latency.Round3(lastBF.Sub(t.start).Seconds())
	}
	if !lastAny.IsZero() {
		if el := lastAny.Sub(t.start).Seconds(); el > 0 {
			res.Throughput = latency.Round3(float64(total) / el)
		}
	}
	res.WallSeconds = latency.Round3(time.Since(t.start).Seconds())
	return res
}

func openDemoStore(ctx context.Context, dbURL string) (lanewaystore.Store, func() error, error) {
	db, err := scratch.Open(ctx, dbURL, "laneway_demo")
	if err != nil {
		return nil, nil, err
	}
	return db.Store, db.Close, nil
}

func openDemoBroker(ctx context.Context, brokerURL string) (lanewaybroker.Broker, error) {
	if brokerURL == "" {
		return redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	}
	// Each run starts from empty streams, so the lanes-on run does not see
	// the lanes-off run's entries (the domain's categories are fixed).
	if err := clearDemoStreams(ctx, brokerURL); err != nil {
		return nil, err
	}
	return redisbroker.Open(ctx, brokerURL, redisbroker.Options{})
}

// clearDemoStreams deletes the Customers domain's streams (and their
// consumer groups) from the Redis database of brokerURL.
func clearDemoStreams(ctx context.Context, brokerURL string) error {
	if err := scratch.ClearStreams(ctx, brokerURL, []string{"customer", "product"}, "customer:*", "product:*"); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}
