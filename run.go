package laneway

import (
	"context"
	"fmt"
	"time"
)

// stopGrace is added to shutdown_timeout_seconds for Run's graceful stop:
// time for the relay and the trimmer to finish after the handlers did.
const stopGrace = 5 * time.Second

// Run starts the engine, blocks until ctx is done (or until Stop is called
// elsewhere), then stops it gracefully: reading stops, in-flight handlers
// finish within server.stream_subscription.shutdown_timeout_seconds, and
// their entries are acknowledged. It returns Start's error, or Stop's; a
// shutdown asked for by cancelling ctx is not an error. Catching signals is
// the caller's business (signal.NotifyContext).
func (e *Engine) Run(ctx context.Context) error {
	if err := e.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-e.stopped:
		return nil
	}
	e.log.Info("shutting down: finishing in-flight handlers")
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.app.cfg.Server.StreamSubscription.ShutdownTimeout()+stopGrace)
	defer cancel()
	if err := e.Stop(stopCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	e.log.Info("engine stopped")
	return nil
}
