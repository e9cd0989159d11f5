// Package dashboard is the web view of a domain's lanes, dead letters,
// outbox and doctor checks, served by `laneway server` under /ui/ and by
// `laneway dashboard` on its own. Pages are rendered on the server; a small
// script refreshes their live part every couple of seconds and draws the
// backlog charts with the vendored uPlot. The JSON endpoints return what the
// CLI prints with --json (package ops computes both). Writes (replay, purge,
// retry) are refused unless the dashboard was started with writes enabled
// and a token; see write.go for how they are guarded.
package dashboard

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/cli/internal/dlq"
	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/cli/internal/ops"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

// Defaults of Params.
const (
	IntervalDefault = 2 * time.Second
	KeepDefault     = 30 * time.Minute
	// TokenMinLength is the shortest write token accepted: long enough
	// that it cannot be guessed through the endpoint.
	TokenMinLength = 16
)

// Params configure New.
type Params struct {
	Config *lanewayconfig.Config
	Domain *laneway.Domain
	// DomainDir is the --domain directory, quoted in doctor's fixes.
	DomainDir string
	// Broker and Store return the connections to read (and, with Write,
	// change) through. They are called per request and per sample; the
	// caller owns what they return (see Connector for lazy opening).
	Broker func(context.Context) (lanewaybroker.Broker, error)
	Store  func(context.Context) (lanewaystore.Store, error)
	// Logger receives one entry per write and per refused write. Defaults
	// to slog.Default().
	Logger *slog.Logger
	// Write enables replay, purge and retry; they also need Token.
	Write bool
	// Token is the secret every write must carry in the X-Laneway-Token
	// header (at least TokenMinLength characters).
	Token string
	// Interval is the time between backlog samples. Defaults to
	// IntervalDefault.
	Interval time.Duration
	// Keep is how long samples are kept for the charts. Defaults to
	// KeepDefault.
	Keep time.Duration
}

// Dashboard serves the pages and endpoints and samples the lanes' backlog
// in the background between Start and Stop.
type Dashboard struct {
	p    Params
	log  *slog.Logger
	topo inspect.Topology
	hist *history
	mux  *http.ServeMux

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ErrToken is returned when writes are enabled without a token long enough.
var ErrToken = errors.New("dashboard writes need a token of at least 16 characters")

// New checks p and builds the dashboard; nothing runs until Start.
func New(p Params) (*Dashboard, error) {
	if p.Config == nil || p.Domain == nil || p.Broker == nil || p.Store == nil {
		return nil, errors.New("dashboard: Config, Domain, Broker and Store are required")
	}
	if p.Write && len(p.Token) < TokenMinLength {
		return nil, ErrToken
	}
	if p.Interval <= 0 {
		p.Interval = IntervalDefault
	}
	if p.Keep <= 0 {
		p.Keep = KeepDefault
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	topo, err := inspect.NewTopology(p.Domain, p.Config)
	if err != nil {
		return nil, err
	}
	d := &Dashboard{p: p, log: p.Logger, topo: topo, hist: newHistory(p.Keep)}
	d.routes()
	return d, nil
}

// Handler serves everything under /ui/.
func (d *Dashboard) Handler() http.Handler { return d.mux }

// Start begins sampling the lanes' backlog every Interval; it does not
// block, and a broker that cannot be reached is retried at each sample.
func (d *Dashboard) Start(ctx context.Context) {
	ctx, d.cancel = context.WithCancel(ctx)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.sampleLoop(ctx)
	}()
}

// Stop ends sampling and waits for it.
func (d *Dashboard) Stop() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
}

func (d *Dashboard) inspector(ctx context.Context) (*inspect.Inspector, error) {
	b, err := d.p.Broker(ctx)
	if err != nil {
		return nil, err
	}
	return inspect.New(b, d.topo, inspect.Options{ActiveIdle: ops.ActiveIdle(d.p.Config)}), nil
}

func (d *Dashboard) dlqManager(ctx context.Context) (*dlq.Manager, error) {
	b, err := d.p.Broker(ctx)
	if err != nil {
		return nil, err
	}
	return dlq.New(b, d.topo.Topology), nil
}

func (d *Dashboard) store(ctx context.Context) (lanewaystore.Store, lanewayconfig.Database, error) {
	db := d.p.Config.Databases["default"]
	st, err := d.p.Store(ctx)
	return st, db, err
}

// Connector opens a connection on first use and keeps it; a failed open
// is retried on the next use, so a dashboard started before Redis or the
// database comes up starts working when they do. Safe for concurrent use.
type Connector[T io.Closer] struct {
	open func(context.Context) (T, error)
	mu   sync.Mutex
	v    T
	ok   bool
}

// NewConnector returns a Connector over open.
func NewConnector[T io.Closer](open func(context.Context) (T, error)) *Connector[T] {
	return &Connector[T]{open: open}
}

// Get returns the connection, opening it when needed.
func (c *Connector[T]) Get(ctx context.Context) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok {
		return c.v, nil
	}
	v, err := c.open(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	c.v, c.ok = v, true
	return v, nil
}

// Close closes the connection if it was opened.
func (c *Connector[T]) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ok {
		return nil
	}
	c.ok = false
	return c.v.Close()
}
