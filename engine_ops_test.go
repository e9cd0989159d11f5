package laneway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
)

const opsWait = 30 * time.Second

// run is one handler execution seen by EngineOptions.OnHandled or inside a
// handler.
type run struct {
	group, stream string
	lane          string
	attempt       int
	err           error
	msgPrio       laneway.Priority // the message's priority (event handlers)
	txPrio        laneway.Priority // the priority the handler ran under
}

type runLog struct {
	mu       sync.Mutex
	handled  []run // OnHandled
	commands []laneway.Priority
	events   []run // inside the projector
}

func (r *runLog) onHandled(m laneway.Handled) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handled = append(r.handled, run{group: m.Group, stream: m.Stream, lane: m.Lane, attempt: m.Attempt, err: m.Err})
}

func (r *runLog) snapshot() (handled []run, commands []laneway.Priority, events []run) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]run(nil), r.handled...), append([]laneway.Priority(nil), r.commands...), append([]run(nil), r.events...)
}

func (r *runLog) okCount(group string) int {
	h, _, _ := r.snapshot()
	n := 0
	for _, x := range h {
		if x.group == group && x.err == nil {
			n++
		}
	}
	return n
}

// laneDomain is engineDomain that records the priority every command and
// event handler ran under; before, when set, runs first in the projector.
func laneDomain(t *testing.T, category string, rec *runLog, before func(ctx context.Context, tx *laneway.Tx) error) *laneway.Domain {
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{Category: category})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterEvent[Account, Deposited](b)
	laneway.RegisterCommand[Account, OpenAccount](b, func(ctx context.Context, tx *laneway.Tx, c OpenAccount) error {
		rec.mu.Lock()
		rec.commands = append(rec.commands, tx.Priority())
		rec.mu.Unlock()
		a := laneway.New[Account](c.ID)
		a.Raise(Opened{Owner: c.Owner})
		return tx.Save(ctx, a)
	})
	h := laneway.NewHandler("AccountProjector")
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, e Opened, m laneway.Meta) error {
		if before != nil {
			if err := before(ctx, tx); err != nil {
				return err
			}
		}
		rec.mu.Lock()
		rec.events = append(rec.events, run{stream: m.Stream, msgPrio: m.Priority, txPrio: tx.Priority()})
		rec.mu.Unlock()
		return nil
	})
	b.AddHandler(h)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

// publishedStreams maps priority to the stream the relay recorded for the
// outbox rows of category (rows not yet marked are left out).
func publishedStreams(t *testing.T, st lanewaystore.Store, category string) map[int]string {
	out := map[int]string{}
	require.NoError(t, st.InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		rs, err := tx.Query(ctx, "SELECT priority, published_stream FROM outbox WHERE stream_category = $1", category)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var p int
			var s *string
			if err := rs.Scan(&p, &s); err != nil {
				return err
			}
			if s != nil {
				out[p] = *s
			}
		}
		return rs.Err()
	}))
	return out
}

