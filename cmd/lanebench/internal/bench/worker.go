package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// runWorker is one engine process of the scale, memory, throttle and
// contention scenarios. It
// speaks a line protocol with the parent: it prints "ready" once connected,
// starts the engine when it reads "go", prints "handled <n> <unix nano of
// the last handler end>" every 20 ms while the count moves, and on EOF of
// stdin (or ctx done: SIGTERM) stops the engine gracefully and prints
// "final <n> <last>".
func runWorker(ctx context.Context, ws workerSpec, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	var st lanewaystore.Store
	if strings.HasPrefix(ws.database, "postgres") {
		st, err = pgstore.Open(ctx, ws.database)
	} else {
		st, err = sqlitestore.Open(ctx, ws.database)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	br, err := redisbroker.Open(ctx, ws.brokerURL, redisbroker.Options{})
	if err != nil {
		return err
	}
	defer br.Close()
	out := &syncio.Writer{W: stdout}
	var dom *laneway.Domain
	var counted func() (n, last int64)
	if ws.contention {
		cp := &contProbe{onPrimary: func(raised, done time.Time) {
			fmt.Fprintf(out, "p %d %d\n", raised.UnixNano(), done.UnixNano())
		}}
		dom, err = newContentionDomain(cp)
		counted = func() (int64, int64) { return cp.nBack.Load(), cp.lastBack.Load() }
	} else {
		pr := &probe{}
		dom, err = newDomain(pr)
		counted = func() (int64, int64) { return pr.handled(), pr.lastAny.Load() }
	}
	if err != nil {
		return err
	}
	cfg := engineConfigFor(ws)
	cfg.Server.PriorityLanes.BackfillRatePerSecond = ws.backfillRate
	cfg.Server.PriorityLanes.Governor.PrimaryLatencyTargetMS = ws.targetMS
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
	if err != nil {
		return err
	}
	defer app.Close()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, Logger: log, DisableHTTP: true})

	// The reader ends at EOF, when the parent closes stdin or exits; on
	// SIGTERM it is left blocked and ends with the process.
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	fmt.Fprintln(out, "ready")
	select {
	case <-ctx.Done():
		return nil
	case l, ok := <-lines:
		if !ok || l != "go" {
			return nil // the parent gave up before the start
		}
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}
	report := func(word string) {
		n, last := counted()
		fmt.Fprintf(out, "%s %d %d\n", word, n, last)
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var sent int64 = -1
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case _, ok := <-lines:
			if !ok {
				break loop
			}
		case <-t.C:
			if n, _ := counted(); n != sent {
				sent = n
				report("handled")
			}
		}
	}
	serr := stopEngine(ctx, eng)
	report("final")
	return serr
}
