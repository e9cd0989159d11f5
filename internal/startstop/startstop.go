// Package startstop is the lifecycle the engine's long-running parts share
// (the relay, the consumers, the stream trimmer, the engine's own loops):
// Start once, goroutines owned by the part, Stop that cancels them and
// waits, bounded by the caller's context. Each part keeps its own work; the
// bookkeeping of running, cancelling and waiting is written here once.
package startstop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrStarted is returned by Start on a part that already runs.
var ErrStarted = errors.New("already started")

// Runner owns the goroutines of one part. The zero value is stopped.
type Runner struct {
	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	onStop  []func()
}

// Start marks the part running and returns the context its goroutines run
// under: cancelled by Stop, or when ctx is done. A second Start before Stop
// returns ErrStarted.
func (r *Runner) Start(ctx context.Context) (context.Context, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return nil, ErrStarted
	}
	runCtx, cancel := context.WithCancel(ctx)
	r.running, r.cancel, r.onStop = true, cancel, nil
	return runCtx, nil
}

// Go runs fn in a goroutine Stop waits for.
func (r *Runner) Go(fn func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn()
	}()
}

// OnStop registers fn to run when Stop has cancelled the run context,
// before it waits for the goroutines (e.g. closing a listener they read).
func (r *Runner) OnStop(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onStop = append(r.onStop, fn)
}

// Running tells whether the part was started and not stopped.
func (r *Runner) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// Stop cancels the run context, runs the OnStop functions and waits for the
// goroutines, at most until ctx is done (then it returns ctx's error, and
// the goroutines finish on their own; Wait waits for them). Stopping a
// stopped part does nothing.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return nil
	}
	r.running = false
	cancel, onStop := r.cancel, r.onStop
	r.mu.Unlock()
	cancel()
	for _, fn := range onStop {
		fn()
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop: %w", ctx.Err())
	}
}

// Wait waits for every goroutine started with Go.
func (r *Runner) Wait() { r.wg.Wait() }

// GoEvery runs fn every interval in a goroutine Stop waits for, until ctx
// is done (normally the context Start returned). The first call comes one
// interval after GoEvery.
func (r *Runner) GoEvery(ctx context.Context, interval time.Duration, fn func(ctx context.Context)) {
	r.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(ctx)
			}
		}
	})
}

// Background runs fn in a goroutine under a context of its own, cancelled
// when ctx is done or when stop is called. stop cancels it and waits for fn
// to return; calling it again does nothing. It is the shape of a listener
// that a store hands its caller (lanewaystore.Notifier).
func Background(ctx context.Context, fn func(ctx context.Context)) (stop func()) {
	bctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(bctx)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}