// TestEngineHTTP checks /metrics (every metric docs/operations.md lists, on
// both lanes), /healthz and /readyz of a running engine.
func TestEngineHTTP(t *testing.T) {
	for bname, openBroker := range testBrokers() {
		for _, sc := range stores() {
			t.Run(bname+"/"+sc.name, func(t *testing.T) {
				ctx := context.Background()
				cat := testsvc.Prefix() + "account"
				var rec runLog
				dom := laneDomain(t, cat, &rec, nil)
				cfg := lanewayconfig.Default()
				cfg.Server.PriorityLanes.Enabled = true
				cfg.Server.StreamSubscription.BlockingTimeoutMS = 200
				cfg.Server.HTTP.Listen = "127.0.0.1:0"
				st := sc.open(t)
				app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
				require.NoError(t, err)
				br := openBroker(t)
				defer br.Close()
				faulty := brokertest.NewFaulty(br)
				eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: faulty, OnHandled: rec.onHandled,
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				require.NoError(t, eng.Start(ctx))
				defer func() { require.NoError(t, eng.Stop(context.Background())) }()
				addr := eng.HTTPAddr()
				require.NotEmpty(t, addr)

				require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "a"}))
				require.NoError(t, app.Process(laneway.WithPriority(ctx, laneway.Low), OpenAccount{ID: "2", Owner: "b"}))
				require.Eventually(t, func() bool { return rec.okCount("AccountProjector") == 2 }, opsWait, 10*time.Millisecond)

				bf := cat + ":backfill"
				lanes := map[string]string{"primary": cat, "backfill": bf}
				h := map[string]string{"handler": "AccountProjector"}
				with := func(m map[string]string, kv ...string) map[string]string {
					out := map[string]string{}
					for k, v := range m {
						out[k] = v
					}
					for i := 0; i < len(kv); i += 2 {
						out[kv[i]] = kv[i+1]
					}
					return out
				}
				// Acks, outbox marks and the relay's counters land shortly
				// after the handlers (a handler may even run first):
				// wait for the gauges to settle, then assert everything.
				var m testsvc.Samples
				require.Eventually(t, func() bool {
					m = testsvc.Scrape(t, addr)
					pub, _ := m.Get(t, "laneway_outbox_rows", map[string]string{"status": "published"})
					// A scrape is not a snapshot: the registry gathers each
					// collector on its own, so the relay's counter can show a
					// publish whose latency sample a moment earlier did not.
					published, _ := m.Get(t, "laneway_outbox_publish_latency_seconds_count", nil)
					settled := pub == 2 && published >= 1
					for lane, stream := range lanes {
						p, _ := m.Get(t, "laneway_consumer_pending", map[string]string{"stream": stream, "lane": lane, "group": "AccountProjector"})
						lag, ok := m.Get(t, "laneway_consumer_lag", map[string]string{"stream": stream, "lane": lane, "group": "AccountProjector"})
						relayed, _ := m.Get(t, "laneway_relay_published_total", map[string]string{"stream": stream, "lane": lane})
						handled, _ := m.Get(t, "laneway_messages_handled_total", with(h, "lane", lane, "outcome", "ok"))
						timed, _ := m.Get(t, "laneway_handler_duration_seconds_count", with(h, "lane", lane))
						aged, _ := m.Get(t, "laneway_end_to_end_latency_seconds_count", with(h, "lane", lane))
						settled = settled && ok && p == 0 && lag == 0 && relayed == 1 && handled == 1 && timed == 1 && aged == 1
					}
					return settled
				}, opsWait, 20*time.Millisecond)

				for lane, stream := range lanes {
					assert.Equal(t, 1.0, m.Must(t, "laneway_messages_handled_total", with(h, "lane", lane, "outcome", "ok")), lane)
					assert.Equal(t, 0.0, m.Must(t, "laneway_messages_handled_total", with(h, "lane", lane, "outcome", "error")), lane)
					assert.Equal(t, 1.0, m.Must(t, "laneway_handler_duration_seconds_count", with(h, "lane", lane)), lane)
					assert.Equal(t, 1.0, m.Must(t, "laneway_end_to_end_latency_seconds_count", with(h, "lane", lane)), lane)
					assert.Equal(t, 0.0, m.Must(t, "laneway_retries_total", with(h, "lane", lane)), lane)
					assert.Equal(t, 0.0, m.Must(t, "laneway_dlq_routed_total", with(h, "lane", lane, "stream", stream+":dlq")), lane)
					assert.Equal(t, 0.0, m.Must(t, "laneway_dlq_depth", map[string]string{"stream": stream, "lane": lane}), lane)
					assert.Equal(t, 1.0, m.Must(t, "laneway_relay_published_total", map[string]string{"stream": stream, "lane": lane}), lane)
					n := m.Must(t, "laneway_stream_length", map[string]string{"stream": stream, "category": cat, "lane": lane})
					assert.Contains(t, []float64{0, 1}, n, "%s: its one entry, or none once trimmed", lane)
					age := m.Must(t, "laneway_oldest_entry_age_seconds", map[string]string{"stream": stream, "lane": lane})
					assert.GreaterOrEqual(t, age, 0.0)
				}
				// Commands have their lanes too (async handling), with gauges.
				m.Must(t, "laneway_stream_length", map[string]string{"stream": cat + ":command:backfill", "lane": "backfill"})
				m.Must(t, "laneway_messages_handled_total", map[string]string{"handler": laneway.CommandGroup, "lane": "backfill", "outcome": "ok"})
				assert.Equal(t, 2.0, m.Must(t, "laneway_outbox_rows", map[string]string{"status": "published"}))
				for _, s := range []string{"pending", "processing", "failed", "abandoned"} {
					assert.Equal(t, 0.0, m.Must(t, "laneway_outbox_rows", map[string]string{"status": s}), s)
				}
				assert.Equal(t, 0.0, m.Must(t, "laneway_outbox_oldest_pending_age_seconds", nil))
				assert.GreaterOrEqual(t, m.Must(t, "laneway_outbox_publish_latency_seconds_count", nil), 1.0)
				m.Must(t, "laneway_outbox_publish_failures_total", nil)
				m.Must(t, "laneway_outbox_abandoned_total", nil)
				// Lanes on, the default primary reader: primary has a read
				// of its own, backfill another.
				assert.Positive(t, m.Must(t, "laneway_reads_total", with(h, "kind", "blocking_primary")))
				assert.Positive(t, m.Must(t, "laneway_reads_total", with(h, "kind", "backfill")))

				code, _ := testsvc.HTTPGet(t, "http://"+addr+"/healthz")
				assert.Equal(t, http.StatusOK, code)
				code, body := testsvc.HTTPGet(t, "http://"+addr+"/readyz")
				assert.Equal(t, http.StatusOK, code, body)

				faulty.FailPing(errors.New("dial tcp 127.0.0.1:6379: connect: connection refused"))
				code, body = testsvc.HTTPGet(t, "http://"+addr+"/readyz")
				assert.Equal(t, http.StatusServiceUnavailable, code)
				assert.Contains(t, body, "redis: dial tcp 127.0.0.1:6379: connect: connection refused")
				faulty.Heal()
				code, body = testsvc.HTTPGet(t, "http://"+addr+"/readyz")
				assert.Equal(t, http.StatusOK, code, body)

				require.NoError(t, st.Close())
				code, body = testsvc.HTTPGet(t, "http://"+addr+"/readyz")
				assert.Equal(t, http.StatusServiceUnavailable, code)
				assert.Contains(t, body, "database: ")
				code, _ = testsvc.HTTPGet(t, "http://"+addr+"/healthz")
				assert.Equal(t, http.StatusOK, code, "the process is up even when its dependencies are not")
			})
		}
	}
}

