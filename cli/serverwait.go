package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/internal/netfail"
	"github.com/laneway/laneway/lanewayconfig"
)

// brokerWaitMax caps the pause between two tries of an unreachable Redis.
const brokerWaitMax = 5 * time.Second

// waitForBroker returns once the configured Redis answers. A server
// started while Redis is down (a node booting before its Redis, a Redis
// restart during a deploy) waits for it instead of exiting: it logs once,
// answers /healthz and reports not ready on /readyz meanwhile, and goes on
// to start when Redis comes up. Errors that waiting cannot cure (a bad
// URL, a refused password, a Redis too old) end it at once. A stop signal
// while waiting ends it cleanly (errStopped).
func waitForBroker(ctx context.Context, cfg *lanewayconfig.Config, log *slog.Logger) error {
	br := cfg.Brokers["default"]
	if br.Provider != lanewayconfig.BrokerProviderRedis {
		return nil
	}
	var srv *http.Server
	defer func() {
		if srv != nil {
			_ = srv.Close()
		}
	}()
	wait := 100 * time.Millisecond
	for first := true; ; first = false {
		b, err := backend.OpenBroker(ctx, br)
		if err == nil {
			_ = b.Close()
			if !first {
				log.Info("redis reachable; starting")
			}
			return nil
		}
		if ctx.Err() != nil {
			return errStopped
		}
		if !netfail.Unreachable(err) {
			return err
		}
		if first {
			log.Warn("redis unreachable; waiting for it (not ready on /readyz until it answers)", "error", err)
			srv = serveWaiting(ctx, cfg.Server.HTTP.Listen, err, log)
		}
		select {
		case <-ctx.Done():
			return errStopped
		case <-time.After(wait):
		}
		wait = min(wait*2, brokerWaitMax)
	}
}

// errStopped ends a server stopped before it started.
var errStopped = errors.New("stopped while waiting for redis")

// serveWaiting answers the health endpoints while the server waits for
// Redis; nil when there is no listener (disabled, or the address is busy:
// the engine reports that when it starts).
func serveWaiting(ctx context.Context, listen string, cause error, log *slog.Logger) *http.Server {
	if listen == "" {
		return nil
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", listen)
	if err != nil {
		log.Warn("cannot serve /readyz while waiting for redis", "listen", listen, "error", err)
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "redis: waiting for it to answer:", cause)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv
}