// TestAsyncCommandThroughLanes: asynchronous commands travel the command
// lanes and keep their priority (or not, with propagate = false).
func TestAsyncCommandThroughLanes(t *testing.T) {
	cases := []struct {
		name      string
		async     bool // command_processing = "async"
		opts      []laneway.ProcessOption
		propagate bool
	}{
		{"async-config", true, nil, true},
		{"Async-option-on-sync-config", false, []laneway.ProcessOption{laneway.Async()}, true},
		{"propagate-off", true, nil, false},
	}
	for _, tc := range cases {
		for bname, openBroker := range testBrokers() {
			for _, sc := range stores() {
				t.Run(tc.name+"/"+bname+"/"+sc.name, func(t *testing.T) {
					ctx := context.Background()
					cat := testsvc.Prefix() + "account"
					var rec runLog
					dom := laneDomain(t, cat, &rec, nil)
					cfg := lanewayconfig.Default()
					if tc.async {
						cfg.CommandProcessing = "async"
					}
					cfg.Server.PriorityLanes.Enabled = true
					cfg.Server.PriorityLanes.Propagate = tc.propagate
					cfg.Server.StreamSubscription.BlockingTimeoutMS = 200
					st := sc.open(t)
					app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
					require.NoError(t, err)
					br := openBroker(t)
					defer br.Close()
					eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, DisableHTTP: true, OnHandled: rec.onHandled,
						Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
					require.NoError(t, eng.Start(ctx))
					defer func() { require.NoError(t, eng.Stop(context.Background())) }()

					require.NoError(t, app.Process(laneway.WithPriority(ctx, laneway.Low), OpenAccount{ID: "1", Owner: "a"}, tc.opts...))
					// The command consumer reports its run after the command's
					// unit of work commits, so the event it wrote can be
					// relayed and projected first: wait for both reports.
					require.Eventually(t, func() bool {
						return rec.okCount("AccountProjector") == 1 && rec.okCount(laneway.CommandGroup) == 1
					}, opsWait, 10*time.Millisecond)

					handled, commands, events := rec.snapshot()
					// The command went through the backfill command lane and
					// the engine's command consumer ran it.
					var cmdRuns []run
					for _, r := range handled {
						if r.group == laneway.CommandGroup {
							cmdRuns = append(cmdRuns, r)
						}
					}
					require.Len(t, cmdRuns, 1)
					assert.Equal(t, cat+":command:backfill", cmdRuns[0].stream)
					assert.Equal(t, laneway.LaneBackfill, cmdRuns[0].lane)
					assert.NoError(t, cmdRuns[0].err)
					require.Eventually(t, func() bool {
						return publishedStreams(t, st, cat+":command")[int(laneway.Low)] == cat+":command:backfill"
					}, opsWait, 10*time.Millisecond)

					want, wantStream, wantLane := laneway.Low, cat+":backfill", laneway.LaneBackfill
					if !tc.propagate {
						// The reference behaviour: the LOW command's handler
						// runs at Normal, so its event goes primary.
						want, wantStream, wantLane = laneway.Normal, cat, laneway.LanePrimary
					}
					assert.Equal(t, []laneway.Priority{want}, commands, "priority the command handler ran under")
					require.Len(t, events, 1)
					assert.Equal(t, want, events[0].msgPrio, "priority stamped on the event")
					assert.Equal(t, want, events[0].txPrio, "priority the projector ran under")
					var evRun run
					for _, r := range handled {
						if r.group == "AccountProjector" {
							evRun = r
						}
					}
					assert.Equal(t, wantStream, evRun.stream)
					assert.Equal(t, wantLane, evRun.lane)
					require.Eventually(t, func() bool {
						return publishedStreams(t, st, cat)[int(want)] == wantStream
					}, opsWait, 10*time.Millisecond)
				})
			}
		}
	}
}

// tcpProxy forwards connections to target until cut: then open connections
// are dropped and new ones closed at once, as when the database host goes
// away; restore lets connections through again.
type tcpProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Add(2)
		go pipe(c, up)
		go pipe(up, c)
	}
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestDatabaseOutage: PostgreSQL becomes unreachable while entries wait and
// one is being handled. Nothing is counted as an attempt or dead-lettered,
// the subscription backs off (one log line per state change), /readyz says
// 503, and handling resumes by itself when the database is back.
func TestDatabaseOutage(t *testing.T) {
	for bname, openBroker := range testBrokers() {
		t.Run(bname, func(t *testing.T) {
			ctx := context.Background()
			u, err := url.Parse(testsvc.PostgresURL(t))
			require.NoError(t, err)
			proxy := startProxy(t, u.Host)
			u.Host = proxy.ln.Addr().String()
			st, err := pgstore.Open(ctx, u.String())
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })

			cat := testsvc.Prefix() + "account"
			entered := make(chan struct{}, 16)
			gate := make(chan struct{})
			var rec runLog
			dom := laneDomain(t, cat, &rec, func(ctx context.Context, tx *laneway.Tx) error {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-gate
				// Touch the database, as a projector does.
				_, err := tx.Exec(ctx, "SELECT 1")
				return err
			})
			cfg := lanewayconfig.Default()
			cfg.Server.PriorityLanes.Enabled = true
			cfg.Server.StreamSubscription.BlockingTimeoutMS = 200
			cfg.Server.StreamSubscription.MaxRetries = 3
			cfg.Server.StreamSubscription.RetryDelaySeconds = 0.05
			cfg.Server.HTTP.Listen = "127.0.0.1:0"
			app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
			require.NoError(t, err)
			br := openBroker(t)
			defer br.Close()
			var logs syncio.Buffer
			eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: br, OnHandled: rec.onHandled,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			require.NoError(t, eng.Start(ctx))
			defer func() { require.NoError(t, eng.Stop(context.Background())) }()

			const n = 5
			for i := range n {
				require.NoError(t, app.Process(ctx, OpenAccount{ID: strconv.Itoa(i), Owner: "o"}))
			}
			<-entered // the first handler holds a transaction
			require.Eventually(t, func() bool {
				l, err := br.Len(ctx, cat)
				return err == nil && l == n && publishedStreams(t, st, cat)[0] == cat
			}, opsWait, 10*time.Millisecond)
			require.Eventually(t, func() bool {
				var published int
				require.NoError(t, st.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
					return tx.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE status = 'published'").Scan(&published)
				}))
				return published == n
			}, opsWait, 10*time.Millisecond)

			proxy.cut()
			code, body := testsvc.HTTPGet(t, "http://"+eng.HTTPAddr()+"/readyz")
			assert.Equal(t, http.StatusServiceUnavailable, code)
			assert.Contains(t, body, "database: ")
			close(gate) // the open transaction now meets a dead connection

			// Far more failed runs than max_retries: none of them counts.
			outageRuns := func() int {
				h, _, _ := rec.snapshot()
				k := 0
				for _, r := range h {
					if r.group == "AccountProjector" && r.err != nil {
						k++
					}
				}
				return k
			}
			require.Eventually(t, func() bool { return outageRuns() >= 2*cfg.Server.StreamSubscription.MaxRetries }, opsWait, 10*time.Millisecond)
			handled, _, _ := rec.snapshot()
			for _, r := range handled {
				if r.group == "AccountProjector" {
					assert.Equal(t, 1, r.attempt, "a run during the outage is not an attempt: %+v", r)
				}
			}
			for _, s := range []string{cat, cat + ":backfill"} {
				l, err := br.Len(ctx, s+":dlq")
				require.NoError(t, err)
				assert.Zero(t, l, "nothing dead-lettered during the outage (%s)", s)
			}
			pend, err := br.Pending(ctx, lanewaybroker.PendingParams{Stream: cat, Group: "AccountProjector", Count: 100})
			require.NoError(t, err)
			require.NotEmpty(t, pend)
			for _, p := range pend {
				assert.Equal(t, int64(1), p.Deliveries, "delivery count untouched: %s", p.ID)
			}
			m := testsvc.Scrape(t, eng.HTTPAddr())
			assert.Equal(t, 0.0, m.Must(t, "laneway_messages_handled_total", map[string]string{"handler": "AccountProjector", "lane": "primary", "outcome": "error"}))
			assert.Equal(t, 0.0, m.Must(t, "laneway_retries_total", map[string]string{"handler": "AccountProjector", "lane": "primary"}))

			proxy.restore()
			require.Eventually(t, func() bool { return rec.okCount("AccountProjector") == n }, opsWait, 10*time.Millisecond)
			code, body = testsvc.HTTPGet(t, "http://"+eng.HTTPAddr()+"/readyz")
			assert.Equal(t, http.StatusOK, code, body)
			require.Eventually(t, func() bool {
				p, err := br.Pending(ctx, lanewaybroker.PendingParams{Stream: cat, Group: "AccountProjector", Count: 100})
				return err == nil && len(p) == 0
			}, opsWait, 10*time.Millisecond)
			handled, _, events := rec.snapshot()
			assert.Len(t, events, n, "each event projected once")
			for _, r := range handled {
				if r.group == "AccountProjector" && r.err == nil {
					assert.Equal(t, 1, r.attempt, "handled on its first attempt: %+v", r)
				}
			}
			l, err := br.Len(ctx, cat+":dlq")
			require.NoError(t, err)
			assert.Zero(t, l)

			out := logs.String()
			group := "group=AccountProjector"
			assert.Equal(t, 1, countLines(out, "database unavailable", group), out)
			assert.Equal(t, 1, countLines(out, "database available again", group), out)
			assert.Zero(t, countLines(out, "handler failed", group), out)
			t.Logf("%d runs met the outage; log:\n%s", outageRuns(), grepLines(out, "database"))
		})
	}
}

func countLines(s string, subs ...string) int {
	n := 0
	for _, line := range strings.Split(s, "\n") {
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(line, sub)
		}
		if ok {
			n++
		}
	}
	return n
}

func grepLines(s, sub string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			fmt.Fprintln(&b, line)
		}
	}
	return b.String()
}
